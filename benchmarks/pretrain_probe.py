"""Does pretraining learn to act? Zero-shot success of a pretrained model on its own source tasks vs updates.

A pretrained world model that cannot solve the tasks it was trained on (planning with their own task embeddings)
has little behaviour to pass on to a new task, so this probe says whether a pretraining budget is worth adapting
from before a long crossover study spends hours on it.

The probe copies a pretraining run (default: the ML45 study's kept 45x50 model) into a work folder, extends it to
each budget in --updates (`pretrain --resume` with a larger step count, which continues the run exactly: same
weights as one long run), and after each budget evaluates --episodes episodes on each of --tasks, with the planner
and with the policy prior alone. Each budget's row goes to benchmarks/results/pretrain_probe_<name>.json as soon as
it is measured; a rerun skips measured budgets and resumes a killed extension from its checkpoint.

It needs the pretraining data the run was made from (its pretrain_config.json names the folder; for the ML45 study
that is studies/ml45/data/sources, which `crossover_ml45.py` collects). The extension runs with the run's own
torch threads (part of its settings: thread count changes float reduction order).

Usage (from the repository root): python benchmarks/pretrain_probe.py [--from RUN] [--updates 10000,20000,40000] [--tasks SPEC] [--episodes N]
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import arg_parser, RESULTS, write_result, read_json, run_benchmark  # noqa: E402

from crossover.errors import CrossoverError  # noqa: E402
from crossover.eval.run import evaluate_run  # noqa: E402
from crossover.tasks import resolve_tasks  # noqa: E402
from crossover.train.pretrain import PretrainConfig, pretrain  # noqa: E402

DEFAULT_RUN = RESULTS / "pretrained" / "ml45" / "45x50"
# Source tasks of every difficulty that scratch training solves or nearly solves in 20k steps (issue 3) or that
# need more than reaching: pressing, sliding, opening, pushing.
DEFAULT_TASKS = ("reach-wall-v3,button-press-topdown-v3,drawer-close-v3,door-open-v3,plate-slide-v3,window-open-v3,"
                 "faucet-open-v3,push-v3")


def main() -> None:
    p = arg_parser(__doc__)
    p.add_argument("--from", dest="source", default=str(DEFAULT_RUN), help="a finished `crossover pretrain` run")
    p.add_argument("--updates", default="10000,20000,40000", help="pretraining budgets to probe, comma-separated")
    p.add_argument("--tasks", default=DEFAULT_TASKS, help="source tasks to evaluate (default: 8 of them)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per task")
    p.add_argument("--work", default=None, help="where the extended copy lives (default: runs/probe/<name>)")
    args = p.parse_args()
    try:
        budgets = _budgets(args.updates)
        if args.episodes < 1:  # checked before any pretraining is extended
            raise CrossoverError(f"--episodes must be at least 1 (got {args.episodes})")
        tasks = [t.name for t in resolve_tasks(args.tasks)]
        source = Path(args.source)
        name = f"{source.parent.name}_{source.name}"
        work = Path(args.work or f"runs/probe/{name}")
        cfg = _run_config(source)
        missing = [d for d in cfg["data"] if not Path(d).exists()]
        if missing:
            raise CrossoverError(f"{source}: its pretraining data {missing[0]} is not here; collect it first (see "
                                 f"this script's --help)")
        known = [t.name for t in resolve_tasks(cfg["tasks"])] if cfg["tasks"] else tasks  # None: all in the data
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise CrossoverError(f"{source}: {unknown[0]} is not one of its source tasks")
        if not work.exists():
            shutil.copytree(source, work)
        out = RESULTS / f"pretrain_probe_{name}.json"
        rows = read_json(out, rows=list)["rows"] if out.exists() else []
        for budget in budgets:
            if any(r["updates"] == budget for r in rows):
                continue
            if budget < cfg["steps"]:
                raise CrossoverError(f"{source}: already has {cfg['steps']:,} updates; probe budgets from there up")
            run = pretrain(PretrainConfig(**{**cfg, "steps": budget}), work, resume=True,
                           progress=lambda line: print(line, flush=True))
            rows.append(_probe(work, tasks, args.episodes, run))
            rows.sort(key=lambda r: r["updates"])
            write_result(f"pretrain_probe_{name}", {"run": str(source), "episodes": args.episodes, "rows": rows})
    except CrossoverError as e:
        sys.exit(f"error: {e}")
    print(_table(rows, tasks))


def _budgets(text: str) -> list[int]:
    try:
        budgets = sorted({int(u) for u in text.split(",")})
    except ValueError:
        raise CrossoverError(f"--updates must be comma-separated update counts, got {text!r}") from None
    if budgets[0] < 1:
        raise CrossoverError(f"--updates must be >= 1, got {budgets[0]}")
    return budgets


def _run_config(run: Path) -> dict:
    try:
        return read_json(run / "pretrain_config.json", data=list, tasks=str | None, steps=int)
    except CrossoverError as e:
        raise CrossoverError(f"{run}: not a readable `crossover pretrain` run ({e})") from None


def _probe(work: Path, tasks: list[str], episodes: int, run) -> dict:
    """Success of the planner and of the policy prior alone (a few seconds per task, no planning) per task."""
    wall0 = time.time()
    success, prior = {}, {}
    for task in tasks:
        success[task] = evaluate_run(work, task, episodes).success_rate
        prior[task] = evaluate_run(work, task, episodes, prior_only=True).success_rate
        print(f"[probe] {run.updates:,} updates: {task} {success[task]:.0%} (prior alone {prior[task]:.0%})",
              flush=True)
    return {"updates": run.updates, "pretrain_wall_s": round(run.wall_s, 1), "pretrain_cpu_s": round(run.cpu_s, 1),
            "success": success, "mean_success": round(sum(success.values()) / len(success), 4),
            "prior_success": prior, "mean_prior_success": round(sum(prior.values()) / len(prior), 4),
            "probe_wall_s": round(time.time() - wall0, 1)}


def _table(rows: list[dict], tasks: list[str]) -> str:
    """Planner success per task, and the policy prior's alone after a slash (rows from before it was measured
    show only the planner's)."""
    lines = ["updates   " + "  ".join(t.removesuffix("-v3")[:14].ljust(14) for t in tasks) + "  mean"]
    for r in rows:
        prior = r.get("prior_success", {})
        cells = [(f"{r['success'].get(t, float('nan')):.0%}" + (f" / {prior[t]:.0%}" if t in prior else "")).ljust(14)
                 for t in tasks]
        mean = f"{r['mean_success']:.0%}" + (f" / {r['mean_prior_success']:.0%}" if prior else "")
        lines.append(f"{r['updates']:<9,} " + "  ".join(cells) + f"  {mean}")
    return "\n".join(lines)


if __name__ == "__main__":
    run_benchmark(main)
