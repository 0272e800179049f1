"""`kdscale compare` on handmade `dvc exp show --json` tables (the shape dvc 3.67 prints, copied
from a tiny DVC project): groups, means, t-intervals, markers, single seeds, names."""

from __future__ import annotations

import json
import math

import pytest

from kdscale import compare
from kdscale.errors import UserError

T95 = {1: 12.706204736, 2: 4.302652730}  # t quantile 0.975 for 1 and 2 degrees of freedom
STUDENT = "pruned10"  # the default params' one student


def metric_files(metrics: dict[int, dict], seed: int = 0, student: str = STUDENT, folder: str = "") -> dict:
    """A student's metric files as `dvc exp show --json` lists them: metrics/<student>-n<size>-seed<seed>.json."""
    return {f"{folder}metrics/{student}-n{n}-seed{seed}.json": {"data": m} for n, m in metrics.items()}


def rev(name: str | None, params: dict, metrics: dict[int, dict], rev_id: str) -> dict:
    """One row of `dvc exp show --json`: the student's metrics, trained with the row's seed."""
    return {"rev": rev_id, "name": name, "error": None, "experiments": None, "data": {
        "rev": rev_id, "timestamp": None, "outs": {}, "meta": {}, "deps": {},
        "params": {"params.yaml": {"data": params}}, "metrics": metric_files(metrics, params["seed"])}}


def params(seed=0, objective="sft", schedule="epochs", lr=0.001) -> dict:
    return {"seed": seed, "train": {"objective": objective, "schedule": schedule, "learning_rate": lr},
            "scaling": {"sizes": [20, 40]}}


def show(workspace: dict, baseline: dict, experiments: list[tuple[str, dict]], queued: tuple = ()) -> list[dict]:
    base = {**baseline, "name": "main", "experiments": [
        {"revs": [row], "executor": None, "name": name} for name, row in experiments] + [
        {"revs": [rev(name, params(seed=9), {}, f"q{i}")], "name": name,
         "executor": {"state": "queued", "name": "dvc-task", "local": None}} for i, name in enumerate(queued)]}
    return [workspace, base]


def student(ppl: float, pass_rate: float) -> dict:
    return {"perplexity": ppl, "pass_rate": pass_rate, "pass_rate_ci_low": 0.0, "type_pass_rate": {"x": 1.0}}


def test_three_seeds_of_one_recipe():
    """Table 1: the workspace (seed 0, equal to the baseline commit) and two queued-seed experiments."""
    runs = {0: {20: student(100, 0.4), 40: student(50, 0.2)}, 1: {20: student(200, 0.5), 40: student(40, 0.3)},
            2: {20: student(400, 0.6), 40: student(60, 0.1)}}
    table = show(rev(None, params(0), runs[0], "workspace"), rev("main", params(0), runs[0], "abc1234"),
                 [(f"seed-{s}", rev(f"seed-{s}", params(s), runs[s], f"e{s}")) for s in (1, 2)], queued=("q",))
    experiments = compare.read_experiments(table)
    assert [e.name for e in experiments] == ["main", "seed-1", "seed-2"]  # workspace = main, queued skipped
    groups = compare.group(experiments)
    assert list(groups) == ["baseline"] and len(groups["baseline"]) == 3
    pass_rate = compare.table(groups, "pass_rate")[20]["baseline"]
    half = T95[2] * 0.1 / math.sqrt(3)  # values 0.4, 0.5, 0.6: sd 0.1
    assert pass_rate.n == 3 and pass_rate.mean == pytest.approx(0.5)
    assert (pass_rate.low, pass_rate.high) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half))
    ppl = compare.table(groups, "perplexity")[20]["baseline"]
    assert ppl.mean == pytest.approx(200.0)  # geometric mean of 100, 200, 400
    half = T95[2] * math.log(2) / math.sqrt(3)
    assert ppl.low == pytest.approx(200 * math.exp(-half)) and ppl.high == pytest.approx(200 * math.exp(half))


