"""The TD-MPC2-style agent: acting by latent MPPI planning, and one gradient step of the world model and policy
prior on a batch of sub-trajectories. After Hansen et al., "TD-MPC2: Scalable, Robust World Models for Continuous
Control", ICLR 2024; written from the paper, not its code.

Speed notes: 1m preset, 5 Q heads, Meta-World dims, batch 256, horizon 3; 2-core AMD EPYC with a measured fp32
matmul peak of 92 / 189 GFLOP/s on 1 / 2 threads; benchmarks/agent_speed.py on an idle machine, medians.
                                                                  updates/s (2 thr)  act ms (1 / 2 thr)
  TD-MPC2 reference (anchor), 512 samples x 6 iterations                6.6             303 / 157
  first version here, same planner budget                               6.3             300 / 200
  + Mish from one sigmoid, dropout from geometric gaps                  7.2             240 / -
  + SimNorm over strided groups, task embedding as a first-layer bias,
    index_select for Q heads, fused Adam, in-place dropout              7.9             194 / 110
  + planner: 48 samples x 3 iterations, 24 policy trajectories in the
    first batch, elites kept across iterations, one Q pair per step     7.9              18 / 13
The update costs 13.0 GFLOP (FlopCounterMode): even at 100% of the 2-thread matmul peak that is 14.5 updates/s, so
20 updates/s is out of reach in fp32 with the paper's 5 Q heads; with num_q=2 (TD-MPC2's code at 1M) it is 9.4
GFLOP and 11.3 updates/s measured. bf16 autocast was tried: matmuls get 2x faster but CPU bf16 elementwise ops
get slower, net +35% at best, not taken. The small planner budget costs plan quality: on a random-weight model,
48 x 3 closes ~60% of the value gap between the policy prior and a 2048 x 8 planner that 512 x 6 closes ~90% of.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from crossover.agent.planner import plan
from crossover.dictconfig import DictConfig
from crossover.model.layers import soft_cross_entropy, two_hot
from crossover.model.world_model import WorldModel, WorldModelConfig


# The behaviour-cloning weight on the policy prior when learning offline: pretraining's default, and what online
# adaptation uses on demonstrations. Offline, TD-MPC2's max-Q prior learned almost no behaviour (6% zero-shot
# success on 8 of its own source tasks after 20k updates, planner 14%); with 2.5 the prior alone reached 78% after
# 3.5k updates (0.25: 60%). Measured on the reach pilot's data (crossover.train.pretrain).
BC_COEF = 2.5


@dataclass
class AgentConfig(DictConfig):
    horizon: int = 3  # planning and training horizon, in environment steps
    batch_size: int = 256  # sub-trajectories per update (read by the sampler that builds batches)
    lr: float = 3e-4  # Adam learning rate of the model and the policy prior
    enc_lr_scale: float = 0.3  # encoder learning rate = lr * enc_lr_scale
    grad_clip_norm: float = 20.0  # global gradient-norm clip, model and policy separately
    rho: float = 0.5  # per-step decay of the loss weights over the horizon
    consistency_coef: float = 20.0  # weight of the latent consistency loss
    reward_coef: float = 0.1  # weight of the reward cross-entropy
    value_coef: float = 0.1  # weight of the value cross-entropy
    entropy_coef: float = 1e-4  # weight of the policy's (scaled) entropy bonus
    bc_coef: float = 0.0  # weight of a behaviour-cloning term on the policy prior (0: TD-MPC2's pure max-Q)
    tau: float = 0.01  # Polyak rate of the target Q and of the running Q scale
    discount: float | None = None  # fixed discount; None derives it from episode_length as TD-MPC2
    episode_length: int = 500  # used only to derive the discount (Meta-World v3 episodes are 500 steps)
    iterations: int = 3  # MPPI iterations per planned action
    num_samples: int = 48  # Gaussian action sequences per iteration
    num_elites: int = 12  # best sequences the sampling distribution is refit to; kept into the next iteration
    num_pi_trajs: int = 24  # policy-prior sequences in the first iteration's candidate pool
    min_std: float = 0.05  # lower bound of the sampling std
    max_std: float = 2.0  # initial and upper bound of the sampling std
    temperature: float = 0.5  # MPPI softmax temperature on elite values
    # Two planner choices, kept as TD-MPC2 / iCEM make them; planner_probe.py compares the alternatives:
    terminal_action: str = "sample"  # the action a sequence's terminal Q is taken at: a policy draw, or its "mean"
    keep_elites: bool = True  # carry each iteration's elites and their values into the next pool (iCEM)

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"AgentConfig.horizon must be >= 1, got {self.horizon}")
        if self.iterations < 1 or self.num_samples < 1:
            raise ValueError("AgentConfig.iterations and num_samples must be >= 1")
        if not 1 <= self.num_elites <= self.num_samples:
            raise ValueError(
                f"AgentConfig.num_elites ({self.num_elites}) must be in [1, num_samples={self.num_samples}]"
            )
        if self.terminal_action not in ("sample", "mean"):
            raise ValueError(f"AgentConfig.terminal_action must be 'sample' or 'mean', got {self.terminal_action!r}")
        if self.discount is not None and not 0 < self.discount <= 1:
            raise ValueError(f"AgentConfig.discount must be in (0, 1], got {self.discount}")


def discount_from_episode_length(
    episode_length: int, denom: float = 5.0, low: float = 0.95, high: float = 0.995
) -> float:
    """TD-MPC2's heuristic: an effective horizon of a fifth of the episode, clipped to [0.95, 0.995]."""
    frac = episode_length / denom
    return float(min(max((frac - 1) / frac, low), high))


