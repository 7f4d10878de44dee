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


def _pretrain(args) -> int:
    from crossover.train.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(data=args.data, tasks=args.tasks, preset=args.preset, steps=args.steps,
                         eval_every=args.eval_every, seed=args.seed, threads=args.threads,
                         **({} if args.bc_coef is None else {"bc_coef": args.bc_coef}))
    r = pretrain(cfg, args.out, resume=args.resume)
    print(f"[pretrain] {r.updates:,} updates on {len(r.tasks)} tasks in {r.wall_s / 60:.1f} min "
          f"({r.cpu_s / 60:.1f} CPU-min); checkpoint in {r.run_dir / 'checkpoint'}")
    return 0


def _adapt(args) -> int:
    from crossover.train.online import AdaptConfig, adapt

    if args.init != "scratch" and (args.preset, args.seed_steps) != (None, None):
        raise CrossoverError("--preset and --seed-steps are for --from scratch only: a pretrained run keeps its "
                             "model's size and plans from its first step")
    cfg = AdaptConfig(task=args.task, init=args.init, steps=args.steps, demos=args.demos, eval_every=args.eval_every,
                      eval_episodes=args.eval_episodes, episode_length=args.episode_length, seed=args.seed,
                      seed_steps=args.seed_steps, threads=args.threads,
                      **({} if args.preset is None else {"preset": args.preset}))
    r = adapt(cfg, args.out, resume=args.resume)
    last = r.curve[-1]
    print(f"[adapt] {args.task}: success {last['success']:.0%} after {r.env_steps:,} env steps and {r.demos} demos, "
          f"{r.wall_s / 60:.1f} min ({r.cpu_s / 60:.1f} CPU-min); metrics in {r.run_dir}")
    return 0


def _evaluate(args) -> int:
    from crossover.eval.run import evaluate_run

    r = evaluate_run(args.run, args.task, args.episodes, args.episode_length, prior_only=args.prior_only)
    steps = f"{r.mean_steps_to_success:.0f}" if r.mean_steps_to_success is not None else "-"
    print(f"{args.task}: success {r.success_rate:.0%} over {r.episodes} episodes, mean steps to success {steps}, "
          f"mean return {r.mean_return:.1f}")
    return 0


def _study(args) -> int:
    from crossover.study.config import load_study_config
    from crossover.study.run import has_finished_runs, report_study, run_study

    run_study(load_study_config(args.config), args.out, max_runs=args.max_runs)
    if not has_finished_runs(args.out):
        print(f"no run of {args.out} is finished yet, so there is no report (`crossover status {args.out}` shows "
              f"where they stand)")
        return 0
    path, text = report_study(args.out)
    print(text)
    print(f"\nreport: {path}")
    return 0


def _report(args) -> int:
    from crossover.study.run import report_study

    path, text = report_study(args.dir, args.threshold, args.acting)
    print(text)
    print(f"\nreport: {path}")
    return 0


def _status(args) -> int:
    from crossover.study.status import format_status, study_status

    print(format_status(study_status(args.dir), processes=args.processes))
    return 0


def _demo(args) -> int:
    from crossover.study.config import load_study_config

    demo = load_study_config("demo")
    print(f"[demo] a small real crossover study (about 15 min on 2 CPU cores) in {args.out}: collect "
          f"{len(demo.source_names)} source tasks, pretrain at {len(demo.scales)} scales, adapt to "
          f"{', '.join(demo.target_names)} from each and from scratch, then the report; rerun to reuse it")
    args.config, args.max_runs = "demo", None
    return _study(args)


