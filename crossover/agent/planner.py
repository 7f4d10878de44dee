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
    actions: Tensor,
    policy_rows: int,
    discount: float,
    generator: torch.Generator,
    heads: Tensor,
    terminal_mean: bool = False,
) -> tuple[Tensor, Tensor]:
    """Discounted return of action sequences from latent states z [policy_rows + N, latent]: the model's rewards
    over the horizon plus the discounted value (mean of Q heads `heads`) of the policy's action at the last state,
    a draw from the policy or, with terminal_mean, its mean action.

    The first `policy_rows` rows follow the policy prior; the other N take `actions` [horizon, N, action_dim].
    Returns (the actions taken [horizon, policy_rows + N, action_dim], value [policy_rows + N]).
    """
    cfg = model.cfg
    taken: list[Tensor] = []
    value = torch.zeros(z.shape[0])
    weight = 1.0
    for t in range(actions.shape[0]):
        a = actions[t]
        if policy_rows:
            a = torch.cat([model.pi_action(z[:policy_rows], task, generator), a])
        taken.append(a)
        z, reward_logits = model.step(z, a, task)
        value = value + weight * two_hot_inv(reward_logits, cfg.vmin, cfg.vmax)
        weight *= discount
    terminal_action = model.pi_mean(z, task) if terminal_mean else model.pi_action(z, task, generator)
    value = value + weight * model.Q(z, terminal_action, task, "avg", heads=heads)
    return torch.stack(taken), torch.nan_to_num(value, nan=0.0)


def prior_mean_sequence(model: WorldModel, z: Tensor, task: Tensor, horizon: int) -> Tensor:
    """The policy prior's mean actions [horizon, action_dim] along its own rollout in the model from z [1, latent]."""
    actions = []
    for _ in range(horizon):
        actions.append(model.pi_mean(z, task)[0])
        z = model.next(z, actions[-1].unsqueeze(0), task)
    return torch.stack(actions)


def plan(
    model: WorldModel,
    z: Tensor,
    task: Tensor,
    prev_mean: Tensor | None,
    cfg: AgentConfig,
    discount: float,
    generator: torch.Generator,
    eval_mode: bool,
    trust_std: float | None = None,
) -> tuple[Tensor, Tensor]:
    """One planned action [action_dim] for latent z [1, latent] of task `task` (a 0-d int64 tensor).

    prev_mean [horizon, action_dim] is the previous step's sampling mean (None at an episode's first step); it is
    shifted one step forward to warm-start this step. Returns (action, mean) with `mean` to pass back next step.
    With trust_std, the search stays near the policy prior: it starts from the prior's mean action sequence
    (rolled out in the model) instead of the warm start, its std never exceeds max(trust_std, cfg.min_std), and no
    sampled prior sequences join the pool (the prior's own std is far wider). Call under torch.inference_mode().
    """
    horizon, action_dim = cfg.horizon, model.cfg.action_dim
    mask = model.action_mask[task]  # [action_dim]
    # One pair of Q heads for the whole step: TD-MPC2 draws a pair per evaluation, but elites carried across
    # iterations are only comparable with fresh samples if all were valued by the same heads.
    heads = torch.randperm(model.cfg.num_q, generator=generator)[:2]

    if trust_std is None:
        max_std, mean = cfg.max_std, torch.zeros(horizon, action_dim)
        if prev_mean is not None:
            mean[:-1] = prev_mean[1:]
    else:
        max_std, mean = min(max(trust_std, cfg.min_std), cfg.max_std), prior_mean_sequence(model, z, task, horizon)
    std = torch.full((horizon, action_dim), max_std)
    # Policy-prior trajectories seed the candidates with sequences that are already good; they ride along in the
    # first iteration's batch. Afterwards each iteration keeps its elites (and their values) in the next pool, as
    # iCEM does (Pinneri et al., 2020): no sequence is evaluated twice, so a small sample budget goes further. The
    # cost: a value lifted by a lucky terminal-action draw stays lifted (cfg.keep_elites, cfg.terminal_action).
    kept_actions, kept_value = torch.empty(horizon, 0, action_dim), torch.empty(0)
    for i in range(cfg.iterations):
        policy_rows = cfg.num_pi_trajs if i == 0 and trust_std is None else 0
        noise = torch.randn(horizon, cfg.num_samples, action_dim, generator=generator)
        actions = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(-1, 1) * mask
        z_rows = z.expand(policy_rows + cfg.num_samples, -1)
        actions, value = rollout_value(model, z_rows, task, actions, policy_rows, discount, generator, heads,
                                       terminal_mean=cfg.terminal_action == "mean")
        candidates = torch.cat([kept_actions, actions], dim=1)
        elite_value, elite_index = torch.cat([kept_value, value]).topk(cfg.num_elites)
        elite_actions = candidates[:, elite_index]  # [horizon, num_elites, action_dim]
        if cfg.keep_elites:
            kept_actions, kept_value = elite_actions, elite_value
        # MPPI: weight elites by exp(temperature * value), refit mean and std to the weighted elites.
        score = torch.softmax(cfg.temperature * elite_value, dim=0)
        mean = torch.einsum("e,hea->ha", score, elite_actions)
        variance = torch.einsum("e,hea->ha", score, (elite_actions - mean.unsqueeze(1)).square())
        std = variance.sqrt().clamp(cfg.min_std, max_std)

    if eval_mode:
        action = mean[0]
    else:
        # Acting from one elite drawn by its score, plus the final std as exploration noise (as TD-MPC2).
        pick = torch.multinomial(score, 1, generator=generator)[0]
        action = elite_actions[0, pick] + std[0] * torch.randn(action_dim, generator=generator)
    return action.clamp(-1, 1) * mask, mean
