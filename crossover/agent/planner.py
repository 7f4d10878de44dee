"""MPPI planning in the world model's latent space: sample action sequences, score them with the learned reward and
the terminal Q value, refit a Gaussian to the best ones. After Hansen et al., "TD-MPC2: Scalable, Robust World
Models for Continuous Control", ICLR 2024 (Sec. 3.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from crossover.model.layers import two_hot_inv
from crossover.model.world_model import WorldModel

if TYPE_CHECKING:
    from crossover.agent.agent import AgentConfig


def rollout_value(
    model: WorldModel,
    z: Tensor,
    task: Tensor,
    actions: Tensor | None,
    horizon: int,
    discount: float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Discounted return of action sequences from latent states z [N, latent]: the model's rewards for `horizon`
    steps plus the discounted value (mean of two random Q heads) of the policy's action at the last state.

    actions [horizon, N, action_dim], or None to follow the policy prior (its sampled actions are returned).
    Returns (actions, value [N]).
    """
    cfg = model.cfg
    taken: list[Tensor] = []
    value = torch.zeros(z.shape[0])
    weight = 1.0
    for t in range(horizon):
        a = model.pi(z, task, generator).action if actions is None else actions[t]
        taken.append(a)
        value = value + weight * two_hot_inv(model.reward(z, a, task), cfg.vmin, cfg.vmax)
        z = model.next(z, a, task)
        weight *= discount
    terminal_action = model.pi(z, task, generator).action
    value = value + weight * model.Q(z, terminal_action, task, "avg", generator=generator)
    return torch.stack(taken), torch.nan_to_num(value, nan=0.0)


def plan(
    model: WorldModel,
    z: Tensor,
    task: Tensor,
    prev_mean: Tensor | None,
    cfg: AgentConfig,
    discount: float,
    generator: torch.Generator,
    eval_mode: bool,
) -> tuple[Tensor, Tensor]:
    """One planned action [action_dim] for latent z [1, latent] of task `task` (a 0-d int64 tensor).

    prev_mean [horizon, action_dim] is the previous step's sampling mean (None at an episode's first step); it is
    shifted one step forward to warm-start this step. Returns (action, mean) with `mean` to pass back next step.
    Call under torch.inference_mode().
    """
    horizon, action_dim = cfg.horizon, model.cfg.action_dim
    mask = model.action_mask[task]

    # Policy-prior trajectories seed the elite set with sequences that are already good. Their actions are fixed
    # for the whole step, so they are rolled out and valued once rather than in every iteration.
    if cfg.num_pi_trajs > 0:
        pi_actions, pi_value = rollout_value(
            model, z.expand(cfg.num_pi_trajs, -1), task, None, horizon, discount, generator
        )
    else:
        pi_actions, pi_value = torch.empty(horizon, 0, action_dim), torch.empty(0)

    mean = torch.zeros(horizon, action_dim)
    if prev_mean is not None:
        mean[:-1] = prev_mean[1:]
    std = torch.full((horizon, action_dim), cfg.max_std)
    z_samples = z.expand(cfg.num_samples, -1)
    for _ in range(cfg.iterations):
        noise = torch.randn(horizon, cfg.num_samples, action_dim, generator=generator)
        actions = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(-1, 1) * mask
        _, value = rollout_value(model, z_samples, task, actions, horizon, discount, generator)
        candidates = torch.cat([pi_actions, actions], dim=1)
        elite_value, elite_index = torch.cat([pi_value, value]).topk(cfg.num_elites)
        elite_actions = candidates[:, elite_index]  # [horizon, num_elites, action_dim]
        # MPPI: weight elites by exp(temperature * value), refit mean and std to the weighted elites.
        score = torch.softmax(cfg.temperature * elite_value, dim=0)
        mean = torch.einsum("e,hea->ha", score, elite_actions)
        variance = torch.einsum("e,hea->ha", score, (elite_actions - mean.unsqueeze(1)).square())
        std = variance.sqrt().clamp(cfg.min_std, cfg.max_std)

    if eval_mode:
        action = mean[0]
    else:
        # Acting from one elite drawn by its score, plus the final std as exploration noise (as TD-MPC2).
        pick = torch.multinomial(score, 1, generator=generator)[0]
        action = elite_actions[0, pick] + std[0] * torch.randn(action_dim, generator=generator)
    return action.clamp(-1, 1) * mask, mean
