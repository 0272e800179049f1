"""`kdscale compare`: recipes side by side across DVC experiments, with intervals over seeds.

Reads `dvc exp show --json` (the workspace, the baseline commit and every experiment, or
only those named), groups the experiments by the params that differ between them (the
recipe: objective, schedule, learning rate, ..., and which of the study's students), with `seed` as
the replicate axis (an experiment's own replicate students, scaling.replicate_seeds, count as more
seeds), and writes reports/compare.md and reports/compare.png: per size, each recipe's
perplexity and pass rate with the mean and a 95% t-interval over seeds. Perplexity is
averaged on the log scale (a geometric mean): across seeds it varies by factors, not
by amounts. Offline, seconds.

    dvc exp run --queue -S seed=1,2 -S train.objective=kd && dvc queue start
    kdscale compare                  # every experiment DVC shows
    kdscale compare exp-a exp-b      # only these (and `workspace`)
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from kdscale import paths
from kdscale.checkout import dvc_folder
from kdscale.config import flatten
from kdscale.errors import UserError
from kdscale.jsonl import atomic_open
from kdscale.metrics import METRICS, compared
from kdscale.stats import t_interval

REPLICATE = "seed"
# Sizes are compared one by one, whatever list ran them; a larger pool changes no size's subset (the pool only
# grows at its end); the sweep's own settings change what it runs next, not how a size is trained.
NOT_RECIPE = {REPLICATE, "scaling.sizes", "data.pool_size"}
NOT_RECIPE_SECTIONS = ("sweep.",)
# the registry's compared metrics, each with its title
COMPARED = {m.name: f"{m.label}, {'geometric ' if m.log_scale else ''}mean over seeds" for m in compared()}
SKIPPED_STATES = {"queued", "running", "failed"}


@dataclass
class Experiment:
    name: str
    params: dict  # flat: {"train.objective": "kd", ...}
    metrics: dict[int, dict] = field(default_factory=dict)  # size -> that student's metrics
    replicates: dict[tuple[int, int], dict] = field(default_factory=dict)  # (size, seed) -> a replicate's metrics
    aliases: set[str] = field(default_factory=set)  # other rows that hold the same run (workspace, commit)


@dataclass
class Summary:
    n: int
    mean: float
    low: float | None = None  # 95% t-interval over seeds; None with a single seed
    high: float | None = None

    def overlaps(self, other: Summary) -> bool:
        return self.low is None or other.low is None or not (self.high < other.low or other.high < self.low)


# -----------------------------------------------------------------------------
# reading `dvc exp show --json`

def own_student(params: dict, student: str) -> dict:
    """A student's recipe: the study's params with its own `students.<name>` section as `student.*` and the
    others' left out (a change to another student is not a change to this one), and its name as `student`."""
    prefix = f"students.{student}."
    return ({k: v for k, v in params.items() if not k.startswith("students.")} | {"student": student}
            | {"student." + k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)})


def _experiments(row: dict, name: str, folder: str = "") -> list[Experiment]:
    """One row of `dvc exp show --json`, seen from the pipeline in `folder` ("" for the root,
    "studies/reference/" for a pipeline there): its params.yaml and its students' metrics, one Experiment per
    student (its name is a param of the recipe, `student`). DVC names files from the repository root, so another
    pipeline's files are told apart by their folder."""
    data = row.get("data") or {}
    if row.get("error") or not data:
        return []
    own_params, params = f"{folder}params.yaml", {}
    for file, content in (data.get("params") or {}).items():
        if file != own_params and (file == "params.yaml" or file.endswith("/params.yaml")):
            continue  # another pipeline's params
        prefix = "" if file == own_params else f"{file}:"
        params.update({prefix + k: v for k, v in flatten((content or {}).get("data") or {}).items()})
    students: dict[str, Experiment] = {}
    for file, content in (data.get("metrics") or {}).items():
        where, _, stem = file.removesuffix(".json").rpartition("/")
        run = paths.Run.parse(stem) if f"{where}/" == f"{folder}metrics/" else None
        if run and (content or {}).get("data"):
            exp = students.setdefault(run.student, Experiment(name, own_student(params, run.student)))
            if run.seed == params.get("seed", run.seed):
                exp.metrics[run.size] = content["data"]
            else:  # scaling.replicate_seeds: another seed of the same recipe, in the same experiment
                exp.replicates[(run.size, run.seed)] = content["data"]
    return [exp for exp in students.values() if exp.metrics]


