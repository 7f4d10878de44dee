"""From-scratch learning on real Meta-World tasks: success vs env steps and wall-clock, per task and seed.

Goal (issue 3): >= 90% evaluation success on reach-v3 and >= 80% on at least two of button-press-topdown-v3,
drawer-close-v3, door-open-v3, plate-slide-v3, within the budget below, 3 seeds.

Budget: 20,000 env steps per run (200-step episodes, 1 update per step after 1,000 random steps), evaluated every
2,000 steps on 10 fixed layouts. Each (task, seed) run is a resumable piece: its training folder lives under
runs/bench/ (not committed; rerunning the script continues it after a kill) and its small result is written to
benchmarks/results/scratch_learning/<task>__seed<S>.json once finished, so a later session continues the grid.

Usage: python benchmarks/scratch_learning.py [--tasks reach-v3,...] [--seeds 0,1,2] [--steps 20000] [--threads 2]
Two pieces side by side: run it twice with disjoint --tasks/--seeds and --threads 1 each.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import arg_parser, RESULTS, write_result, read_json, run_benchmark  # noqa: E402

from crossover.errors import CrossoverError  # noqa: E402
from crossover.train.online import AdaptConfig, adapt  # noqa: E402

TASKS = "reach-v3,button-press-topdown-v3,drawer-close-v3,door-open-v3,plate-slide-v3"
GOAL_TASK, GOAL_TASK_SUCCESS = "reach-v3", 0.9  # and OTHERS_SUCCESS on at least OTHERS_NEEDED of the other tasks
OTHERS_SUCCESS, OTHERS_NEEDED, GOAL_SEEDS = 0.8, 2, 3  # mean final success over GOAL_SEEDS seeds


def main() -> None:
    p = arg_parser(__doc__)
    p.add_argument("--tasks", default=TASKS)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--eval-every", type=int, default=2_000)
    p.add_argument("--runs", default="runs/bench", help="where the training runs live (resumable)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads per run; two runs side by side with 1 thread each beat one run with 2")
    p.add_argument("--report-only", action="store_true", help="only print the table of finished pieces")
    args = p.parse_args()
    tasks, seeds = args.tasks.split(","), args.seeds.split(",")
    if not all(s.isdigit() for s in seeds) or args.steps < 0 or args.eval_every < 1:
        raise CrossoverError(f"--seeds must be whole numbers >= 0 separated by commas, --steps >= 0 and "
                             f"--eval-every >= 1 (got {args.seeds!r}, {args.steps}, {args.eval_every})")
    seeds = [int(s) for s in seeds]
    pieces = RESULTS / "scratch_learning"
    pieces.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        for seed in seeds:
            name = f"{task}__seed{seed}"
            if (pieces / f"{name}.json").exists() or args.report_only:
                continue
            cfg = AdaptConfig(task, steps=args.steps, eval_every=args.eval_every, seed=seed, threads=args.threads)
            r = adapt(cfg, Path(args.runs) / name, resume=True)
            write_result(f"scratch_learning/{name}", {"task": task, "seed": seed, "config": cfg.__dict__,
                                                      "curve": r.curve, "wall_s": r.wall_s, "cpu_s": r.cpu_s})
    rows = [read_json(f, task=str, seed=int, curve=list, wall_s=float) for f in sorted(pieces.glob("*.json"))]
    print(f"{'task':<26} {'seed':>4} " + " ".join(f"{'@' + format(s, ','):>8}" for s in range(0, args.steps + 1, args.eval_every))
          + f" {'wall min':>8} {'final':>6}")
    for r in rows:
        by_step = {p["env_steps"]: p["success"] for p in r["curve"]}
        cells = " ".join(f"{by_step[s]:>8.0%}" if s in by_step else f"{'':>8}" for s in range(0, args.steps + 1, args.eval_every))
        print(f"{r['task']:<26} {r['seed']:>4} {cells} {r['wall_s'] / 60:>8.1f} {r['curve'][-1]['success']:>6.0%}")
    finals: dict[str, list[float]] = {}
    for r in rows:
        finals.setdefault(r["task"], []).append(r["curve"][-1]["success"])
    summary = {t: sum(v) / len(v) for t, v in finals.items()}
    full = {t for t, v in finals.items() if len(v) >= GOAL_SEEDS}  # a task counts for the goal once all seeds ran
    reach_met = GOAL_TASK in full and summary[GOAL_TASK] >= GOAL_TASK_SUCCESS
    others = sorted(t for t in full if t != GOAL_TASK and summary[t] >= OTHERS_SUCCESS)
    goal_met = reach_met and len(others) >= OTHERS_NEEDED
    print("mean final success: " + ", ".join(f"{t} {v:.0%} ({len(finals[t])} seeds)" for t, v in summary.items()))
    print(f"goal ({GOAL_SEEDS} seeds per task): {GOAL_TASK} >= {GOAL_TASK_SUCCESS:.0%}: "
          f"{'met' if reach_met else 'not met'}; >= {OTHERS_SUCCESS:.0%} on {OTHERS_NEEDED} others: "
          f"{', '.join(others) or 'none'} -> goal {'met' if goal_met else 'not met'}")
    write_result("scratch_learning_summary", {"pieces": len(rows), "mean_final_success": summary,
                                              "seeds_per_task": {t: len(v) for t, v in finals.items()},
                                              "goal_met": goal_met, "other_tasks_at_goal": others})


if __name__ == "__main__":
    run_benchmark(main)