def two_recipes() -> list[dict]:
    """Table 2: sft and kd, two seeds each; kd is far better at 20 samples only. The workspace
    holds the last experiment run (kd, seed 1), as after `dvc exp run`."""
    sft = {s: {20: student(1000 + 100 * s, 0.1), 40: student(100 + 10 * s, 0.2 + 0.1 * s)} for s in (0, 1)}
    kd = {s: {20: student(100 + 10 * s, 0.1), 40: student(105 + 10 * s, 0.25 + 0.1 * s)} for s in (0, 1)}
    exps = [("sft-1", rev("sft-1", params(1), sft[1], "e1")),
            ("kd-0", rev("kd-0", params(0, "kd"), kd[0], "e2")), ("kd-1", rev("kd-1", params(1, "kd"), kd[1], "e3"))]
    return show(rev(None, params(1, "kd"), kd[1], "workspace"), rev("main", params(0), sft[0], "abc1234"), exps)


def test_two_recipes_grouped_by_objective_with_markers(tmp_path):
    experiments = compare.read_experiments(two_recipes())
    assert [e.name for e in experiments] == ["main", "kd-1", "sft-1", "kd-0"]  # the baseline commit first
    assert [e.name for e in compare.read_experiments(two_recipes(), ["workspace"])] == ["kd-1"]  # the same run
    assert compare.recipe_keys(experiments) == ["train.objective"]
    groups = compare.group(experiments)
    assert {k: sorted(e.name for e in v) for k, v in groups.items()} == {
        "baseline": ["main", "sft-1"], "train.objective=kd": ["kd-0", "kd-1"]}
    ppl = compare.table(groups, "perplexity")
    assert ppl[20]["baseline"].mean == pytest.approx(math.sqrt(1000 * 1100))
    assert compare.apart(ppl[20]) == [("baseline", "train.objective=kd")]
    assert compare.apart(ppl[40]) == []  # 100/110 against 105/115: overlapping
    text = compare.markdown(experiments, groups, {m: compare.table(groups, m) for m in compare.COMPARED})
    assert "- n20: `baseline` and `train.objective=kd` do not overlap" in text
    assert "single seed" not in text
    sft_40 = compare.table(groups, "pass_rate")[40]["baseline"]  # 0.2 and 0.3
    half = T95[1] * (0.1 / math.sqrt(2)) / math.sqrt(2)
    assert (sft_40.n, sft_40.mean, sft_40.low, sft_40.high) == (2, pytest.approx(0.25), 0.0, pytest.approx(0.25 + half))
    assert "| 40 | 25% [0%, 89%] (n=2) | 30% [0%, 94%] (n=2) |" in text  # a rate's interval stays in [0, 1]


def test_single_seeds_and_names():
    """Table 3: three recipes, one seed each: no intervals, no markers, and a plain statement."""
    one = {20: student(500, 0.1), 40: student(200, 0.2)}
    exps = [("kd", rev("kd", params(objective="kd"), one, "e1")),
            ("steps", rev("steps", params(schedule="steps"), {20: student(300, 0.1)}, "e2")),
            ("lr", rev("lr", params(lr=0.003), one, "e3"))]
    table = show(rev(None, params(), {20: student(900, 0.0)}, "workspace"), rev("main", params(), one, "c"), exps)
    experiments = compare.read_experiments(table, ["kd", "steps", "workspace"])
    assert [e.name for e in experiments] == ["workspace", "kd", "steps"]
    assert compare.recipe_keys(experiments) == ["train.objective", "train.schedule"]
    groups = compare.group(experiments)
    tables = {m: compare.table(groups, m) for m in compare.COMPARED}
    assert list(groups) == ["baseline", "train.objective=kd", "train.schedule=steps"]
    assert set(tables["perplexity"][40]) == {"train.objective=kd"}  # steps ran 20 only, the workspace too
    summary = tables["perplexity"][20]["train.objective=kd"]
    assert (summary.n, summary.mean, summary.low) == (1, 500, None)
    text = compare.markdown(experiments, groups, tables)
    assert text.count("has a single seed") == 3 and "do not overlap" not in text
    with pytest.raises(UserError, match="no experiment with metrics named 'nope'"):
        compare.read_experiments(table, ["nope"])


