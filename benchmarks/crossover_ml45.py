"""The long crossover study: pretrain on ML45-train, adapt to each ML45-test task, 3 seeds, budgets 0..20k env
steps, with and without 5 demos; prints the KPI table and writes benchmarks/results/crossover_ml45.json.

Goal (issue 4): the pretrained agent reaches 80% success on ML45-test tasks with >= 10x fewer env steps than
scratch (anchors: TD-MPC2 reports ~2x the from-scratch score after 20k steps; WPT needs ~15-30% of the samples).

This is many CPU-hours on 2 cores: it runs in resumable pieces. Each invocation continues the study folder (finished
runs are skipped, a killed run resumes from its checkpoint); `--max-runs N` stops after N more adaptation runs so
a session can commit its piece. Two invocations on the same --out split the runs between them (1 torch thread
each gets more from 2 cores than one process on 2 threads). The JSON is rewritten from whatever runs are finished.

Usage: python benchmarks/crossover_ml45.py [--out studies/ml45] [--max-runs N]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from crossover.study.config import StudyConfig  # noqa: E402
from crossover.study.kpi import load_run_records, summarise  # noqa: E402
from crossover.study.report import headlines, summary_table, write_report  # noqa: E402
from crossover.study.run import run_study  # noqa: E402

CONFIG = dict(
    sources="ML45-train", targets="ML45-test",
    scales=[{"source_tasks": 10, "episodes_per_task": 10}, {"source_tasks": 45, "episodes_per_task": 10}],
    budgets=[0, 2_500, 5_000, 10_000, 20_000], seeds=[0, 1, 2], demos=[0, 5], threshold=0.8,
    episode_length=200, pretrain_steps=20_000, eval_every=2_500, eval_episodes=10,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="studies/ml45")
    p.add_argument("--max-runs", type=int, default=None, help="stop after starting this many more adaptation runs")
    args = p.parse_args()
    cfg = StudyConfig(**CONFIG)
    run_study(cfg, args.out, progress=lambda line: print(line, flush=True), max_runs=args.max_runs)
    if not any(Path(args.out).glob("runs/*/result.json")):
        print("no finished runs yet")
        return
    records = load_run_records(args.out)
    summary = summarise(records, cfg.threshold, cfg.budgets)
    print("\n".join(headlines(summary)) + "\n\n" + summary_table(summary))
    write_report(args.out, summary)
    write_result("crossover_ml45", {"config": CONFIG, "finished_runs": len(records),
                                    "runs": [r.to_dict() for r in records]})


if __name__ == "__main__":
    main()