def _at_least(minimum: int):
    """An argparse type: a whole number >= minimum; anything else is a usage error naming the value."""
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return whole


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crossover", description="Pretrain one robot world model on many tasks, adapt it to "
                                "new ones, and measure when that beats training from scratch.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    s = sub.add_parser("tasks", help="list the tasks Crossover knows (--split filters them)")
    s.add_argument("--split", metavar="SPEC", help="only these: split names and/or task names, comma-separated "
                   "(MT10, MT50, ML10-train, ML10-test, ML45-train, ML45-test)")
    s.set_defaults(handler=_tasks)

    s = sub.add_parser("collect", help="roll out scripted experts / noisy experts / random policies into a dataset",
                       description="Collect episodes into a LeRobot v3.0 dataset folder. Rerunning on the same --out "
                       "resumes: episodes already written are kept and not collected again.")
    s.add_argument("--tasks", required=True, metavar="SPEC", help="split names and/or task names; a leading - removes one, "
                   "e.g. ML45-train,-reach-v3")
    s.add_argument("--episodes", type=int, required=True, help="episodes per task")
    s.add_argument("--out", required=True, metavar="DIR", help="dataset folder (created, or resumed if it exists)")
    s.add_argument("--policy", default="expert", help="expert, random or noisy:SIGMA (expert plus Gaussian action noise)")
    s.add_argument("--mix", metavar="MIX", help="several policies by fraction, e.g. expert:0.5,noisy:0.3:0.3,random:0.2 "
                   "(overrides --policy)")
    s.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    s.add_argument("--seed", type=_at_least(0), default=0, help="the same seed gives the same episodes (default 0)")
    s.add_argument("--episode-length", type=_at_least(1), default=None,
                   help="steps per episode (default: the task's, 500)")
    s.add_argument("--flush-every", type=int, default=25, metavar="N",
                   help="episodes per data file; a killed run loses at most this many (default 25)")
    s.set_defaults(handler=_collect)

    s = sub.add_parser("inspect", help="summarise a dataset and verify its checksums")
    s.add_argument("dir", metavar="DIR", help="dataset folder")
    s.set_defaults(handler=_inspect)

    s = sub.add_parser("pretrain", help="train one multi-task world model offline on collected episodes",
                       description="Pretrain the world model (every component, task embeddings included) on datasets "
                       "from `collect`. Checkpoints every --eval-every updates; --resume continues a killed run, "
                       "and with a larger --steps extends a finished one.")
    s.add_argument("--data", required=True, action="append", metavar="DIR", help="dataset folder (repeatable)")
    s.add_argument("--out", required=True, metavar="RUN", help="run folder for checkpoints and metrics")
    s.add_argument("--tasks", metavar="SPEC", help="train on these tasks only (default: all in the data)")
    s.add_argument("--preset", default="1m", choices=["1m", "5m"], help="world-model size (default 1m)")
    s.add_argument("--steps", type=int, default=20_000, help="gradient updates (default 20000)")
    s.add_argument("--eval-every", type=int, default=1_000, help="held-out losses + checkpoint period, in updates")
    s.add_argument("--bc-coef", type=float, metavar="W",
                   help="behaviour-cloning weight on the policy prior, against offline over-estimation (default: "
                        "2.5; 0 is TD-MPC2's pure max-Q prior)")
    s.add_argument("--seed", type=_at_least(0), default=0)
    s.add_argument("--threads", type=_at_least(1), default=2, help="torch threads (default 2)")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    s.set_defaults(handler=_pretrain)

    s = sub.add_parser("adapt", help="train the agent online on one task, from scratch or from a pretrained run",
                       description="Online training by planning in the learned world model. --from scratch is the "
                       "task-specific baseline; --from RUN fine-tunes a `crossover pretrain` run on the task.")
    s.add_argument("--task", required=True, help="target task, e.g. door-lock-v3")
    s.add_argument("--from", dest="init", default="scratch", metavar="RUN|scratch", help="starting point (default scratch)")
    s.add_argument("--steps", type=int, default=20_000, help="env-step budget (0 measures zero-shot success)")
    s.add_argument("--out", required=True, metavar="RUN", help="run folder for checkpoints and metrics")
    s.add_argument("--demos", type=int, default=0, help="scripted-expert episodes: learned from before the first "
                   "step, cloned in scratch's seed phase, oversampled and cloned after; the cloned prior acts in "
                   "a falling share of the first training episodes (see DEMO_METHOD in crossover/train/online.py)")
    s.add_argument("--eval-every", type=int, default=2_000, help="evaluate every this many env steps")
    s.add_argument("--eval-episodes", type=_at_least(1), default=10, help="episodes per evaluation (fixed seeds)")
    s.add_argument("--episode-length", type=_at_least(1), default=200, help="steps per episode (default 200)")
    s.add_argument("--preset", choices=["1m", "5m"], help="world-model size, --from scratch only (default 1m)")
    s.add_argument("--seed-steps", type=int, default=None,
                   help="seed-phase steps before planning (random actions, or the prior cloned from --demos), "
                   "--from scratch only (default: max(1000, 5 episodes))")
    s.add_argument("--seed", type=_at_least(0), default=0)
    s.add_argument("--threads", type=_at_least(1), default=2, help="torch threads (default 2)")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    s.set_defaults(handler=_adapt)

    s = sub.add_parser("evaluate", help="success rate, steps to success and return of a run's agent on a task")
    s.add_argument("run", metavar="RUN", help="a run folder from adapt or pretrain")
    s.add_argument("--task", required=True,
                   help="a task the run trained on; a pretrain run also takes a new one (zero-shot success)")
    s.add_argument("--episodes", type=_at_least(1), default=10)
    s.add_argument("--episode-length", type=_at_least(1), default=200)
    s.add_argument("--prior-only", action="store_true",
                   help="act with the policy prior's mean action, no planning: what the prior alone has learned")
    s.set_defaults(handler=_evaluate)

    s = sub.add_parser("study", help="run a crossover study: pretrain, adapt vs scratch, KPIs and report",
                       description="Runs the grid targets x seeds x demos x {scratch, pretrained at each scale}, "
                       "collecting and pretraining what is missing. Each run goes to the largest budget; success at "
                       "the smaller budgets is read off its evaluations. Restarting skips finished runs; two processes "
                       "on one --out split the runs between them.")
    s.add_argument("--config", required=True, metavar="FILE|demo", help="study YAML file, or the built-in preset 'demo'")
    s.add_argument("--out", required=True, metavar="DIR", help="study folder (created, or continued)")
    s.add_argument("--max-runs", type=int, default=None, metavar="N",
                   help="stop after starting N adaptation runs (run again to continue)")
    s.set_defaults(handler=_study)

    s = sub.add_parser("report", help="write report.html and print the KPI table of a study folder")
    s.add_argument("dir", metavar="DIR", help="study folder")
    s.add_argument("--threshold", type=float, metavar="RATE",
                   help="success rate in (0, 1] that counts as solved (default: the study's own)")
    s.add_argument("--acting", choices=["planner", "prior"], default="planner",
                   help="whose evaluations the KPIs use: the planner's (default), or the policy prior's alone, "
                        "measured at every evaluation too; training and costs are the same (written to "
                        "DIR/prior_acting/)")
    s.set_defaults(handler=_report)

    s = sub.add_parser("status", help="which runs of a study are finished, running, stopped or not started, and "
                       "the cost of what is left", description="Reads a study folder without changing it: every run "
                       "that has begun (env steps, CPU and wall-clock so far, last success) and an estimate of what "
                       "is left from the cost of the finished runs.")
    s.add_argument("dir", metavar="DIR", help="study folder")
    s.add_argument("--processes", type=int, default=2, metavar="N",
                   help="study processes side by side, for the wall-clock estimate (default 2)")
    s.set_defaults(handler=_status)

    s = sub.add_parser("demo", help="the built-in small study (about 15 min on 2 CPU cores), then its report")
    s.add_argument("--out", default="studies/demo", metavar="DIR", help="study folder (default studies/demo)")
    s.set_defaults(handler=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    # OSError: a file where a folder is meant, a folder that cannot be written, a full disk, ...
    except (CrossoverError, OSError) as e:
        print(f"crossover {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        again = " with --resume" if getattr(args, "resume", None) is False else ""
        print(f"crossover {args.verb}: interrupted; rerun the same command{again} to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