def read_experiments(show: list[dict], names: list[str] = (), folder: str = "") -> list[Experiment]:
    """The experiments of `dvc exp show --json` that have student metrics, each once.

    The workspace after `dvc exp run` holds the last experiment's results and the baseline
    commit may hold those of the workspace: rows with the same params and metrics are one
    run, kept under its most specific name (experiment, then commit, then workspace)."""
    found: list[tuple[int, Experiment]] = []
    for row in show:
        name = "workspace" if row.get("rev") == "workspace" else (row.get("name") or row["rev"][:7])
        found += [(0 if name == "workspace" else 1, e) for e in _experiments(row, name, folder)]
        for exp in row.get("experiments") or []:
            state = ((exp.get("executor") or {}).get("state") or "").lower()
            if state in SKIPPED_STATES or not exp.get("revs"):
                continue
            latest = exp["revs"][0]
            found += [(2, e) for e in _experiments(latest, exp.get("name") or latest.get("name") or latest["rev"][:7],
                                                   folder)]
    unique: dict[str, tuple[int, Experiment]] = {}
    for rank, exp in found:
        key = json.dumps([exp.params, exp.metrics], sort_keys=True, default=str)
        if key not in unique:
            unique[key] = (rank, exp)
            continue
        kept_rank, kept = unique[key]
        if rank > kept_rank:
            exp.aliases |= kept.aliases | {kept.name}
            unique[key] = (rank, exp)
        else:
            kept.aliases.add(exp.name)
    # The baseline commit first, then the workspace: recipes are labelled by how they differ from it.
    experiments = [exp for _, exp in sorted(unique.values(), key=lambda pair: (1, 0, 2)[pair[0]])]
    if names:
        known = {n for e in experiments for n in {e.name} | e.aliases}
        missing = [n for n in names if n not in known]
        if missing:
            raise UserError(f"compare: no experiment with metrics named {missing[0]!r}; "
                            f"known: {', '.join(sorted(known)) or 'none'} (see `dvc exp show`)")
        experiments = [e for e in experiments if ({e.name} | e.aliases) & set(names)]
    return experiments


