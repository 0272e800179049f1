"""dvc.yaml records exactly what each stage depends on: the modules it runs, the files they read,
and the params it uses (as leaf keys, so a logging knob retrains nothing).

The stages come from dvc.yaml and the imports from the code (ast), so a new module or stage is
checked without editing this file; a failure names the path or key to add and where.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from kdscale.cli import STAGES as STAGE_NAMES

SRC = REPO / "src"
PACKAGE = SRC / "kdscale"
# The dispatcher behind the `kdscale` command: it imports the stage's module by name and only
# reaches a stage module's code through it, so it does not change what a stage computes.
# the packages' docstrings (stages/, engines/) hold no code a stage runs
NOT_STAGE_CODE = {"kdscale.cli", "kdscale.__main__", "kdscale", "kdscale.stages", "kdscale.engines"}
# Params a stage reads that change no output of it: how often the loss is logged, the MLflow
# registry name. Everything else of a stage's own section must be listed in its `params`.
NOT_OUTPUT_PARAMS = {"train.logging_steps", "registered_name",
                     # how a served teacher's requests are sent, not what comes back
                     "teacher.api_key_env", "teacher.concurrency", "teacher.request_timeout", "teacher.max_retries",
                     "teacher.max_total_retries"}
# The params.yaml sections a stage owns, beside the one named like the stage. STUDENT: the stage's own
# student (its matrix's ${item.student}), each of params.yaml's `students` in turn.
STUDENT = "${item.student}"
OWNED_SECTIONS = {"prepare": ["data"], "student_init": [f"students.{STUDENT}"],
                  "train": ["train", f"students.{STUDENT}"], "evaluate": ["eval"],
                  "train_replicate": ["train", f"students.{STUDENT}"], "evaluate_replicate": ["eval"]}
# Keys of a stage's own sections that another stage reads: editing one must not rerun this one.
OWNED_ELSEWHERE = {"teacher": ("teacher.filters.",),  # stage teacher_filter: a filter must not regenerate
                   # stage adherence_set: the larger adherence set, answered at a few sizes only
                   "evaluate": ("eval.adherence_set",), "evaluate_replicate": ("eval.adherence_set",)}
# Sections a stage may list whole, as they are: every key in them changes what it computes. A student's keys
# all shape its model (the registry name, which does not, is the top-level `registered_name`); the report
# reads which students there are.
WHOLE_SECTIONS = {f"students.{STUDENT}", "students"}


def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def params_yaml() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def module_file(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] != "kdscale":
        return None
    base = SRC.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def kdscale_imports(path: Path) -> set[str]:
    """Every kdscale module one file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kdscale.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "kdscale":  # from kdscale import paths, tracking
                found |= {f"kdscale.{a.name}" for a in node.names if module_file(f"kdscale.{a.name}")}
            elif node.module.startswith("kdscale."):  # from kdscale.engines import served: the submodule too
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names
                                          if module_file(f"{node.module}.{a.name}")}
    return found - NOT_STAGE_CODE


def import_closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        todo.extend(kdscale_imports(module_file(name)))
    return seen


def stage_module(cmd: str) -> str:
    """`kdscale train --size 8` -> kdscale.stages.train; `python -m kdscale.stages.report` -> kdscale.stages.report."""
    words = cmd.split()
    if words[0] == "kdscale":
        return f"kdscale.stages.{words[1]}" if words[1] in STAGE_NAMES else f"kdscale.{words[1]}"
    if "-m" in words:
        return words[words.index("-m") + 1]
    raise AssertionError(f"dvc.yaml: cannot tell which kdscale module runs `{cmd}`")


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def expected_deps(cmd: str | list[str]) -> set[str]:
    """The stage's modules as files, and the package's data files (assets/) that any of them names.
    A stage may run several commands (a list, or joined with &&): each one's modules count."""
    commands = [c.strip() for entry in ([cmd] if isinstance(cmd, str) else cmd) for c in entry.split("&&")]
    modules = set().union(*(import_closure(stage_module(c)) for c in commands if c))
    files = {rel(module_file(m)) for m in modules}
    sources = "\n".join(module_file(m).read_text() for m in modules)
    for asset in (PACKAGE / "assets").iterdir():
        if asset.is_file() and asset.name in sources:
            files.add(rel(asset))
    return files


