"""The multi-task world model: task embedding, encoder, latent dynamics, reward, policy prior and a Q ensemble with
its Polyak-averaged target. What the model is; how it is trained and used for planning lives in crossover/agent.
Architecture after Hansen et al., "TD-MPC2: Scalable, Robust World Models for Continuous Control", ICLR 2024."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crossover.dictconfig import DictConfig
from crossover.model.layers import MLP, EnsembleMLP, SimNorm, init_parameters, two_hot_inv


@dataclass
class WorldModelConfig(DictConfig):
    obs_dim: int  # observation size after zero-padding to the largest embodiment
    action_dim: int  # action size after zero-padding to the largest embodiment
    num_tasks: int = 1  # rows of the task embedding and of the action mask
    task_dim: int = 64  # task embedding size; 0 disables the embedding (single-task agents)
    latent_dim: int = 512  # size of the SimNorm latent state z
    enc_dim: int = 256  # hidden width of the encoder
    num_enc_layers: int = 2  # encoder linear layers (TD-MPC2 counts the output layer)
    mlp_dim: int = 512  # hidden width of dynamics, reward, policy and Q networks
    num_q: int = 5  # Q heads in the ensemble (TD-MPC2 paper: 5)
    num_bins: int = 101  # two-hot bins for reward and value
    vmin: float = -10.0  # lowest bin, in symlog space
    vmax: float = 10.0  # highest bin, in symlog space
    simnorm_dim: int = 8  # group size of SimNorm
    dropout: float = 0.01  # dropout after the first layer of each Q head
    log_std_min: float = -10.0  # policy log-std lower bound
    log_std_max: float = 2.0  # policy log-std upper bound

    # Sizes of TD-MPC2's model-size table; "1m" and "5m" are its 1M and 5M rows. Its reference code runs the 1M row
    # with 2 Q heads, and so do we: ~1.35M parameters on Meta-World and 1.4x the update rate of 5 heads on a CPU.
    PRESETS: ClassVar[dict[str, dict[str, int]]] = {
        "1m": {"enc_dim": 256, "mlp_dim": 384, "latent_dim": 128, "num_enc_layers": 2, "num_q": 2},
        "5m": {"enc_dim": 256, "mlp_dim": 512, "latent_dim": 512, "num_enc_layers": 2},
    }

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> WorldModelConfig:
        """A preset's sizes plus `overrides`; obs_dim and action_dim must be given, e.g. preset("1m", obs_dim=39,
        action_dim=4)."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown world-model preset {name!r}; choose one of {sorted(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides})

    def __post_init__(self) -> None:
        positive = ("obs_dim", "action_dim", "num_tasks", "latent_dim", "enc_dim", "num_enc_layers", "mlp_dim", "num_q")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"WorldModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.latent_dim % self.simnorm_dim:
            raise ValueError(
                f"WorldModelConfig.latent_dim ({self.latent_dim}) must be a multiple of simnorm_dim "
                f"({self.simnorm_dim}): SimNorm splits the latent into groups of that size"
            )
        if self.num_bins < 2:
            raise ValueError(f"WorldModelConfig.num_bins must be >= 2 for two-hot coding, got {self.num_bins}")
        if self.task_dim < 0:
            raise ValueError(f"WorldModelConfig.task_dim must be >= 0 (0 disables it), got {self.task_dim}")


PRESETS = WorldModelConfig.PRESETS


class PolicyOutput(NamedTuple):
    mean: Tensor  # tanh-squashed mean action [..., action_dim]
    action: Tensor  # tanh-squashed sampled action [..., action_dim]
    log_prob: Tensor  # log-density of `action` over the task's active dims [...]
    entropy: Tensor  # -log_prob times the number of active dims [...] (TD-MPC2's scaled entropy)