def dvc_exp_show(revs: list[str] = ()) -> list[dict]:
    """The rows `dvc exp show --json` prints: the workspace and the experiments of HEAD, or of each of
    `revs` (experiments stay with the commit they ran on, so those queued before a later commit need its
    --rev). In-process, by the call the CLI makes: dvc.api.exp_show returns table columns instead, with a
    file prefix only where two files share a key and 0 read as None."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo() as repo:
            return [exp.dumpd() for exp in repo.experiments.show(revs=list(revs) or None)]
    except DvcException as e:
        raise UserError(f"compare: `dvc exp show` failed ({e}); run it from the project root") from None


# -----------------------------------------------------------------------------
# recipes and intervals

def _value(v) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def recipe_keys(experiments: list[Experiment]) -> list[str]:
    """The params that differ between experiments, seed, sizes, pool and sweep settings aside."""
    keys = sorted(k for k in {k for e in experiments for k in e.params} - NOT_RECIPE
                  if not k.startswith(NOT_RECIPE_SECTIONS))
    return [k for k in keys if len({_value(e.params.get(k)) for e in experiments}) > 1]


def group(experiments: list[Experiment]) -> dict[str, list[Experiment]]:
    """Recipe label -> its experiments (the seeds). A recipe is named by the params in which it
    differs from the first experiment (the baseline commit when shown): "baseline",
    "train.objective=kd", "train.max_steps=40, train.schedule=steps"."""
    keys = recipe_keys(experiments)
    reference = {k: _value(experiments[0].params.get(k)) for k in keys}
    groups: dict[str, list[Experiment]] = {}
    for e in experiments:
        changes = [f"{k}={_value(e.params.get(k))}" for k in keys if _value(e.params.get(k)) != reference[k]]
        groups.setdefault(", ".join(changes) or "baseline", []).append(e)
    return groups


def summarise(values: list[float], log: bool = False, bounds: tuple[float, float] | None = None) -> Summary:
    """Mean and 95% t-interval; on the log scale (geometric mean) when `log`, clipped to `bounds`."""
    if len(values) == 1:
        return Summary(1, values[0])
    back = math.exp if log else (lambda x: x)
    mean, low, high = (back(x) for x in t_interval([math.log(v) for v in values] if log else values))
    if bounds:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Summary(len(values), mean, low, high)


def table(groups: dict[str, list[Experiment]], metric: str) -> dict[int, dict[str, Summary]]:
    """size -> recipe -> summary over the seeds that have this metric at this size."""
    sizes = sorted({n for exps in groups.values() for e in exps for n in e.metrics})
    out: dict[int, dict[str, Summary]] = {}
    for size in sizes:
        for label, exps in groups.items():
            runs = [e.metrics.get(size, {}) for e in exps] + [m for e in exps for (n, _), m in
                                                              sorted(e.replicates.items()) if n == size]
            values = [m[metric] for m in runs if isinstance(m.get(metric), (int, float))]
            if values:
                bounds = (0.0, 1.0) if METRICS[metric].unit == "rate" else None  # a share stays within [0, 1]
                out.setdefault(size, {})[label] = summarise(values, METRICS[metric].log_scale, bounds)
    return out


def apart(row: dict[str, Summary]) -> list[tuple[str, str]]:
    """Pairs of recipes whose intervals do not overlap."""
    labels = sorted(row)
    return [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :] if not row[a].overlaps(row[b])]


# -----------------------------------------------------------------------------
# outputs

def _fmt(x: float, metric: str) -> str:
    if METRICS[metric].unit == "rate":
        return f"{x:.0%}"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _cell(s: Summary, metric: str, marked: bool) -> str:
    text = _fmt(s.mean, metric)
    text += f" [{_fmt(s.low, metric)}, {_fmt(s.high, metric)}]" if s.low is not None else ""
    return f"{text} (n={s.n}){' *' if marked else ''}"


def markdown(experiments: list[Experiment], groups: dict[str, list[Experiment]],
             tables: dict[str, dict[int, dict[str, Summary]]]) -> str:
    keys, names = recipe_keys(experiments), list(dict.fromkeys(e.name for e in experiments))
    lines = ["# Recipes compared across DVC experiments", "",
             f"{len(names)} experiments: {', '.join(names)}; "
             f"`baseline` is the recipe of {experiments[0].name}, the others are named by what they change.",
             f"Recipes differ in: {', '.join(keys) if keys else 'nothing but the seed'}; "
             f"`{REPLICATE}` is the replicate axis.",
             "Each cell: the mean over seeds [95% t-interval] (n = seeds). `*`: the interval does not overlap "
             "another recipe's at that size (listed below the table). Perplexity is a geometric mean, "
             "its interval taken on log perplexity.", ""]
    single = [label for label, exps in groups.items() if len({_value(e.params.get(REPLICATE)) for e in exps}) < 2]
    for label in single:
        # replicate students (scaling.replicate_seeds) give a one-seed experiment intervals at their sizes
        where = "" if not any(e.replicates for e in groups[label]) else " outside its replicate sizes"
        lines.append(f"- `{label}` has a single seed{where}: no interval there. Queue more with "
                     f"`dvc exp run --queue -S seed=1,2` plus that recipe's `-S` options.")
    lines += [""] if single else []
    labels = list(groups)
    for metric, title in COMPARED.items():
        rows = tables[metric]
        lines += [f"## {title}", "", "| size | " + " | ".join(f"`{l}`" for l in labels) + " |",
                  "|---|" + "---|" * len(labels)]
        notes = []
        for size, row in rows.items():
            pairs = apart(row)
            marked = {x for pair in pairs for x in pair}
            cells = [_cell(row[l], metric, l in marked) if l in row else "-" for l in labels]
            lines.append(f"| {size} | " + " | ".join(cells) + " |")
            notes += [f"- n{size}: `{a}` and `{b}` do not overlap" for a, b in pairs]
        lines += [""] + (notes + [""] if notes else ["No two recipes' intervals are apart at any size.", ""])
    return "\n".join(lines)


def draw(tables: dict[str, dict[int, dict[str, Summary]]], labels: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(COMPARED), figsize=(6 * len(COMPARED), 4.5))
    for ax, (metric, title) in zip(axes, COMPARED.items()):
        rows = tables[metric]
        sizes = list(rows)
        for i, label in enumerate(labels):
            points = [(x, rows[n][label]) for x, n in enumerate(sizes) if label in rows[n]]
            if not points:
                continue
            xs = [x + (i - (len(labels) - 1) / 2) * 0.06 for x, _ in points]  # side by side, not on top
            means = [s.mean for _, s in points]
            low = [s.mean - (s.low if s.low is not None else s.mean) for _, s in points]
            high = [(s.high if s.high is not None else s.mean) - s.mean for _, s in points]
            ax.errorbar(xs, means, yerr=[low, high], marker="o", capsize=4, label=label)
        for x, n in enumerate(sizes):
            if apart(rows[n]):
                ax.annotate("*", (x, 1.0), xycoords=("data", "axes fraction"), ha="center", va="top", fontsize=16)
        ax.set_xticks(range(len(sizes)), [str(n) for n in sizes])
        if METRICS[metric].log_scale:
            ax.set_yscale("log")
        ax.set_xlabel("training samples (teacher answers)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 3), fontsize=8)
    fig.suptitle("kdscale: recipes across DVC experiments (mean and 95% interval over seeds; * intervals apart)")
    fig.tight_layout(rect=(0, 0.06 + 0.03 * ((len(names) - 1) // 3), 1, 1))
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def log_to_report_run(files: list[Path]) -> bool:
    """Attach the comparison to the latest `report` run of the project's MLflow store, if there is one."""
    from kdscale import tracking

    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///").split("?")[0]).exists():
        return False  # no store yet: do not create one just for this
    import mlflow

    tracking.setup()
    runs = mlflow.search_runs(filter_string="tags.`kdscale.stage` = 'report'", order_by=["start_time DESC"],
                              max_results=1, output_format="list")
    if not runs:
        return False
    run = runs[0]
    with tracking.start_run("compare", run.info.run_name, {}, run_id=run.info.run_id):
        for file in files:
            tracking.log_artifact(file, "compare")
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="kdscale compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="experiments to compare (default: all; `workspace` is one)")
    parser.add_argument("--input", type=Path, help="a saved `dvc exp show --json` instead of running it")
    parser.add_argument("--rev", action="append", default=[], metavar="COMMIT",
                        help="read the experiments of this baseline commit (repeatable; default HEAD's): "
                             "experiments queued before a later commit stay with theirs")
    args = parser.parse_args(argv)
    if args.input:
        try:
            show = json.loads(args.input.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"compare: cannot read {args.input} ({e}); save it with `dvc exp show --json > FILE`") \
                from None
    else:
        show = dvc_exp_show(args.rev)
    experiments = read_experiments(show, args.names, dvc_folder())
    if not experiments:
        raise UserError("compare: no experiment has student metrics yet; run `dvc repro` or `dvc exp run` first")
    groups = group(experiments)
    tables = {metric: table(groups, metric) for metric in COMPARED}
    md, png = paths.REPORTS_DIR / "compare.md", paths.REPORTS_DIR / "compare.png"
    with atomic_open(md) as f:
        f.write(markdown(experiments, groups, tables))
    draw(tables, list(groups), png)
    logged = log_to_report_run([md, png])
    print(f"compare: {len(experiments)} experiments, {len(groups)} recipes -> {md}, {png}"
          + (" (and the MLflow report run)" if logged else ""))


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