def leaf_keys(d: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in d.items():
        keys |= leaf_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return keys


def param_names(stage: dict) -> set[str]:
    names = set()
    for entry in stage.get("params", []):
        names |= set(entry) if isinstance(entry, dict) else {entry}  # {file.yaml: [keys]} or a key
    return names


def each_student(name: str, params: dict) -> set[str]:
    """A key as it reads for each student of params.yaml (`students.${item.student}` -> `students.pruned10`)."""
    return {name.replace(STUDENT, s) for s in params["students"]} if STUDENT in name else {name}


def section(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


STAGES = dvc_stages()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_list_every_module_and_data_file_it_reads(name):
    stage = STAGES[name]
    deps = {d for d in stage.get("deps", [])}
    missing = sorted(expected_deps(stage["cmd"]) - deps)
    assert not missing, "dvc.yaml stage '{}' misses deps; add to its `deps:` list:\n{}".format(
        name, "\n".join(f"  - {m}" for m in missing))


def test_imports_are_followed_transitively():
    """The test's own walk: train reaches models.py (and hub.py, imported inside a function)."""
    closure = import_closure("kdscale.stages.train")
    assert {"kdscale.models", "kdscale.hub", "kdscale.examples", "kdscale.prompts", "kdscale.errors"} <= closure
    assert "kdscale.cli" not in closure
    assert "src/kdscale/assets/builtin_prompts.jsonl" in expected_deps("kdscale prepare")


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_params_are_leaf_keys(name):
    params = params_yaml()
    leaves = leaf_keys(params)
    names = param_names(STAGES[name])
    not_leaves = sorted(n for n in names - WHOLE_SECTIONS if n not in leaves)
    assert not not_leaves, (f"dvc.yaml stage '{name}': params must name leaf keys of params.yaml (so a change "
                            f"elsewhere in the section reruns nothing); replace {not_leaves} with their leaf keys")
    for whole in sorted(names & WHOLE_SECTIONS):  # a section listed whole: one that exists, with no harmless key
        for key in sorted(each_student(whole, params)):
            assert isinstance(section(params, key), dict), f"dvc.yaml stage '{name}': params.yaml has no section {key}"
            harmless = sorted(leaf_keys(section(params, key), f"{key}.") & NOT_OUTPUT_PARAMS)
            assert not harmless, f"dvc.yaml stage '{name}': {whole} holds {harmless}, which change nothing it computes"
    listed_but_harmless = sorted(names & NOT_OUTPUT_PARAMS)
    assert not listed_but_harmless, f"dvc.yaml stage '{name}': remove {listed_but_harmless} from its params"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_params_cover_its_own_sections(name):
    """A key added to params.yaml under the stage's own section must be listed (or declared harmless)."""
    params, base = params_yaml(), name.split("@")[0]
    sections = [s for owned in OWNED_SECTIONS.get(base, [base]) for s in sorted(each_student(owned, params))
                if isinstance(section(params, s), dict)]
    wanted = {k for s in sections for k in leaf_keys(section(params, s), f"{s}.")} - NOT_OUTPUT_PARAMS
    wanted = {k for k in wanted if not k.startswith(OWNED_ELSEWHERE.get(base, ()))}
    listed = {n for entry in param_names(STAGES[name]) for n in each_student(entry, params)}
    # a key is listed by itself or by a section above it that the stage lists whole
    missing = sorted(k for k in wanted if not any(k == n or k.startswith(f"{n}.") for n in listed))
    assert not missing, "dvc.yaml stage '{}' misses params; add to its `params:` list:\n{}".format(
        name, "\n".join(f"  - {m}" for m in missing))


STUDIES = sorted(p.parent.name for p in (REPO / "studies").glob("*/dvc.yaml"))


@pytest.mark.parametrize("study", STUDIES)
def test_a_study_pipeline_is_the_root_one_a_folder_down(study):
    """studies/*/dvc.yaml is generated (make): the same stages, with the code one folder up."""
    target = f"studies/{study}/dvc.yaml"
    expected = [f"# Generated from the root dvc.yaml by `make {target}`: edit that one."]
    expected += [line.replace("      - src/", "      - ../../src/", 1) if line.startswith("      - src/") else line
                 for line in (REPO / "dvc.yaml").read_text().splitlines()]
    assert (REPO / target).read_text().splitlines() == expected, f"{target} is stale: run `make {target}`"


def test_each_study_is_a_dvc_project_of_its_own():
    """So that `dvc status`, `dvc pull` and `dvc metrics show` at the root concern the default study alone."""
    assert {"embedded-sweep", "reference"} <= set(STUDIES)
    for study in STUDIES:
        assert (REPO / "studies" / study / ".dvc/config").is_file(), f"studies/{study}: run `dvc init --subdir` there"
        assert (REPO / "studies" / study / "reports/sweep.json").is_file(), study


def test_the_layout_shows_the_pipeline_stages_above_shared_pieces():
    """kdscale/stages/ holds exactly dvc.yaml's stage modules; a stage imports shared pieces and no other
    stage, and no shared piece imports a stage."""
    stage_files = {p.stem for p in (PACKAGE / "stages").glob("*.py")} - {"__init__"}
    assert stage_files == {stage_module(s["cmd"] if isinstance(s["cmd"], str) else s["cmd"][0]).split(".")[-1]
                           for s in STAGES.values()} == STAGE_NAMES
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts)
        stages = {m for m in kdscale_imports(path) if m.startswith("kdscale.stages.")} - {module}
        if module.startswith("kdscale.stages."):
            assert not stages, f"{module} imports another stage: {stages}"
        else:
            assert not stages, f"the shared piece {module} imports a stage: {stages}"
