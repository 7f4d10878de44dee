"""Which task embedding should a new task start from? Zero-shot success of a pretrained model on held-out tasks.

`crossover adapt` without demos starts a new task's embedding at the (normalised) mean of the source tasks'
(crossover/train/pretrain.py: load_pretrained); with demos it picks the source task whose embedding best predicts
them. This probe asks what the 0-demo choice costs: for each --targets task it evaluates the pretrained agent
zero-shot with the mean embedding (what adapt does, so the first row must match the study's step-0 evaluation of
a 0-demo pretrained run) and with each --sources task's own embedding instead (what `add_task(init_from=...)`
would copy), on the same fixed evaluation episodes, with the planner and with the policy prior alone. No training:
it measures the pretrained weights only.

Found with it (2026-11-28, session 21; the ML45 study's 45x50 model, 10 episodes): a sibling's embedding does no
better than the mean. door-lock-v3: planner 0/10 with the mean, door-open-v3's or door-close-v3's embedding; prior
1/10, 0/10, 0/10. door-unlock-v3: planner 1/10, 0/10, 0/10; prior 0/10, 2/10, 0/10. All within the noise of 10
episodes; the mean rows equal the study's step-0 evaluations of its 0-demo pretrained runs, and a rerun gave the
same rows to the last digit of every return.

Each row goes to benchmarks/results/embedding_probe_<run name>.json as soon as it is measured; a rerun skips the
rows already there (same target, embedding and episode count).

Usage (from the repository root): python benchmarks/embedding_probe.py [--from RUN] [--targets SPEC]
    [--sources SPEC] [--episodes N]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import arg_parser, RESULTS, write_result, read_json, run_benchmark  # noqa: E402

import torch  # noqa: E402

from crossover.errors import CrossoverError  # noqa: E402
from crossover.eval.rollout import evaluate  # noqa: E402
from crossover.tasks import get_task, resolve_tasks  # noqa: E402
from crossover.train.pretrain import load_pretrained  # noqa: E402

DEFAULT_RUN = RESULTS / "pretrained" / "ml45" / "45x50"
MEAN = "mean of sources"


def main() -> None:
    p = arg_parser(__doc__)
    p.add_argument("--from", dest="source", default=str(DEFAULT_RUN), help="a finished `crossover pretrain` run")
    p.add_argument("--targets", default="door-lock-v3,door-unlock-v3", help="held-out tasks to evaluate on")
    p.add_argument("--sources", default="door-open-v3,door-close-v3",
                   help="source tasks whose embeddings to try in place of the mean")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per row and way of acting")
    p.add_argument("--episode-length", type=int, default=200, help="steps per episode (the ML45 study's: 200)")
    args = p.parse_args()
    try:
        run(Path(args.source), [t.name for t in resolve_tasks(args.targets)],
            [t.name for t in resolve_tasks(args.sources)], args.episodes, args.episode_length)
    except CrossoverError as exc:
        sys.exit(f"error: {exc}")


def run(source: Path, targets: list[str], sources: list[str], episodes: int, episode_length: int) -> None:
    if episodes < 1 or episode_length < 1:
        raise CrossoverError(f"--episodes and --episode-length must be at least 1 (got {episodes} and "
                             f"{episode_length})")
    torch.set_num_threads(1)  # as the ML45 study runs; leaves the other core to whatever else is running
    name = f"embedding_probe_{source.name}"
    path = RESULTS / f"{name}.json"
    rows = []
    if path.exists():
        kept = read_json(path, episode_length=int, rows=list)
        if kept["episode_length"] != episode_length:
            raise CrossoverError(f"{path} holds rows at episode length {kept['episode_length']}; pass "
                                 f"--episode-length {kept['episode_length']} or move the file aside")
        rows = kept["rows"]
    done = {(r["target"], r["embedding"], r["episodes"]) for r in rows}
    for target in targets:
        agent, info = load_pretrained(source, target, seed=0)
        if info["seen_in_pretraining"]:
            raise CrossoverError(f"{target} is a source task of {source}; give held-out --targets")
        tasks = info["tasks"]
        missing = [s for s in sources if s not in tasks]
        if missing:
            raise CrossoverError(f"{', '.join(missing)}: not source tasks of {source}")
        spec = get_task(target)
        for embedding, index in [(MEAN, len(tasks) - 1)] + [(s, tasks.index(s)) for s in sources]:
            if (target, embedding, episodes) in done:
                continue
            start = time.process_time()
            planned = evaluate(agent, spec, index, episodes, episode_length)
            prior = evaluate(agent, spec, index, episodes, episode_length, prior_only=True)
            rows.append({"target": target, "embedding": embedding, "episodes": episodes,
                         "success": planned.success_rate, "return": planned.mean_return,
                         "prior_success": prior.success_rate, "prior_return": prior.mean_return,
                         "cpu_s": round(time.process_time() - start, 1)})
            write_result(name, {"run": str(source), "episode_length": episode_length, "rows": rows}, path)
            print(f"[probe] {target} with the embedding of {embedding}: planner {planned.success_rate:.0%}, "
                  f"prior {prior.success_rate:.0%}", flush=True)
    print(_table(rows))
    print(f"wrote {path}")


def _table(rows: list[dict]) -> str:
    lines = [f"{'target':<16} {'embedding':<20} {'episodes':>8} {'planner':>8} {'return':>7} {'prior':>6} "
             f"{'return':>7}"]
    for r in rows:
        lines.append(f"{r['target']:<16} {r['embedding']:<20} {r['episodes']:>8} {r['success']:>8.0%} "
                     f"{r['return']:>7.0f} {r['prior_success']:>6.0%} {r['prior_return']:>7.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    run_benchmark(main)
