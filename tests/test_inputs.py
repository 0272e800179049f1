"""Bad input: one line naming the file, line or key and the fix; exit status 2; no traceback; no output.

Most cases call the command-line entry point in-process (`kdscale.cli.main`, which goes
through `kdscale.cli.run` like the installed command); a few run the real `kdscale`
command in a subprocess to show the exit status and the absence of a traceback end to end.
"""

from __future__ import annotations

import ast
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kdscale import paths
from kdscale.cli import main, run
from kdscale.errors import UserError

REPO = Path(__file__).resolve().parents[1]
ALPACA_5000 = REPO.parent / "shared" / "data" / "alpaca_5000.json"
CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once


def lines(n: int) -> list[dict]:
    return [{"instruction": f"Describe object number {i}.", "input": "", "output": f"Object {i}."} for i in range(n)]


def jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """An empty folder to run stages in, with small valid params (edited per test)."""
    monkeypatch.chdir(tmp_path)
    set_params(tmp_path)
    return tmp_path


def set_params(root: Path, **values) -> None:
    """Small params with dotted overrides: set_params(root, **{"data.source": "x.json"})."""
    params = {"data": {"source": "builtin", "pool_size": 20, "heldout_size": 5}, "scaling": {"sizes": [5, 10]}}
    for key, value in values.items():
        *sections, last = key.split(".")
        node = params
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


@pytest.fixture()
def fails(capsys):
    """Run `kdscale ARGV` in-process; check exit 2 and one error line on stderr; return that line."""

    def check(*argv: str) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main(list(argv))
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert err.count("\n") == 1, err  # exactly one line
        assert err.startswith("kdscale: error: ")
        return err.removeprefix("kdscale: error: ").rstrip("\n")

    return check


def assert_no_outputs(root: Path) -> None:
    """Nothing a stage writes exists, not even a temporary file."""
    for out in [paths.POOL_PROMPTS, paths.HELDOUT_PROMPTS, paths.PREPARE_STATS, paths.TEACHER_DIR,
                paths.TEACHER_DIR.with_name("teacher.tmp"), paths.TEACHER_POOL, paths.SUBSETS_DIR]:
        assert not (root / out).exists(), out
    leftovers = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def cli(args: list[str], cwd: Path, **env) -> tuple[subprocess.CompletedProcess, float]:
    """The installed `kdscale` command in a subprocess; returns the result and its wall time."""
    environ = {k: v for k, v in os.environ.items() if k not in {"DVC_ROOT", "MLFLOW_TRACKING_URI"}}
    environ.update(env)
    environ = {k: v for k, v in environ.items() if v is not None}
    start = time.perf_counter()
    result = subprocess.run([str(Path(sys.executable).parent / "kdscale"), *args], cwd=cwd, env=environ,
                            capture_output=True, text=True, timeout=120)
    return result, time.perf_counter() - start


