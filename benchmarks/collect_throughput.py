"""Throughput of `crossover collect` with 1 and 2 workers next to the raw env.step rate of the same tasks.

Goal (issue 2): collect with 2 workers at >= 1.6x the single-core raw env.step rate.
Usage: python benchmarks/collect_throughput.py [--tasks MT10] [--episodes 10]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import arg_parser, write_result, run_benchmark  # noqa: E402

from crossover.data.collect import collect  # noqa: E402
from crossover.data.episodes import EpisodeDataset  # noqa: E402
from crossover.tasks import get_task, make_env, resolve_tasks  # noqa: E402


def raw_step_rate(dataset: Path) -> float:
    """env.step alone, one process, replaying the actions of the episodes `collect` just wrote (same layouts,
    same contacts), with no policy, no storage and no episode bookkeeping timed."""
    ds = EpisodeDataset(dataset)
    envs: dict = {}
    steps, elapsed = 0, 0.0
    for ep in ds.iter_episodes():
        if ep.task not in envs:
            envs[ep.task] = make_env(get_task(ep.task), len(ep))
        env = envs[ep.task]
        env.reset(ep.seed)
        start = time.perf_counter()
        for a in ep.action:
            env.step(a)
        elapsed += time.perf_counter() - start
        steps += len(ep)
    for env in envs.values():
        env.close()
    return steps / elapsed


def main() -> None:
    p = arg_parser(__doc__)
    p.add_argument("--tasks", default="MT10")
    p.add_argument("--episodes", type=int, default=10, help="expert episodes per task per measurement")
    args = p.parse_args()
    tasks = resolve_tasks(args.tasks)
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        for workers in (1, 2):
            r = collect(tasks, args.episodes, Path(d) / f"ds{workers}", workers=workers, progress=lambda _: None)
            rows[f"collect, {workers} worker{'s' if workers > 1 else ''}"] = r.frames / r.seconds
        raw = raw_step_rate(Path(d) / "ds1")
    rows = {"raw env.step (1 core)": raw, **rows}
    print(f"{'measurement':<26} {'transitions/s':>14} {'x raw':>7}")
    for name, rate in rows.items():
        print(f"{name:<26} {rate:>14,.0f} {rate / raw:>7.2f}")
    speedup = rows["collect, 2 workers"] / raw
    print(f"goal: 2 workers >= 1.6x raw single-core rate -> {speedup:.2f}x ({'met' if speedup >= 1.6 else 'NOT met'})")
    path = write_result("collect_throughput", {"tasks": args.tasks, "episodes_per_task": args.episodes,
                                               "transitions_per_s": rows, "two_worker_vs_raw": speedup,
                                               "goal": 1.6, "met": speedup >= 1.6})
    print(f"wrote {path}")


if __name__ == "__main__":
    run_benchmark(main)
