"""Agent speed on this machine: updates/s (batch 256, horizon 3, 2 threads), ms per planned action (1 and 2
threads), and the fraction of the machine's measured dense fp32 matmul FLOP/s that the update and the planner reach.
Prints a table and writes benchmarks/results/agent_speed.json.

    python benchmarks/agent_speed.py [--presets 1m 5m] [--num-q 5 2] [--updates 30] [--acts 200]

The machine must be otherwise idle: a second process on a 2-core machine stalls torch's OpenMP threads, so the
load average before and after is recorded with the results.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import arg_parser, RESULTS, write_result, run_benchmark  # noqa: E402

from crossover.agent.agent import Agent, AgentConfig  # noqa: E402
from crossover.errors import CrossoverError  # noqa: E402
from crossover.model.world_model import WorldModelConfig  # noqa: E402

OBS_DIM, ACTION_DIM, NUM_TASKS = 39, 4, 10  # Meta-World observation/action sizes, an MT10-sized task set


def matmul_peak(threads: int, n: int = 2048, repeats: int = 10) -> float:
    """Dense fp32 matmul FLOP/s with `threads` threads (best of `repeats`)."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def make_batch(gen: torch.Generator, horizon: int, batch_size: int) -> dict[str, torch.Tensor]:
    return {
        "obs": torch.randn(horizon + 1, batch_size, OBS_DIM, generator=gen),
        "action": torch.rand(horizon, batch_size, ACTION_DIM, generator=gen) * 2 - 1,
        "reward": torch.rand(horizon, batch_size, generator=gen) * 10,
        "task": torch.randint(0, NUM_TASKS, (batch_size,), generator=gen),
        "terminated": torch.zeros(horizon, batch_size),
    }


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def bench_updates(agent: Agent, threads: int, num_updates: int) -> tuple[float, int]:
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(1)
    batches = [make_batch(gen, agent.cfg.horizon, agent.cfg.batch_size) for _ in range(4)]
    flops = count_flops(lambda: agent.update(batches[0]))
    for i in range(3):
        agent.update(batches[i % 4])
    start = time.perf_counter()
    for i in range(num_updates):
        agent.update(batches[i % 4])
    return num_updates / (time.perf_counter() - start), flops


def bench_acts(agent: Agent, threads: int, num_acts: int) -> tuple[float, float, int]:
    """Median and p95 ms per act() over one simulated episode (t0 only at the first call)."""
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    observations = rng.standard_normal((num_acts, OBS_DIM)).astype(np.float32)
    for i in range(5):
        agent.act(observations[i], task=0, t0=i == 0)
    flops = count_flops(lambda: agent.act(observations[0], task=0, t0=False))
    times = []
    for i in range(num_acts):
        start = time.perf_counter()
        agent.act(observations[i], task=0, t0=i == 0)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), float(np.percentile(times, 95)), flops


def _agent_config(overrides: list[str]) -> AgentConfig:
    """AgentConfig with FIELD=VALUE overrides, each typed like the field's default."""
    defaults, typed = AgentConfig().to_dict(), {}
    for item in overrides:
        name, equals, text = item.partition("=")
        if not equals or name not in defaults or isinstance(defaults[name], (bool, str)) or defaults[name] is None:
            numeric = sorted(k for k, v in defaults.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
            raise CrossoverError(f"--agent {item!r}: give FIELD=NUMBER, FIELD one of {', '.join(numeric)}")
        try:
            typed[name] = int(text) if isinstance(defaults[name], int) else float(text)
        except ValueError:
            kind = "whole number" if isinstance(defaults[name], int) else "number"
            raise CrossoverError(f"--agent {item!r}: {text!r} is not a {kind}") from None
    return AgentConfig.from_dict({**defaults, **typed})


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--presets", nargs="+", default=["1m", "5m"], choices=sorted(WorldModelConfig.PRESETS))
    parser.add_argument("--num-q", type=int, nargs="+", default=[None], help="Q ensemble sizes (default: preset's)")
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--acts", type=int, default=200)
    parser.add_argument("--agent", nargs="*", default=[], metavar="FIELD=VALUE", help="AgentConfig overrides")
    parser.add_argument("--out", type=Path, default=RESULTS / "agent_speed.json")
    args = parser.parse_args()

    if any(q is not None and q < 1 for q in args.num_q):
        raise CrossoverError(f"--num-q: Q ensemble sizes must be >= 1, got {args.num_q}")
    agent_cfg = _agent_config(args.agent)
    peak = {threads: matmul_peak(threads) for threads in (1, 2)}
    load_before = os.getloadavg()
    rows = []
    for preset, num_q in [(p, q) for p in args.presets for q in args.num_q]:
        overrides = {"obs_dim": OBS_DIM, "action_dim": ACTION_DIM, "num_tasks": NUM_TASKS}
        if num_q is not None:
            overrides["num_q"] = num_q
        model_cfg = WorldModelConfig.preset(preset, **overrides)
        agent = Agent(model_cfg, agent_cfg, seed=0)
        updates_per_s, update_flops = bench_updates(agent, 2, args.updates)
        act = {threads: bench_acts(agent, threads, args.acts) for threads in (1, 2)}
        plan_flops = act[1][2]
        rows.append({
            "preset": preset,
            "num_q": model_cfg.num_q,
            "parameters": agent.model.num_parameters(),
            "updates_per_s_2threads": updates_per_s,
            "update_gflop": update_flops / 1e9,
            "update_peak_fraction_2threads": update_flops * updates_per_s / peak[2],
            "act_ms_median_1thread": act[1][0],
            "act_ms_p95_1thread": act[1][1],
            "act_ms_median_2threads": act[2][0],
            "act_ms_p95_2threads": act[2][1],
            "act_gflop": plan_flops / 1e9,
            "act_peak_fraction_1thread": plan_flops / (act[1][0] / 1e3) / peak[1],
        })  # fmt: skip

    print(f"matmul peak fp32: {peak[1] / 1e9:.0f} GFLOP/s (1 thread), {peak[2] / 1e9:.0f} GFLOP/s (2 threads)")
    print(f"planner: {agent_cfg.num_samples} samples x {agent_cfg.iterations} iterations, "
          f"{agent_cfg.num_pi_trajs} policy trajectories, {agent_cfg.num_elites} elites")  # fmt: skip
    header = (f"{'preset':6} {'num_q':>5} {'params':>9} {'upd/s':>6} {'upd%pk':>6} "
              f"{'act1 med/p95 ms':>16} {'act2 med/p95 ms':>16} {'act%pk':>6}")
    print(header)
    for r in rows:
        print(
            f"{r['preset']:6} {r['num_q']:5d} {r['parameters']:9d} {r['updates_per_s_2threads']:6.1f} "
            f"{100 * r['update_peak_fraction_2threads']:5.0f}% "
            f"{r['act_ms_median_1thread']:7.1f} /{r['act_ms_p95_1thread']:6.1f}  "
            f"{r['act_ms_median_2threads']:7.1f} /{r['act_ms_p95_2threads']:6.1f}  "
            f"{100 * r['act_peak_fraction_1thread']:5.0f}%"
        )

    path = write_result("agent_speed", {
        "workload": {"obs_dim": OBS_DIM, "action_dim": ACTION_DIM, "num_tasks": NUM_TASKS,
                     "batch_size": agent_cfg.batch_size, "horizon": agent_cfg.horizon},
        "agent_config": agent_cfg.to_dict(),
        "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
        "matmul_peak_gflops": {"1thread": peak[1] / 1e9, "2threads": peak[2] / 1e9},
        "rows": rows,
    }, args.out)  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    run_benchmark(main)
