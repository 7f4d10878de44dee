"""One-time kernel warm-up, so the first run of a process is not charged for it.

The first two updates in a fresh process take seconds each on this CPU (thread pools and oneDNN kernels are set
up lazily); later ones take ~0.15 s. A study runs many runs in one process, and a per-task cost KPI must not
depend on which run happened to go first, so the loops warm up on a throwaway agent before their clocks start.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from crossover.agent.agent import Agent, AgentConfig
from crossover.model.world_model import WorldModelConfig


def warm_up(model_cfg: WorldModelConfig, agent_cfg: AgentConfig) -> None:
    _warm_up(tuple(sorted(model_cfg.to_dict().items())), tuple(sorted(agent_cfg.to_dict().items())))


@lru_cache(maxsize=8)
def _warm_up(model_items: tuple, agent_items: tuple) -> None:
    model_cfg, agent_cfg = WorldModelConfig(**dict(model_items)), AgentConfig(**dict(agent_items))
    agent = Agent(model_cfg, agent_cfg, torch.ones(model_cfg.num_tasks, model_cfg.action_dim), seed=0)
    h, b = agent_cfg.horizon, agent_cfg.batch_size
    batch = {"obs": torch.zeros(h + 1, b, model_cfg.obs_dim), "action": torch.zeros(h, b, model_cfg.action_dim),
             "reward": torch.zeros(h, b), "terminated": torch.zeros(h, b), "task": torch.zeros(b, dtype=torch.long)}
    for _ in range(3):
        agent.update(batch)
    agent.act(np.zeros(model_cfg.obs_dim, np.float32), 0, t0=True)