def test_each_student_of_a_study_is_a_recipe_of_its_own():
    """A study of two students: each experiment row holds both students' metrics, and each student is a recipe
    (`student=...`), crossed with what the experiments change; the rows still count as one experiment each."""
    def both(p: dict, small_ppl: float) -> dict:
        row = rev(None, p, {20: student(100, 0.4)}, "x")
        row["data"]["metrics"].update(metric_files({20: student(small_ppl, 0.2)}, p["seed"], "pruned3"))
        return row

    main = {**both(params(0), 300), "rev": "abc1234", "name": "main"}
    table = show({**both(params(0), 300), "rev": "workspace", "name": None}, main,
                 [("kd", {**both(params(0, "kd"), 200), "rev": "e1", "name": "kd"})])
    experiments = compare.read_experiments(table)
    assert sorted((e.name, e.params["student"]) for e in experiments) == [
        ("kd", "pruned10"), ("kd", "pruned3"), ("main", "pruned10"), ("main", "pruned3")]  # the workspace is main
    assert compare.recipe_keys(experiments) == ["student", "train.objective"]
    groups = compare.group(experiments)
    assert sorted(groups) == ["baseline", "student=pruned3", "student=pruned3, train.objective=kd",
                              "train.objective=kd"]
    ppl = compare.table(groups, "perplexity")[20]
    assert (ppl["baseline"].mean, ppl["student=pruned3"].mean, ppl["student=pruned3, train.objective=kd"].mean) == (
        100, 300, 200)
    text = compare.markdown(experiments, groups, {m: compare.table(groups, m) for m in compare.COMPARED})
    assert "2 experiments: main, kd;" in text and "Recipes differ in: student, train.objective;" in text
    assert ("| size | `baseline` | `student=pruned3` | `train.objective=kd` | `student=pruned3, train.objective=kd` |"
            in text)
    assert "| 20 | 100 (n=1) | 300 (n=1) | 100 (n=1) | 200 (n=1) |" in text  # each student's own perplexity


def test_command_writes_the_report_and_figure(tmp_path, monkeypatch):
    (tmp_path / "show.json").write_text(json.dumps(two_recipes()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    compare.main(["--input", "show.json"])
    assert "| 20 |" in (tmp_path / "reports/compare.md").read_text()
    assert (tmp_path / "reports/compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "mlflow.db").exists()  # no store: compare does not create one
    with pytest.raises(UserError, match="dvc exp show --json > FILE"):
        compare.main(["--input", "missing.json"])


STAGE = """\
import json, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))
pathlib.Path("metrics").mkdir(exist_ok=True)
metrics = {"perplexity": 1 / p["train"]["learning_rate"], "pass_rate": 0.0}
json.dump(metrics, open("metrics/pruned10-n20-seed0.json", "w"))
"""


def dvc_project(root) -> None:
    """A real Git + DVC project whose one stage writes a student's metrics from the learning rate."""
    import subprocess
    import yaml

    def run(*cmd):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)

    (root / "stage.py").write_text(STAGE)
    (root / "params.yaml").write_text(yaml.safe_dump(params(lr=0.01)))
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {
        "cmd": "python stage.py", "deps": ["stage.py"], "params": ["train.learning_rate"],
        "metrics": [{"metrics/pruned10-n20-seed0.json": {"cache": False}}]}}}))
    run("git", "init", "-q")
    run("git", "config", "user.email", "t@example.com")
    run("git", "config", "user.name", "t")
    run("dvc", "init", "-q")
    run("dvc", "repro", "-q")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    run("dvc", "exp", "run", "-q", "-n", "lr-002", "-S", "train.learning_rate=0.02")
    run("git", "commit", "-q", "--allow-empty", "-m", "later")  # the experiment stays with the baseline


def test_rev_reads_the_experiments_of_each_baseline_commit(tmp_path, monkeypatch):
    """Experiments stay with the commit they ran on: after a later commit, --rev finds them."""
    dvc_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    names = lambda revs: {e.name for e in compare.read_experiments(compare.dvc_exp_show(revs))}  # noqa: E731
    assert "lr-002" not in names([])  # HEAD's experiments: none
    assert "lr-002" in names(["HEAD~1"])
    compare.main(["--rev", "HEAD~1"])
    text = (tmp_path / "reports/compare.md").read_text()
    assert "| 20 | 100 (n=1) | 50 (n=1) |" in text, text  # perplexity 1 / lr: the baseline, then lr-002


def test_exp_show_outside_a_dvc_project_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="run it from the project root"):
        compare.dvc_exp_show()