class WorldModel(nn.Module):
    """Every component reads the task embedding concatenated to its input, so one network serves all tasks.

    Observations and actions are zero-padded to the largest embodiment; `action_mask` [num_tasks, action_dim]
    (1 = the task's robot has this actuator) keeps the policy's padded dims at exactly 0 and out of its log-prob.
    """

    def __init__(
        self, cfg: WorldModelConfig, action_mask: Tensor | None = None, generator: torch.Generator | None = None
    ):
        super().__init__()
        self.cfg = cfg
        if action_mask is None:
            action_mask = torch.ones(cfg.num_tasks, cfg.action_dim)
        self._check_action_mask(action_mask, cfg.num_tasks)
        z, a, t = cfg.latent_dim, cfg.action_dim, cfg.task_dim
        # Built on the meta device and initialised by init_parameters: no draws from torch's global RNG.
        with torch.device("meta"):
            self._task_emb = nn.Embedding(cfg.num_tasks, t, max_norm=1.0) if t > 0 else None
            enc_hidden = [cfg.enc_dim] * max(cfg.num_enc_layers - 1, 1)
            self._encoder = MLP(cfg.obs_dim, enc_hidden, z, SimNorm(cfg.simnorm_dim), context_dim=t)
            self._dynamics = MLP(z + a, [cfg.mlp_dim] * 2, z, SimNorm(cfg.simnorm_dim), context_dim=t)
            self._reward = MLP(z + a, [cfg.mlp_dim] * 2, cfg.num_bins, context_dim=t)
            self._pi = MLP(z, [cfg.mlp_dim] * 2, 2 * a, context_dim=t)
            self._Qs = EnsembleMLP(cfg.num_q, z + a, [cfg.mlp_dim] * 2, cfg.num_bins, cfg.dropout, context_dim=t)
            self._target_Qs = EnsembleMLP(cfg.num_q, z + a, [cfg.mlp_dim] * 2, cfg.num_bins, cfg.dropout, context_dim=t)
        self.to_empty(device="cpu")
        self.register_buffer("action_mask", action_mask.to(torch.float32).clone())
        self.reset_parameters(generator)

    @staticmethod
    def _check_action_mask(action_mask: Tensor, num_tasks: int) -> None:
        if action_mask.dim() != 2 or action_mask.shape[0] != num_tasks:
            raise ValueError(f"action_mask must be [num_tasks={num_tasks}, action_dim], got {tuple(action_mask.shape)}")
        if not ((action_mask == 0) | (action_mask == 1)).all():
            raise ValueError("action_mask must hold only 0 (padded actuator) and 1 (real actuator)")

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        init_parameters(self, generator)
        # Zero output layers make initial reward and Q predictions exactly 0 (uniform logits decode to symexp(0)),
        # so early TD targets are not dominated by random heads.
        self._reward.linears[-1].weight.zero_()
        self._Qs.linears[-1].weight.zero_()
        self._target_Qs.load_state_dict(self._Qs.state_dict())
        self._target_Qs.requires_grad_(False)

    def train(self, mode: bool = True) -> WorldModel:
        super().train(mode)
        self._target_Qs.train(False)  # targets never use dropout
        return self

    @property
    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self._encoder.parameters())

    @property
    def policy_parameters(self) -> list[nn.Parameter]:
        return list(self._pi.parameters())

    @property
    def model_parameters(self) -> list[nn.Parameter]:
        """Trained by the model loss, except the encoder (which gets its own learning rate)."""
        modules = [self._dynamics, self._reward, self._Qs] + ([self._task_emb] if self._task_emb is not None else [])
        return [p for m in modules for p in m.parameters()]

    # --- components ------------------------------------------------------------------------------------------------

    def _task_context(self, task: Tensor) -> Tensor | None:
        """The task embedding every component reads with its input; task is a scalar or [B] (broadcasting against
        the input's leading dims)."""
        return None if self._task_emb is None else self._task_emb(task)

    def _action_mask(self, task: Tensor) -> Tensor:
        return self.action_mask.index_select(0, task.reshape(-1)).view(*task.shape, -1)

    def encode(self, obs: Tensor, task: Tensor) -> Tensor:
        return self._encoder(obs, self._task_context(task))

    def next(self, z: Tensor, action: Tensor, task: Tensor) -> Tensor:
        return self._dynamics(torch.cat([z, action], dim=-1), self._task_context(task))

    def reward(self, z: Tensor, action: Tensor, task: Tensor) -> Tensor:
        """Reward logits [..., num_bins]; decode with layers.two_hot_inv."""
        return self._reward(torch.cat([z, action], dim=-1), self._task_context(task))

    def step(self, z: Tensor, action: Tensor, task: Tensor) -> tuple[Tensor, Tensor]:
        """(next latent, reward logits) from one shared input: what a planning rollout needs per step."""
        x, context = torch.cat([z, action], dim=-1), self._task_context(task)
        return self._dynamics(x, context), self._reward(x, context)

    def _pi_gaussian(self, z: Tensor, task: Tensor, generator: torch.Generator | None) -> tuple[Tensor, ...]:
        """Pre-tanh mean, log-std and standard-normal noise, all zero on the task's padded action dims."""
        cfg = self.cfg
        mean, log_std = self._pi(z, self._task_context(task)).chunk(2, dim=-1)
        # A smooth squash into [log_std_min, log_std_max] keeps gradients alive at the bounds.
        log_std = cfg.log_std_min + 0.5 * (cfg.log_std_max - cfg.log_std_min) * (torch.tanh(log_std) + 1)
        mask = self._action_mask(task).expand_as(mean)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean * mask, log_std * mask, eps * mask, mask

    def pi(self, z: Tensor, task: Tensor, generator: torch.Generator | None = None) -> PolicyOutput:
        """Squashed Gaussian policy prior; padded action dims are exactly 0 and add nothing to the log-prob."""
        mean, log_std, eps, mask = self._pi_gaussian(z, task, generator)
        action = mean + eps * log_std.exp()
        gaussian_log_prob = (-0.5 * eps.square() - log_std - 0.5 * math.log(2 * math.pi)) * mask
        mean, action = torch.tanh(mean), torch.tanh(action)
        # Change of variables for tanh; padded dims (action 0) would add log(1) = 0 but are masked for clarity.
        squash_correction = torch.log(F.relu(1 - action.square()) + 1e-6) * mask
        log_prob = (gaussian_log_prob - squash_correction).sum(-1)
        return PolicyOutput(mean, action, log_prob, -log_prob * mask.sum(-1))

    def pi_mean(self, z: Tensor, task: Tensor) -> Tensor:
        """The policy prior's mean action (as pi().mean), without drawing noise."""
        mean, _ = self._pi(z, self._task_context(task)).chunk(2, dim=-1)
        return torch.tanh(mean * self._action_mask(task).expand_as(mean))

    def pi_action(self, z: Tensor, task: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A sampled policy action only (same draw as pi().action): planning and TD targets need no log-prob."""
        mean, log_std, eps, _ = self._pi_gaussian(z, task, generator)
        return torch.tanh(mean + eps * log_std.exp())

    def Q(
        self,
        z: Tensor,
        action: Tensor,
        task: Tensor,
        return_type: str = "min",
        target: bool = False,
        detach: bool = False,
        generator: torch.Generator | None = None,
        heads: Tensor | None = None,
    ) -> Tensor:
        """Q values from the ensemble.

        return_type "all": logits of every head [num_q, ..., num_bins]; "min"/"avg": min or mean of two random heads
        [...] (TD-MPC2 subsamples two heads to curb over-estimation without paying for the full ensemble).
        target=True reads the Polyak-averaged copy; detach=True blocks gradients to the Q parameters only; `heads`
        fixes the two heads (int64 [2]) instead of drawing them.
        """
        x, context = torch.cat([z, action], dim=-1), self._task_context(task)
        net = self._target_Qs if target else self._Qs
        if return_type == "all":
            return net(x, context, detach=detach, generator=generator)
        if return_type not in ("min", "avg"):
            raise ValueError(f"return_type must be 'min', 'avg' or 'all', got {return_type!r}")
        if heads is None:
            heads = torch.randperm(self.cfg.num_q, generator=generator)[:2]
        logits = net(x, context, members=heads, detach=detach, generator=generator)
        q = two_hot_inv(logits, self.cfg.vmin, self.cfg.vmax)
        return q.min(0).values if return_type == "min" else q.mean(0)

    @torch.no_grad()
    def soft_update_target(self, tau: float) -> None:
        """Polyak averaging: target <- (1 - tau) target + tau online."""
        for target, online in zip(self._target_Qs.parameters(), self._Qs.parameters()):
            target.lerp_(online, tau)

    # --- growing the task set --------------------------------------------------------------------------------------

    @torch.no_grad()
    def add_task(
        self, action_mask: Tensor, init_from: int | None = None, generator: torch.Generator | None = None
    ) -> int:
        """Append a task with its action-mask row [action_dim]; its embedding copies task `init_from` (e.g. the
        nearest pretraining task) or is drawn like a fresh one. Returns the new task index.

        This replaces the embedding Parameter: an optimiser holding the old one must be rebuilt (Agent.add_task).
        """
        action_mask = torch.as_tensor(action_mask, dtype=torch.float32).reshape(1, -1)
        new_index = self.cfg.num_tasks
        self._check_action_mask(action_mask, 1)
        if action_mask.shape[1] != self.cfg.action_dim:
            raise ValueError(
                f"action_mask row must have action_dim={self.cfg.action_dim} entries, got {action_mask.shape[1]}"
            )
        if init_from is not None and not 0 <= init_from < new_index:
            raise ValueError(f"init_from must be an existing task index in [0, {new_index}), got {init_from}")
        if self._task_emb is not None:
            old = self._task_emb.weight
            with torch.device("meta"):
                emb = nn.Embedding(new_index + 1, self.cfg.task_dim, max_norm=1.0)
            emb = emb.to_empty(device=old.device)
            emb.weight[:new_index] = old
            if init_from is not None:
                emb.weight[new_index] = old[init_from]
            else:
                nn.init.uniform_(emb.weight[new_index], -0.02, 0.02, generator=generator)
            self._task_emb = emb
        self.action_mask = torch.cat([self.action_mask, action_mask])
        self.cfg = dataclasses.replace(self.cfg, num_tasks=new_index + 1)
        return new_index

    def num_parameters(self, include_target: bool = False) -> int:
        return sum(p.numel() for name, p in self.named_parameters() if include_target or not name.startswith("_target"))