class Agent:
    """World model + optimisers + planner state. All randomness of training (initialisation, dropout, policy and
    planner samples) comes from one torch.Generator seeded with `seed`, saved with the rest by tensors();
    evaluation passes act() a generator of its own."""

    def __init__(
        self,
        model_cfg: WorldModelConfig,
        agent_cfg: AgentConfig | None = None,
        action_mask: Tensor | None = None,
        seed: int = 0,
    ):
        self.cfg = agent_cfg if agent_cfg is not None else AgentConfig()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.model = WorldModel(model_cfg, action_mask, self.generator)
        lr = self.cfg.lr
        self.optim = torch.optim.Adam(
            [
                {"params": self.model.encoder_parameters, "lr": lr * self.cfg.enc_lr_scale},
                {"params": self.model.model_parameters, "lr": lr},
            ],
            lr=lr,
            fused=True,  # one kernel per parameter instead of a dozen: ~2x faster steps on CPU
        )
        self.pi_optim = torch.optim.Adam(self.model.policy_parameters, lr=lr, eps=1e-5, fused=True)
        # Running 5th-95th percentile range of Q, so the policy loss has the same scale whatever the reward scale.
        self.q_scale = torch.ones(())
        self._prev_mean: Tensor | None = None  # planner warm start, cleared at t0
        # Planning near the policy prior (planner.plan's trust_std), None for the plain planner. Not saved: the
        # online loop of demos runs sets it from its env-step count before every episode and evaluation.
        self.trust_std: float | None = None

    @property
    def model_cfg(self) -> WorldModelConfig:
        return self.model.cfg

    @property
    def discount(self) -> float:
        fixed = self.cfg.discount
        return fixed if fixed is not None else discount_from_episode_length(self.cfg.episode_length)

    # --- acting ----------------------------------------------------------------------------------------------------

    def act(self, obs: np.ndarray, task: int, t0: bool = False, eval_mode: bool = False,
            generator: torch.Generator | None = None, prior_only: bool = False) -> np.ndarray:
        """Plan one action [action_dim] for observation `obs` (zero-padded here if shorter than obs_dim).

        t0 marks an episode's first step (drops the warm start); eval_mode returns the planner's mean action
        instead of a sample. Padded action dims of the task are exactly 0. The planner's noise comes from
        `generator` if given (evaluation), else from the agent's own (training). prior_only skips planning and
        returns the policy prior's action (its mean in eval_mode): a probe of what the prior alone has learned.
        With self.trust_std set, the planner searches only near the prior (see planner.plan).
        """
        obs_dim = self.model.cfg.obs_dim
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        if obs_t.dim() != 1 or obs_t.shape[0] > obs_dim:
            raise ValueError(
                f"act() takes one observation of at most obs_dim={obs_dim} values, got {tuple(obs_t.shape)}"
            )
        if obs_t.shape[0] < obs_dim:
            obs_t = F.pad(obs_t, (0, obs_dim - obs_t.shape[0]))
        if not 0 <= task < self.model.cfg.num_tasks:
            raise ValueError(f"task index {task} out of range [0, {self.model.cfg.num_tasks})")
        with torch.inference_mode():
            self.model.eval()
            task_t = torch.tensor(task, dtype=torch.long)
            z = self.model.encode(obs_t.unsqueeze(0), task_t)
            gen = generator if generator is not None else self.generator
            if prior_only:
                action = self.model.pi_mean(z, task_t) if eval_mode else self.model.pi_action(z, task_t, gen)
                return action[0].numpy().copy()
            prev_mean = None if t0 else self._prev_mean
            action, self._prev_mean = plan(self.model, z, task_t, prev_mean, self.cfg, self.discount, gen, eval_mode,
                                           self.trust_std)
        return action.numpy().copy()

    # --- learning --------------------------------------------------------------------------------------------------

    def update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One gradient step of the world model, one of the policy prior, and a Polyak step of the target Q.

        batch: obs [H+1, B, obs_dim], action [H, B, action_dim], reward [H, B], task [B] int64, and optionally
        terminated [H, B] (1 where the episode ended at that transition; Meta-World never terminates) and
        bc_weight [B] (a behaviour-cloning weight per window, in place of cfg.bc_coef on all of them), bc_target
        [H, B, action_dim] (the actions to clone, in place of the logged ones) and q_weight
        (a 0-d weight of the policy prior's max-Q and entropy terms, default 1; at 0 the prior learns by cloning
        alone. Adam undoes most of a small weight's effect wherever cloning has no gradient, so a weight between
        0 and 1 acts more like 1 than its size suggests).
        """
        cfg, model, g = self.cfg, self.model, self.generator
        obs, action, reward, task = batch["obs"], batch["action"], batch["reward"], batch["task"]
        terminated = batch.get("terminated")
        terminated = torch.zeros_like(reward) if terminated is None else terminated
        horizon = self._check_batch(obs, action, reward, task, terminated)
        rho = cfg.rho ** torch.arange(horizon + 1, dtype=torch.float32)  # loss weight of each step
        model.train()

        # 1. Targets, without gradients: the encoder's latents of the observed next states (what the dynamics
        #    must predict), and TD targets from the target Q at the policy's next action (min of two random heads).
        with torch.no_grad():
            next_z = model.encode(obs[1:], task)
            next_action = model.pi_action(next_z, task, g)
            next_q = model.Q(next_z, next_action, task, "min", target=True, generator=g)
            td_target = reward + self.discount * (1.0 - terminated) * next_q

        # 2. Roll the latent forward from the first observation through the logged actions.
        z = model.encode(obs[0], task)
        zs = [z]
        consistency_loss = torch.zeros(())
        for t in range(horizon):
            z = model.next(z, action[t], task)
            consistency_loss = consistency_loss + rho[t] * F.mse_loss(z, next_z[t])
            zs.append(z)
        zs = torch.stack(zs)  # [H+1, B, latent]

        # 3. Reward and value predictions on the rolled-out latents, as classification over two-hot bins.
        mcfg = model.cfg
        reward_logits = model.reward(zs[:-1], action, task)  # [H, B, bins]
        q_logits = model.Q(zs[:-1], action, task, "all", generator=g)  # [num_q, H, B, bins]
        reward_ce = soft_cross_entropy(reward_logits, two_hot(reward, mcfg.num_bins, mcfg.vmin, mcfg.vmax))
        value_ce = soft_cross_entropy(q_logits, two_hot(td_target, mcfg.num_bins, mcfg.vmin, mcfg.vmax))
        reward_loss = (reward_ce.mean(-1) * rho[:-1]).sum()
        value_loss = (value_ce.mean(-1) * rho[:-1]).sum() / mcfg.num_q
        model_loss = (
            cfg.consistency_coef * consistency_loss + cfg.reward_coef * reward_loss + cfg.value_coef * value_loss
        ) / horizon

        # set_to_none also clears the task embedding's gradient left over from the previous policy step.
        self.optim.zero_grad(set_to_none=True)
        model_loss.backward()
        model_grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.encoder_parameters + self.model.model_parameters, cfg.grad_clip_norm, foreach=True
        )
        self.optim.step()

        # 4. Policy prior: maximise Q (gradient through the action only) plus entropy, on the detached latents.
        zs = zs.detach()
        policy = model.pi(zs, task, g)
        q = model.Q(zs, policy.action, task, "avg", detach=True, generator=g)  # [H+1, B]
        with torch.no_grad():
            low, high = torch.quantile(q[0], torch.tensor([0.05, 0.95]))
            self.q_scale.lerp_((high - low).clamp(min=1.0), cfg.tau)
        pi_loss = (-(cfg.entropy_coef * policy.entropy + q / self.q_scale).mean(-1) * rho).mean()
        if "q_weight" in batch:
            pi_loss = pi_loss * batch["q_weight"]
        # Behaviour cloning, as TD3+BC (Fujimoto & Gu, 2021): offline, max-Q alone drives the policy toward
        # actions the data never tried, where Q is a guess; pulling its mean toward the logged actions keeps it
        # where Q was trained. Squared error per real action dim, weighted over the horizon like the Q term.
        bc_loss = torch.zeros(())
        weight = batch.get("bc_weight")
        if cfg.bc_coef > 0 or weight is not None:
            real_dims = model.action_mask[task].sum(-1).clamp(min=1)  # [B]
            bc = (policy.mean[:-1] - batch.get("bc_target", action)).square().sum(-1) / real_dims  # [H, B]
            bc_loss = (bc.mean(-1) * rho[:-1]).mean()  # (logged: the cloning error over every window, to its target)
            if weight is None:
                pi_loss = pi_loss + cfg.bc_coef * bc_loss
            else:
                pi_loss = pi_loss + ((bc * weight).mean(-1) * rho[:-1]).mean()
        self.pi_optim.zero_grad(set_to_none=True)
        pi_loss.backward()
        pi_grad_norm = torch.nn.utils.clip_grad_norm_(self.model.policy_parameters, cfg.grad_clip_norm, foreach=True)
        self.pi_optim.step()

        # 5. Target Q follows the online Q slowly.
        model.soft_update_target(cfg.tau)

        names = ("consistency_loss", "reward_loss", "value_loss", "model_loss", "model_grad_norm", "pi_loss",
                 "pi_grad_norm", "pi_entropy", "q_scale", "td_target_mean", "bc_loss")
        values = torch.stack([
            consistency_loss, reward_loss, value_loss, model_loss, model_grad_norm, pi_loss,
            pi_grad_norm, policy.entropy.mean(), self.q_scale, td_target.mean(), bc_loss,
        ]).detach()  # fmt: skip
        return dict(zip(names, values.tolist()))

    def _check_batch(self, obs: Tensor, action: Tensor, reward: Tensor, task: Tensor, terminated: Tensor) -> int:
        """Shapes at the boundary, with messages naming the field; returns the horizon H."""
        mcfg = self.model.cfg
        if action.dim() != 3 or action.shape[-1] != mcfg.action_dim:
            raise ValueError(f"batch['action'] must be [H, B, action_dim={mcfg.action_dim}], got {tuple(action.shape)}")
        horizon, batch_size = action.shape[:2]
        expected = {
            "obs": (obs, (horizon + 1, batch_size, mcfg.obs_dim)),
            "reward": (reward, (horizon, batch_size)),
            "terminated": (terminated, (horizon, batch_size)),
            "task": (task, (batch_size,)),
        }
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(f"batch[{name!r}] must have shape {shape}, got {tuple(tensor.shape)}")
        if task.dtype != torch.long:
            raise ValueError(f"batch['task'] must be int64 task indices, got {task.dtype}")
        return horizon

    # --- growing the task set --------------------------------------------------------------------------------------

    def add_task(self, action_mask: Tensor, init_from: int | None = None) -> int:
        """Add a task (e.g. a new SKU before fine-tuning), its embedding copied from task `init_from`. The optimiser
        keeps its state for every other parameter; the embedding table starts Adam afresh. Adam's step count is one
        per tensor, so a new row given zero moments beside the old step count would skip Adam's bias correction
        and move ~3-5x further than lr in its first hundred updates, undoing its careful initialisation. Starting
        afresh, the new row takes normal Adam steps and the rows of tasks without data in a batch stay put."""
        old = self.model._task_emb.weight if self.model._task_emb is not None else None
        index = self.model.add_task(action_mask, init_from, self.generator)
        if old is not None:
            new = self.model._task_emb.weight
            for group in self.optim.param_groups:
                group["params"] = [new if p is old else p for p in group["params"]]
            self.optim.state.pop(old, None)
        return index

    # --- checkpoints -----------------------------------------------------------------------------------------------

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": self.optim, "pi": self.pi_optim}

    def tensors(self) -> dict[str, Tensor]:
        """Everything needed to resume exactly, as flat named tensors (safetensors-ready, no pickle): model and
        target weights, action mask, Adam moments, Q scale, planner warm start and the generator state."""
        out = {f"model.{k}": v.detach().clone() for k, v in self.model.state_dict().items()}
        names = {p: n for n, p in self.model.named_parameters()}
        for opt_name, opt in self._optimizers().items():
            for group in opt.param_groups:
                for p in group["params"]:
                    for key, value in opt.state.get(p, {}).items():
                        out[f"optim.{opt_name}.{names[p]}.{key}"] = value.detach().clone()
        out["q_scale"] = self.q_scale.clone()
        out["generator_state"] = self.generator.get_state()
        if self._prev_mean is not None:
            out["planner.prev_mean"] = self._prev_mean.clone()
        return out

    def load_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Inverse of tensors(); the model's shapes (num_tasks included) must match."""
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state)
        names = {p: n for n, p in self.model.named_parameters()}
        for opt_name, opt in self._optimizers().items():
            for group in opt.param_groups:
                for p in group["params"]:
                    prefix = f"optim.{opt_name}.{names[p]}."
                    state = {k[len(prefix):]: v.clone() for k, v in tensors.items() if k.startswith(prefix)}
                    if state:
                        opt.state[p] = state
                    else:
                        opt.state.pop(p, None)
        self.q_scale = tensors["q_scale"].clone()
        self.generator.set_state(tensors["generator_state"])
        prev_mean = tensors.get("planner.prev_mean")
        self._prev_mean = None if prev_mean is None else prev_mean.clone()

    state_dict = tensors
    load_state_dict = load_tensors

    def config(self) -> dict[str, Any]:
        """JSON-ready configuration; Agent.from_config(config, tensors) rebuilds the agent."""
        return {"model": self.model.cfg.to_dict(), "agent": self.cfg.to_dict(), "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any], tensors: dict[str, Tensor] | None = None) -> Agent:
        action_mask = None if tensors is None else tensors["model.action_mask"]
        model_cfg, agent_cfg = WorldModelConfig.from_dict(config["model"]), AgentConfig.from_dict(config["agent"])
        agent = cls(model_cfg, agent_cfg, action_mask, config["seed"])
        if tensors is not None:
            agent.load_tensors(tensors)
        return agent
