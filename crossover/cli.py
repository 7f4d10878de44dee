"""The `crossover` command: parses arguments and calls one library function per verb; no logic lives here."""
from __future__ import annotations

import argparse
import sys

from crossover.errors import CrossoverError


def _tasks(args) -> int:
    from crossover.tasks import all_tasks, resolve_tasks

    tasks = resolve_tasks(args.split) if args.split else all_tasks()
    print(f"{'task':<30} {'suite':<10} {'embodiment':<10} {'obs':>4} {'act':>4} {'steps':>6}  description")
    for t in tasks:
        print(f"{t.name:<30} {t.suite:<10} {t.embodiment:<10} {t.obs_dim:>4} {t.action_dim:>4} {t.episode_length:>6}  {t.description}")
    return 0


def _collect(args) -> int:
    from crossover.data.collect import collect
    from crossover.tasks import resolve_tasks

    r = collect(resolve_tasks(args.tasks), args.episodes, args.out, policy=args.policy, mix=args.mix,
                workers=args.workers, seed=args.seed, episode_length=args.episode_length,
                flush_every=args.flush_every)
    print(f"[collect] wrote {r.episodes_written} episodes ({r.frames:,} frames) in {r.seconds:.1f}s to {r.out}"
          + (f"; {r.episodes_skipped} were already there" if r.episodes_skipped else ""))
    return 0


def _inspect(args) -> int:
    from crossover.data.inspect import format_summary, inspect_dataset

    summary = inspect_dataset(args.dir)
    print(format_summary(summary))
    return 0 if summary.ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crossover", description="Pretrain one robot world model on many tasks, adapt it to "
                                "new ones, and measure when that beats training from scratch.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    s = sub.add_parser("tasks", help="list the tasks and splits Crossover knows")
    s.add_argument("--split", metavar="SPEC", help="only these: split names and/or task names, comma-separated "
                   "(MT10, MT50, ML10-train, ML10-test, ML45-train, ML45-test)")
    s.set_defaults(run=_tasks)

    s = sub.add_parser("collect", help="roll out scripted experts / noisy experts / random policies into a dataset",
                       description="Collect episodes into a LeRobot v3.0 dataset folder. Rerunning on the same --out "
                       "resumes: episodes already written are kept and not collected again.")
    s.add_argument("--tasks", required=True, metavar="SPEC", help="split names and/or task names, e.g. ML45-train,reach-v3")
    s.add_argument("--episodes", type=int, required=True, help="episodes per task")
    s.add_argument("--out", required=True, metavar="DIR", help="dataset folder (created, or resumed if it exists)")
    s.add_argument("--policy", default="expert", help="expert, random or noisy:SIGMA (expert plus Gaussian action noise)")
    s.add_argument("--mix", metavar="MIX", help="several policies by fraction, e.g. expert:0.5,noisy:0.3:0.3,random:0.2 "
                   "(overrides --policy)")
    s.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    s.add_argument("--seed", type=int, default=0, help="the same seed gives the same episodes (default 0)")
    s.add_argument("--episode-length", type=int, default=None, help="steps per episode (default: the task's, 500)")
    s.add_argument("--flush-every", type=int, default=25, metavar="N",
                   help="episodes per data file; a killed run loses at most this many (default 25)")
    s.set_defaults(run=_collect)

    s = sub.add_parser("inspect", help="summarise a dataset and verify its checksums")
    s.add_argument("dir", metavar="DIR", help="dataset folder")
    s.set_defaults(run=_inspect)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CrossoverError as e:
        print(f"crossover {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"crossover {args.verb}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
