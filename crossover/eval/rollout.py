"""Rollout evaluation of an agent on a task: success rate, steps to first success, return, on fixed seeds."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from crossover.tasks import TaskSpec, make_env

EVAL_SEED_BASE = 1_000_000  # evaluation layouts never coincide with the training seeds used by the loops


@dataclass
class EvalResult:
    episodes: int
    success_rate: float  # fraction of episodes with success at any step
    mean_steps_to_success: float | None  # over successful episodes
    mean_return: float

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(agent, task: TaskSpec, task_index: int, episodes: int, episode_length: int, env=None,
             prior_only: bool = False, seeds: list[int] | None = None) -> EvalResult:
    """Run `episodes` planner-mean episodes (policy-prior-mean ones with prior_only) on the fixed evaluation seeds
    EVAL_SEED_BASE + 0..episodes-1 (or on the given layout seeds, say a training run's, to compare; then `episodes`
    is ignored).

    Each episode's layout and planner noise both come from its seed, never from the agent's own generator: the result
    depends on the weights alone, and evaluating leaves the training run's random stream untouched, so a run's
    learning curve does not depend on how often it is evaluated. It does replace the agent's planner warm start, so
    call it between training episodes (whose first step drops the warm start anyway)."""
    own_env = env is None
    env = env or make_env(task, episode_length)
    successes, firsts, returns = 0, [], []
    try:
        seeds = [EVAL_SEED_BASE + i for i in range(episodes)] if seeds is None else seeds
        for seed in seeds:
            obs = env.reset(seed)
            noise = torch.Generator().manual_seed(seed)
            total, first = 0.0, None
            for t in range(episode_length):
                action = agent.act(obs, task_index, t0=t == 0, eval_mode=True, generator=noise, prior_only=prior_only)
                obs, reward, terminated, truncated, success = env.step(action)
                total += reward
                if success and first is None:
                    first = t + 1
                if terminated or truncated:
                    break
            successes += first is not None
            returns.append(total)
            if first is not None:
                firsts.append(first)
    finally:
        if own_env:
            env.close()
    return EvalResult(len(seeds), successes / len(seeds), float(np.mean(firsts)) if firsts else None, float(np.mean(returns)))