def assert_one_line_exit_2(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("kdscale: error: ")
    return line


# -----------------------------------------------------------------------------
# malformed JSON / JSON Lines


def test_malformed_jsonl_names_the_line(project, fails):
    (project / "bad.jsonl").write_text('{"instruction": "a"}\n\n{"instruction": "b"\n{"instruction": "c"}\n')
    set_params(project, **{"data.source": "bad.jsonl"})
    assert fails("prepare") == "bad.jsonl:3: malformed JSON (Expecting ',' delimiter); fix or remove that line"
    assert_no_outputs(project)


def test_malformed_json_names_the_line(project, fails):
    (project / "bad.json").write_text('[\n  {"instruction": "a"},\n  {"instruction": },\n]\n')
    set_params(project, **{"data.source": "bad.json"})
    message = fails("prepare")
    assert message.startswith("bad.json:3: malformed JSON (")
    assert message.endswith("; fix the file")
    assert_no_outputs(project)


def test_jsonl_line_that_is_not_an_object(project, fails):
    (project / "list.jsonl").write_text('{"instruction": "a"}\n["instruction", "b"]\n')
    set_params(project, **{"data.source": "list.jsonl"})
    assert fails("prepare") == "list.jsonl:2: expected a JSON object, got list"
    assert_no_outputs(project)


def test_json_that_is_not_an_array_of_records(project, fails):
    (project / "one.json").write_text('{"instruction": "a", "input": "", "output": "b"}')
    set_params(project, **{"data.source": "one.json"})
    assert "one.json: expected a JSON array of objects with 'instruction'" in fails("prepare")
    assert_no_outputs(project)


def test_broken_parquet(project, fails):
    (project / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    set_params(project, **{"data.source": "broken.parquet"})
    message = fails("prepare")
    assert message.startswith("broken.parquet: cannot read as Parquet (") and message.endswith("check the file")
    assert_no_outputs(project)


# -----------------------------------------------------------------------------
# records


@pytest.mark.parametrize("record", [{"input": "x", "output": "y"}, {"instruction": "   ", "output": "y"},
                                    {"instruction": None}, {"instruction": ""}])
def test_record_without_instruction(project, fails, record):
    (project / "src.jsonl").write_text(jsonl(lines(3) + [record]))
    set_params(project, **{"data.source": "src.jsonl"})
    assert fails("prepare") == (
        "src.jsonl: record 4: no 'instruction' (or it is empty); give every record one, or remove the record")
    assert_no_outputs(project)


def test_record_with_non_string_input(project, fails):
    (project / "src.json").write_text(json.dumps(lines(2) + [{"instruction": "Add.", "input": [1, 2]}]))
    set_params(project, **{"data.source": "src.json"})
    assert fails("prepare") == "src.json: record 3: 'input' must be a string; use \"\" or leave it out when there is none"
    assert_no_outputs(project)


def test_source_without_records(project, fails):
    (project / "empty.jsonl").write_text("\n\n")
    set_params(project, **{"data.source": "empty.jsonl"})
    assert fails("prepare") == "empty.jsonl: no prompt records; the source must hold Alpaca-schema records"
    assert_no_outputs(project)


def test_duplicates_are_dropped_with_a_warning_and_a_count(project, capsys):
    rows = lines(30)
    dupes = [rows[0], rows[5], {**rows[7], "output": "another answer"}, {**rows[9], "instruction": " " + rows[9]["instruction"]}]
    (project / "src.jsonl").write_text(jsonl(rows + dupes))
    set_params(project, **{"data.source": "src.jsonl"})
    main(["prepare"])  # not an error: the study deduplicates
    err = capsys.readouterr().err
    assert err == (f"prepare: warning: src.jsonl has 4 duplicate records (same instruction and input); "
                   f"kept the first of each (counted in {paths.PREPARE_STATS})\n")
    stats = json.loads((project / paths.PREPARE_STATS).read_text())
    assert stats["duplicates_dropped"] == 4 and stats["distinct_prompts"] == 30
    kept = [json.loads(x) for f in (paths.POOL_PROMPTS, paths.HELDOUT_PROMPTS) for x in (project / f).read_text().splitlines()]
    assert len({r["id"] for r in kept}) == len(kept) == 25
    assert "another answer" not in {r.get("reference") for r in kept}


# -----------------------------------------------------------------------------
# encodings and paths


def test_jsonl_not_utf8_names_the_line(project, fails):
    (project / "latin.jsonl").write_bytes(jsonl(lines(2)).encode() + '{"instruction": "caf\u00e9"}\n'.encode("latin-1"))
    set_params(project, **{"data.source": "latin.jsonl"})
    assert fails("prepare") == "latin.jsonl:3: not UTF-8 text; re-save the file as UTF-8"
    assert_no_outputs(project)


def test_json_not_utf8(project, fails):
    (project / "latin.json").write_bytes('[{"instruction": "caf\u00e9"}]'.encode("latin-1"))
    set_params(project, **{"data.source": "latin.json"})
    assert fails("prepare") == "latin.json: not UTF-8 text; re-save the file as UTF-8"
    assert_no_outputs(project)


def test_params_not_utf8(project, fails):
    (project / "params.yaml").write_bytes("data:\n  source: caf\u00e9.json\n".encode("latin-1"))
    assert fails("prepare") == "params.yaml: not UTF-8 text; save it as UTF-8"
    assert_no_outputs(project)


def test_adherence_file_not_utf8(project, fails):
    (project / "adh.jsonl").write_bytes('{"id": "a", "instruction": "caf\u00e9", "checks": []}\n'.encode("latin-1"))
    set_params(project, **{"eval.adherence_file": "adh.jsonl"})
    message = fails("prepare")
    assert message.startswith("adh.jsonl:1: not UTF-8 text") and message.endswith("save the file as UTF-8")
    assert_no_outputs(project)


@pytest.mark.parametrize("source", ["missing.json", "data/missing.jsonl", "./missing.parquet", "/no/such/file.json"])
def test_source_file_not_found(project, fails, source):
    set_params(project, **{"data.source": source})
    assert fails("prepare") == (f"data.source: file not found: {Path(source)}; "
                                f"give an existing .json/.jsonl/.parquet or 'builtin'")
    assert_no_outputs(project)


def test_source_with_an_unsupported_suffix(project, fails):
    (project / "prompts.csv").write_text("instruction\nhello\n")
    set_params(project, **{"data.source": "./prompts.csv"})
    assert fails("prepare") == "data.source: unsupported file type '.csv'; use .json, .jsonl or .parquet"
    assert_no_outputs(project)


def test_adherence_file_not_found(project, fails):
    set_params(project, **{"eval.adherence_file": "nowhere.jsonl"})
    assert fails("prepare") == ("adherence file not found: nowhere.jsonl; set eval.adherence_file to an existing "
                                ".jsonl or leave it empty for the built-in set")
    assert_no_outputs(project)


def test_teacher_folder_not_found(project, fails):
    set_params(project, **{"teacher.model": "./models/my-teacher"})
    assert fails("teacher_model") == ("teacher.model: folder not found: ./models/my-teacher; "
                                      "give an existing model folder or a hub id")
    assert_no_outputs(project)


def test_teacher_folder_that_is_not_a_model(project, fails):
    (project / "my-teacher").mkdir()
    (project / "my-teacher" / "notes.txt").write_text("weights to follow")
    set_params(project, **{"teacher.model": "my-teacher"})
    message = fails("teacher_model")
    assert message.startswith("teacher.model: cannot load the folder my-teacher (")
    assert message.endswith("give a folder written by save_pretrained (config, tokenizer, safetensors weights) "
                            "or a hub id")
    assert_no_outputs(project)


def test_params_file_not_found(tmp_path, monkeypatch, fails):
    monkeypatch.chdir(tmp_path)
    assert fails("prepare") == "params.yaml: not found; run from the project root or pass the params file"


# -----------------------------------------------------------------------------
# the hub without a network


@pytest.fixture()
def no_hub(monkeypatch, tmp_path):
    """The hub is unreachable (a closed local port), and the offline switch the other tests use is off."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", CLOSED_PORT)


def test_hub_reachable_probes_the_endpoint(monkeypatch):
    from kdscale.hub import hub_reachable

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub_reachable()
    monkeypatch.setenv("HF_ENDPOINT", CLOSED_PORT)
    assert not hub_reachable()
    monkeypatch.setenv("HF_ENDPOINT", "https://huggingface.co")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not hub_reachable()  # offline mode: no probe at all


def test_hub_dataset_without_network_fails_fast(project, fails, no_hub):
    set_params(project, **{"data.source": "nobody/no-such-dataset"})
    start = time.perf_counter()
    message = fails("prepare")
    assert time.perf_counter() - start < 10
    assert message == ("cannot reach the Hugging Face hub to fetch dataset 'nobody/no-such-dataset' (data.source); "
                       "set data.source to a local path, or use the offline default profile: kdscale profile embedded")
    assert_no_outputs(project)


def test_hub_teacher_without_network_fails_fast(project, fails, no_hub):
    set_params(project, **{"teacher.model": "nobody/no-such-model"})
    start = time.perf_counter()
    message = fails("teacher_model")
    assert time.perf_counter() - start < 10
    assert message == ("cannot reach the Hugging Face hub to fetch model 'nobody/no-such-model' (teacher.model); "
                       "set teacher.model to a local path, or use the offline default profile: kdscale profile embedded")
    assert_no_outputs(project)


def test_hub_student_without_network_fails_fast(project, fails, no_hub):
    """`kdscale student_init --student S` for a student from the hub: the line names that student's key."""
    set_params(project, **{"students.hub.model": "nobody/no-such-student"})
    start = time.perf_counter()
    message = fails("student_init", "--student", "hub")
    assert time.perf_counter() - start < 10
    assert "fetch model 'nobody/no-such-student'" in message
    assert "set students.hub.model to a local path, or use the offline default profile: kdscale profile embedded" \
        in message
    assert not (project / "models").exists()


def test_hub_without_network_end_to_end(project):
    """The installed command: exit 2, one line, no traceback, within seconds (imports included)."""
    set_params(project, **{"data.source": "nobody/no-such-dataset"})
    result, seconds = cli(["prepare"], project, HF_HUB_OFFLINE=None, HF_ENDPOINT=CLOSED_PORT,
                          HF_HOME=str(project / "hf-home"))
    line = assert_one_line_exit_2(result)
    assert "kdscale profile embedded" in line and "(data.source)" in line
    assert seconds < 10, seconds
    assert_no_outputs(project)


# -----------------------------------------------------------------------------
# sizes


@pytest.mark.parametrize("sizes, expected", [
    ([5, -10], "params.yaml: 'scaling.sizes' must be sample counts >= 0 (0: the untrained student), got -10"),
    ([5, 10, 5], "params.yaml: 'scaling.sizes' repeats 5; list each sample count once"),
    ([], "params.yaml: 'scaling.sizes' is empty; give at least one sample count, e.g. [25, 50, 100]"),
    ([5, 21], "params.yaml: 'scaling.sizes' asks for 21 samples but 'data.pool_size' is 20; "
              "raise data.pool_size or lower the largest size"),
])
def test_bad_sizes_stop_prepare(project, fails, sizes, expected):
    set_params(project, **{"scaling.sizes": sizes})
    assert fails("prepare") == expected
    assert_no_outputs(project)


@pytest.mark.parametrize("key", ["data.pool_size", "data.heldout_size"])
def test_non_positive_split_sizes(project, fails, key):
    set_params(project, **{key: 0})
    assert fails("prepare") == f"params.yaml: '{key}' must be positive, got 0"
    assert_no_outputs(project)


def test_more_prompts_asked_than_the_source_has(project, fails):
    # 12 records, 3 of them repeats: 9 distinct prompts for pool 8 + held-out 4
    rows = lines(9)
    (project / "src.jsonl").write_text(jsonl(rows + rows[:3]))
    set_params(project, **{"data.source": "src.jsonl", "data.pool_size": 8, "data.heldout_size": 4,
                           "scaling.sizes": [4, 8]})
    assert fails("prepare") == (
        "data.source 'src.jsonl' has 9 distinct prompts but data.pool_size + data.heldout_size = 12; "
        "lower them (and scaling.sizes) or use a larger source")
    assert_no_outputs(project)


@pytest.mark.skipif(not ALPACA_5000.is_file(), reason=f"{ALPACA_5000} not present (a fresh clone has no ../shared)")
def test_paper_sizes_on_a_5000_record_file(project, fails):
    """The paper's pool (16,000 + 500) cannot come from 5,000 records: prepare says so before any generation."""
    main(["profile", "paper"])
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["source"] = str(ALPACA_5000)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    message = fails("prepare")
    assert re.match(rf"data.source '{ALPACA_5000}' has \d+ distinct prompts but", message)
    assert "distinct prompts but data.pool_size + data.heldout_size = 16500; lower them" in message
    assert_no_outputs(project)


# -----------------------------------------------------------------------------
# params


def test_unknown_params_key_with_suggestion(project, fails):
    set_params(project, **{"data.split_sed": 3})
    assert fails("prepare") == "params.yaml: unknown key 'data.split_sed' (did you mean 'data.split_seed'?)"
    assert_no_outputs(project)


@pytest.mark.parametrize("key, value, expected", [
    ("data.pool_size", "20", "'data.pool_size' must be an integer, got '20'"),
    ("scaling.sizes", "5, 10", "'scaling.sizes' must be a list of integers, got '5, 10'"),
    ("teacher.do_sample", "no", "'teacher.do_sample' must be true or false, got 'no'"),
    ("train.learning_rate", "1e-3", "'train.learning_rate' must be a number, got '1e-3'"),
])
def test_wrong_types(project, fails, key, value, expected):
    set_params(project, **{key: value})
    assert fails("prepare") == f"params.yaml: {expected}"
    assert_no_outputs(project)


def test_malformed_params_yaml(project, fails):
    (project / "params.yaml").write_text("data:\n  source: builtin\n  pool_size: 20\n heldout_size: 5\n")
    message = fails("prepare")
    assert message.startswith("params.yaml:4: not valid YAML (") and message.endswith("fix the syntax")
    assert_no_outputs(project)


def test_adherence_file_with_an_unknown_check_type(project, fails):
    record = {"id": "adh-1", "instruction": "Answer in lower case.", "checks": [{"type": "lower_case"}]}
    (project / "adh.jsonl").write_text(json.dumps(record) + "\n")
    set_params(project, **{"eval.adherence_file": "adh.jsonl"})
    message = fails("prepare")
    assert message.startswith("adh.jsonl:1: unknown check type 'lower_case' (did you mean 'lowercase'?); known types: ")
    assert_no_outputs(project)


# -----------------------------------------------------------------------------
# outputs that cannot be written


def test_output_folder_blocked_by_a_file(project, fails):
    (project / "data").mkdir()
    (project / "data" / "prompts").write_text("not a folder")  # root ignores chmod; a file blocks mkdir
    message = fails("prepare")
    assert message == ("data/prompts: cannot write pool.jsonl there (File exists); "
                       "remove whatever blocks that folder or make it writable")
    assert (project / "data" / "prompts").read_text() == "not a folder"
    assert not [p for p in (project / "data").iterdir() if p.name != "prompts"]


def test_model_folder_blocked_by_a_file(project, fails):
    (project / "models").write_text("not a folder")  # teacher.model is the embedded default
    assert fails("teacher_model") == ("models: cannot write there (Not a directory); "
                                      "remove whatever blocks that folder or make it writable")


def test_malformed_source_end_to_end(project):
    """The installed command: exit 2, exactly one stderr line, no traceback, no output."""
    (project / "bad.jsonl").write_text('{"instruction": "a"}\n{"instruction": "b"\n')
    set_params(project, **{"data.source": "bad.jsonl"})
    result, _ = cli(["prepare"], project)
    assert assert_one_line_exit_2(result) == (
        "kdscale: error: bad.jsonl:2: malformed JSON (Expecting ',' delimiter); fix or remove that line")
    assert_no_outputs(project)


# -----------------------------------------------------------------------------
# every UserError is one line


def user_error_messages():
    """(file:line, literal text) of every string piece in every UserError(...) of the package."""
    for path in sorted((REPO / "src" / "kdscale").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "UserError":
                for arg in node.args:
                    for piece in ast.walk(arg):
                        if isinstance(piece, ast.Constant) and isinstance(piece.value, str):
                            yield f"{path.name}:{node.lineno}", piece.value


def test_every_user_error_message_is_one_line():
    messages = list(user_error_messages())
    assert len(messages) > 50  # the scan sees them
    multi = [(where, text) for where, text in messages if "\n" in text or "\r" in text]
    assert not multi, multi


def test_cli_prints_a_multiline_error_on_one_line(capsys):
    def stage(argv):
        raise UserError("pyarrow said:\nline two\nline three")

    with pytest.raises(SystemExit) as e:
        run(stage, [])
    assert e.value.code == 2
    assert capsys.readouterr().err == "kdscale: error: pyarrow said: line two line three\n"


def test_unknown_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["prepar"])
    assert e.value.code == 2
    assert "usage: kdscale <command>" in capsys.readouterr().err


@pytest.mark.parametrize("n, heldout, seed", [(50, 6, 0), (5000, 300, 0), (401, 40, 7), (3, 1, 1)])
def test_the_split_is_scikit_learns_train_test_split(n, heldout, seed):
    """Every study so far was split by train_test_split; the stage draws the same prompts without it."""
    from sklearn.model_selection import train_test_split

    from kdscale.stages.prepare import split_prompts

    records = [{"id": str(i)} for i in range(n)]
    rest, expected_heldout = train_test_split(records, test_size=heldout, random_state=seed, shuffle=True)
    pool, got_heldout = split_prompts(records, n, heldout, seed)
    assert (pool, got_heldout) == (rest, expected_heldout)