def test_figure_goes_to_the_report_run(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient
    from test_train import in_project

    from kdscale import tracking

    (tmp_path / "show.json").write_text(json.dumps(two_recipes()))
    with in_project(tmp_path):
        with tracking.start_run("report", "report", {}) as run:
            pass
        compare.main(["--input", "show.json"])
        assert mlflow.active_run() is None
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    names = [a.path for a in client.list_artifacts(run.info.run_id, "compare")]
    assert names == ["compare/compare.md", "compare/compare.png"]
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_each_pipeline_compares_its_own_students():
    """One repository, two pipelines (the root one and studies/reference): DVC names both's files from the
    root; compare, run in either folder, reads only that pipeline's params and students."""
    row = rev(None, params(0), {20: student(100, 0.4)}, "workspace")
    row["data"]["params"]["studies/reference/params.yaml"] = {"data": params(0, lr=0.5)}
    reference_files = {**metric_files({20: student(7, 0.9), 640: student(5, 0.9)}, folder="studies/reference/"),
                       **metric_files({640: student(6, 0.8)}, seed=1, folder="studies/reference/")}
    row["data"]["metrics"].update(reference_files)
    (root,) = compare.read_experiments([row])
    assert root.metrics == {20: student(100, 0.4)} and root.params["train.learning_rate"] == 0.001
    assert not any(k.startswith("studies/") for k in root.params)
    (reference,) = compare.read_experiments([row], folder="studies/reference/")
    assert reference.metrics == {20: student(7, 0.9), 640: student(5, 0.9)}  # a replicate is not a size...
    assert reference.replicates == {(640, 1): student(6, 0.8)}
    assert reference.params["train.learning_rate"] == 0.5 and "params.yaml:seed" not in reference.params
    # ...but another seed of the same recipe: 640 has two, the geometric mean of 5 and 6
    at_640 = compare.table(compare.group([reference]), "perplexity")[640]["baseline"]
    assert at_640.n == 2 and at_640.mean == pytest.approx(math.sqrt(30))
    groups = compare.group([reference])
    text = compare.markdown([reference], groups, {m: compare.table(groups, m) for m in compare.COMPARED})
    assert "`baseline` has a single seed outside its replicate sizes: no interval there." in text


def test_a_sweeps_rounds_are_one_recipe_and_two_sweeps_of_other_recipes_are_two():
    """Rounds of `kdscale sweep --exp` differ in sizes, pool and nothing else a size is trained by."""
    def round_params(sizes, pool, objective="sft"):
        p = params(objective=objective)
        p["scaling"]["sizes"], p["data"], p["sweep"] = sizes, {"pool_size": pool}, {"max_size": 0}
        return p

    ran = {20: student(100, 0.4), 40: student(50, 0.2)}
    rounds = [(f"{name}-r{i}", rev(f"{name}-r{i}", round_params([20, 40, 80][:2 + i], 50 + 40 * i, objective),
                                   ran, f"{name}{i}")) for name, objective in (("a", "sft"), ("b", "kd")) for i in (0, 1)]
    experiments = compare.read_experiments(show(rev(None, round_params([20, 40], 50), ran, "workspace"),
                                                rev("main", round_params([20, 40], 50), ran, "abc1234"), rounds))
    assert compare.recipe_keys(experiments) == ["train.objective"]
    groups = {label: sorted(e.name for e in exps) for label, exps in compare.group(experiments).items()}
    assert sorted(groups.values())[-1] == ["b-r0", "b-r1"] and len(groups) == 2, groups


def test_a_study_that_is_its_own_dvc_project_reads_its_files_without_a_folder_prefix(tmp_path, monkeypatch):
    """`dvc exp show` names a DVC project's files from its own root: a study made with `dvc init --subdir`
    (studies/embedded-sweep) reads `metrics/...`, a pipeline folder inside the root project `studies/x/metrics/...`."""
    from kdscale.checkout import dvc_folder

    (tmp_path / ".dvc").mkdir()
    (tmp_path / "studies/own/.dvc").mkdir(parents=True)
    (tmp_path / "studies/inside").mkdir()
    for folder, expected in (("", ""), ("studies/own", ""), ("studies/inside", "studies/inside/")):
        monkeypatch.chdir(tmp_path / folder)
        assert dvc_folder() == expected
