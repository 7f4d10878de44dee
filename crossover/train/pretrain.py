"""Offline multi-task pretraining of the world model on collected episodes, and loading the result for adaptation.

Every component is trained (encoder, dynamics, reward, Q ensemble, policy prior, task embeddings) with the same
update the online loop uses, on windows sampled uniformly across tasks. A slice of each task's episodes is held
out; prediction losses on it, per task, tell how well the model has learned each task's physics and rewards.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from crossover.agent.agent import BC_COEF, Agent, AgentConfig
from crossover.atomic import write_json_atomic
from crossover.data.collect import check_prefix_holds_mix
from crossover.data.episodes import OURS, EpisodeDataset
from crossover.data.sampler import TrajectoryBuffer
from crossover.errors import CrossoverError
from crossover.model.layers import soft_cross_entropy, two_hot
from crossover.model.world_model import WorldModelConfig
from crossover.tasks import get_task, resolve_tasks
from crossover.train.checkpoint import (generator_state, load_checkpoint, prepare_run, read_checkpoint_state,
                                       restore_generator, same_source, save_checkpoint, weights_sha256)
from crossover.train.metrics import MetricsLogger
from crossover.train.online import batch_to_torch
from crossover.train.warmup import warm_up


@dataclass
class PretrainConfig:
    data: list[str]  # dataset folders written by `crossover collect` (or LeRobot)
    tasks: str | None = None  # task spec to train on; None: every task in the data
    preset: str = "1m"  # world-model size
    steps: int = 20_000  # gradient updates
    episodes_per_task: int | None = None  # use only the first N episodes of each task (a pretraining scale)
    holdout: float = 0.1  # fraction of each task's episodes held out for the prediction losses (at least 1)
    eval_every: int = 1_000  # held-out losses and a checkpoint every this many updates
    episode_length: int = 200  # episode length the adapted agent will see; sets the discount as in TD-MPC2
    bc_coef: float = BC_COEF  # behaviour-cloning weight on the policy prior (AgentConfig.bc_coef)
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if not self.data:
            raise CrossoverError("pretrain needs at least one --data folder")
        if self.steps < 1 or self.eval_every < 1:
            raise CrossoverError("--steps and --eval-every must be >= 1")
        if not self.bc_coef >= 0:
            raise CrossoverError(f"--bc-coef must be >= 0 (got {self.bc_coef})")
        if not 0 <= self.holdout < 1:
            raise CrossoverError(f"--holdout must be in [0, 1) (got {self.holdout})")
        if self.preset not in WorldModelConfig.PRESETS:
            raise CrossoverError(f"unknown preset {self.preset!r}; choose one of {sorted(WorldModelConfig.PRESETS)}")


@dataclass
class PretrainResult:
    run_dir: Path
    tasks: list[str]
    updates: int
    transitions: int  # training transitions (held-out ones excluded)
    wall_s: float
    cpu_s: float
    heldout: dict[str, dict[str, float]]  # task -> prediction losses at the end


@torch.no_grad()
def prediction_losses(agent: Agent, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """How well the model predicts held-out data: latent consistency (MSE to the encoded next observations over
    the horizon) and reward cross-entropy, averaged over the batch."""
    model = agent.model
    model.eval()
    obs, action, reward, task = batch["obs"], batch["action"], batch["reward"], batch["task"]
    target = model.encode(obs[1:], task)
    z = model.encode(obs[0], task)
    consistency, reward_ce = 0.0, 0.0
    for t in range(action.shape[0]):
        reward_ce += soft_cross_entropy(model.reward(z, action[t], task),
                                        two_hot(reward[t], model.cfg.num_bins, model.cfg.vmin, model.cfg.vmax)).mean()
        z = model.next(z, action[t], task)
        consistency += F.mse_loss(z, target[t])
    h = action.shape[0]
    return {"consistency": float(consistency) / h, "reward_ce": float(reward_ce) / h}


def _split_buffers(datasets: list[EpisodeDataset], tasks: list[str], holdout: float, horizon: int,
                   obs_dim: int, action_dim: int, seed: int, episodes_per_task: int | None = None
                   ) -> tuple[TrajectoryBuffer, TrajectoryBuffer]:
    frames = sum(ds.num_frames for ds in datasets)
    train = TrajectoryBuffer(tasks, obs_dim, action_dim, capacity=frames + 1)
    held = TrajectoryBuffer(tasks, obs_dim, action_dim, capacity=frames + 1)
    rng = np.random.default_rng(seed)
    for ds in datasets:
        by_task: dict[str, list] = {}
        for ep in ds.iter_episodes([t for t in tasks if t in ds.task_names]):
            by_task.setdefault(ep.task, []).append(ep)
        for task, eps in by_task.items():
            eps = eps[:episodes_per_task] if episodes_per_task else eps
            n_held = int(round(holdout * len(eps))) if len(eps) > 1 and holdout > 0 else 0
            n_held = max(n_held, 1) if holdout > 0 and len(eps) > 1 else n_held
            order = rng.permutation(len(eps))
            for i, j in enumerate(order):
                (held if i < n_held else train).add_episode(eps[j], horizon)
    return train, held


def data_digest(datasets: list[EpisodeDataset]) -> str:
    """The data of a pretraining run by content, wherever its folders lie: each episode's task, length and
    data-file checksum (where the dataset records one, as Crossover's do; LeRobot's are known by tasks and
    lengths only)."""
    h = hashlib.sha256()
    for ds in datasets:
        h.update(json.dumps([[r["tasks"][0], r["length"], r.get(f"{OURS}/data_sha256")] for r in ds.episodes]).encode())
    return h.hexdigest()


def _same_data(ckpt: Path, saved: list[str], new: list[str], digest: str) -> bool:
    """Whether a run saved as pretraining on `saved` may resume on `new` (say, its study folder was moved): yes if
    they hold the data its checkpoint recorded. Runs begun before that was recorded need the same folders."""
    return same_source(read_checkpoint_state(ckpt).get("data_digest"), saved, new, lambda: digest)


def pretrain(cfg: PretrainConfig, out: str | Path, resume: bool = False, progress=print) -> PretrainResult:
    out = Path(out)
    ckpt = out / "checkpoint"
    torch.set_num_threads(cfg.threads)
    datasets = [EpisodeDataset(d) for d in cfg.data]
    if cfg.episodes_per_task:
        for ds in datasets:
            check_prefix_holds_mix(ds, cfg.episodes_per_task)
    available = list(dict.fromkeys(t for ds in datasets for t in ds.task_names))
    tasks = [t.name for t in resolve_tasks(cfg.tasks)] if cfg.tasks else available
    missing = [t for t in tasks if t not in available]
    if missing:
        raise CrossoverError(f"no episodes of {', '.join(missing)} in {', '.join(cfg.data)}; collect them first")
    obs_dim = max(ds.obs_dim for ds in datasets)
    action_dim = max(ds.action_dim for ds in datasets)
    agent_cfg = AgentConfig(episode_length=cfg.episode_length, bc_coef=cfg.bc_coef)
    train, held = _split_buffers(datasets, tasks, cfg.holdout, agent_cfg.horizon, obs_dim, action_dim, cfg.seed,
                                 cfg.episodes_per_task)
    digest = data_digest(datasets)
    resume = prepare_run(out, "pretrain_config.json", asdict(cfg), resume, progress, may_grow=("steps",),
                         same={"data": lambda saved, new: _same_data(ckpt, saved, new, digest)})
    if resume:
        agent, state, _ = load_checkpoint(ckpt)
        rng = restore_generator(state["rng"])
        progress(f"[pretrain] resuming {out} at update {state['updates']:,}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "pretrain_config.json", asdict(cfg))
        model_cfg = WorldModelConfig.preset(cfg.preset, obs_dim=obs_dim, action_dim=action_dim, num_tasks=len(tasks))
        mask = torch.zeros(len(tasks), action_dim)
        for i, t in enumerate(tasks):
            mask[i, : get_task(t).action_dim] = 1
        agent = Agent(model_cfg, agent_cfg, mask, cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        state = {"updates": 0, "wall_s": 0.0, "cpu_s": 0.0, "tasks": tasks, "heldout": {}, "data_digest": digest}
    progress(f"[pretrain] {len(tasks)} tasks, {len(train):,} training and {len(held):,} held-out transitions, "
             f"{agent.model.num_parameters():,} parameters")
    warm_up(agent.model_cfg, agent.cfg)  # before the clocks start: a one-time cost of the process, not of this run
    logger = MetricsLogger(out, resume_step=state["updates"] if resume else None)
    wall0, cpu0 = time.time() - state["wall_s"], time.process_time() - state["cpu_s"]
    held_rng = np.random.default_rng(cfg.seed + 1)  # the same held-out windows at every evaluation
    held_batches = {t: batch_to_torch(held.sample(64, agent.cfg.horizon, held_rng, task=i))
                    for i, t in enumerate(tasks) if held.has_windows(i)}
    sums: dict[str, float] = {}
    last_print = time.time()
    try:
        while state["updates"] < cfg.steps:
            for k, v in agent.update(batch_to_torch(train.sample(agent.cfg.batch_size, agent.cfg.horizon, rng))).items():
                sums[k] = sums.get(k, 0.0) + v
            state["updates"] += 1
            u = state["updates"]
            if u % cfg.eval_every == 0 or u == cfg.steps:
                n = cfg.eval_every if u % cfg.eval_every == 0 else u % cfg.eval_every
                wall, cpu = time.time() - wall0, time.process_time() - cpu0
                logger.log("train", u, {**{k: v / n for k, v in sums.items()}, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)})
                sums = {}
                state["heldout"] = {t: prediction_losses(agent, b) for t, b in held_batches.items()}
                if state["heldout"]:
                    mean = {k: float(np.mean([v[k] for v in state["heldout"].values()])) for k in ("consistency", "reward_ce")}
                    logger.log("heldout", u, {**{f"mean_{k}": v for k, v in mean.items()},
                                              **{f"{t}/consistency": v["consistency"] for t, v in state["heldout"].items()},
                                              **{f"{t}/reward_ce": v["reward_ce"] for t, v in state["heldout"].items()}})
                state["wall_s"], state["cpu_s"], state["rng"] = wall, cpu, generator_state(rng)
                save_checkpoint(ckpt, agent, state)
            if time.time() - last_print > 15 or u == cfg.steps:
                last_print = time.time()
                wall = time.time() - wall0
                rate = u / max(wall, 1e-9)
                held_note = ""
                if state["heldout"]:
                    held_note = f", held-out consistency {np.mean([v['consistency'] for v in state['heldout'].values()]):.4f}"
                progress(f"[pretrain] update {u:,}/{cfg.steps:,}, {rate:.1f} updates/s{held_note}, "
                         f"~{(cfg.steps - u) / max(rate, 1e-9) / 60:.1f} min left")
    finally:
        logger.close()
    result = PretrainResult(out, tasks, state["updates"], len(train), state["wall_s"], state["cpu_s"], state["heldout"])
    write_json_atomic(out / "summary.json", {**asdict(result), "run_dir": str(out)})
    return result


def load_pretrained(run_dir: str | Path, target: str, seed: int) -> tuple[Agent, dict]:
    """The pretrained agent with `target` added as a new task (or reused, if it was a source task).

    The new task's embedding starts as the normalised mean of the source embeddings: with no data from the new
    task yet, that is the choice that favours no single source task. `adapt` replaces it by `choose_source_task`
    when it is given demos (with none, the mean stays).
    """
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint"
    if not ckpt.exists():
        raise CrossoverError(f"{ckpt}: missing; is {run_dir} a `crossover pretrain` run?")
    agent, state, _ = load_checkpoint(ckpt)
    tasks = list(state["tasks"])
    spec = get_task(target)
    agent.generator.manual_seed(seed)  # adaptation seeds differ from each other, not from the pretraining seed
    start = {"init": str(run_dir), "weights_sha256": weights_sha256(run_dir)}  # which weights, by content
    if target in tasks:
        return agent, {"tasks": tasks, **start, "embedding_from": target, "seen_in_pretraining": True}
    mask = torch.zeros(agent.model_cfg.action_dim)
    mask[: spec.action_dim] = 1
    agent.add_task(mask)
    emb = agent.model._task_emb
    if emb is not None:
        with torch.no_grad():
            mean = emb.weight[:-1].mean(0)
            emb.weight[-1] = mean / mean.norm().clamp(min=1e-6) * emb.weight[:-1].norm(dim=-1).mean()
    return agent, {"tasks": tasks + [target], **start, "embedding_from": "mean of source tasks",
                   "seen_in_pretraining": False}


def choose_source_task(agent: Agent, buffer: TrajectoryBuffer, target_index: int, rng) -> int | None:
    """The source task whose embedding best predicts the target's transitions in `buffer` (lowest consistency +
    reward loss); copies it into the target's embedding row and returns its index."""
    if not buffer.has_windows(target_index) or agent.model._task_emb is None:
        return None
    batch = batch_to_torch(buffer.sample(256, agent.cfg.horizon, rng, task=target_index))
    scores = []
    for source in range(agent.model_cfg.num_tasks - 1):
        batch["task"] = torch.full_like(batch["task"], source)
        losses = prediction_losses(agent, batch)
        scores.append(agent.cfg.consistency_coef * losses["consistency"] + agent.cfg.reward_coef * losses["reward_ce"])
    best = int(np.argmin(scores))
    with torch.no_grad():
        agent.model._task_emb.weight[target_index] = agent.model._task_emb.weight[best]
    return best
