"""The online loop: act by planning, store experience, update the world model; scratch and fine-tuning share it.

`adapt()` is the task-specific learner of Crossover. From scratch it starts with random weights and a seed phase
of uniformly random actions, or of the prior cloned from demonstrations if it has some (an untrained planner has
nothing to plan with); from a pretrained run it adds the target task to the model and plans from its first step.
With demonstrations, both hand over from the cloned prior to the planner (DEMO_METHOD). Everything else (updates,
evaluation, budget, the use of demonstrations) is the same code path, so the comparison between the two is fair
by construction.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from crossover.agent.agent import BC_COEF, Agent, AgentConfig
from crossover.data.collect import EpisodeJob, PolicySpec, run_episode
from crossover.atomic import write_json_atomic
from crossover.data.episodes import Episode
from crossover.data.sampler import TrajectoryBuffer
from crossover.errors import CheckpointError, CrossoverError
from crossover.eval.rollout import evaluate
from crossover.model.world_model import WorldModelConfig
from crossover.tasks import get_task, make_env
from crossover.train.checkpoint import (BUFFER_FILE, generator_state, load_checkpoint, prepare_run,
                                       read_checkpoint_state, restore_generator, same_source, save_checkpoint,
                                       weights_sha256)
from crossover.train.metrics import MetricsLogger
from crossover.train.warmup import warm_up
from crossover.version import CODE_VERSION, LEARNING_CODE, machine

# Besides every evaluation, a checkpoint at the first episode end after this many wall seconds, so a killed run
# loses at most a few minutes whatever its evaluation period (or, killed before its first evaluation ends, the
# updates on its demonstrations: 2,000 for 5 demos of 200 steps, 3-10 min). Where checkpoints fall does not change
# the results.
CHECKPOINT_EVERY_S = 300.0

# What an agent does with K expert demonstrations, both arms alike, after MoDem (Hansen et al., 2023, "MoDem:
# Accelerating Visual Model-Based Reinforcement Learning with Demonstrations"), whose three phases these follow:
# 1. before any interaction, updates_per_step updates per demonstrated step on the demonstrations alone, with a
#    behaviour-cloning term of weight bc_coef (the policy prior imitates them; the model learns their dynamics,
#    reward and value). MoDem clones for 2 iterations per demonstrated step; the weight is the one pretraining uses
#    by default (BC_COEF), fixed here whatever a study's pretrain_bc_coef is;
# 2. scratch's seed phase acts with that policy prior instead of uniformly random actions (MoDem's seeding), as
#    item 4 says;
# 3. online, batch_fraction of every batch is drawn from the demonstrations and the rest from the agent's own
#    episodes (all from the demonstrations until there is one). MoDem's Meta-World setting anneals this from 0.5
#    to 0.25 over 50k steps; our budgets are 20k, so the end value, held. With online_bc, the cloning term stays
#    on the demonstrations' windows of each batch, as Nair et al. (2018, "Overcoming Exploration in Reinforcement
#    Learning with Demonstrations") keep theirs; MoDem drops it. Without it, on bin-picking-v3 after pretraining,
#    the prior that phase 1 made (10/10 successes alone) was at 0/10 after 1,000 env steps; with it, 7/10 (session
#    11 pilot, one seed).
# 4. agency handover, after MoDem-V2 (Lancaster et al., 2023, "MoDem-V2: Visuo-Motor World Models for Real-World
#    Robot Manipulation"): for the first handover_steps online steps, each training episode is acted by the prior
#    with probability 1 - env_steps / handover_steps, decided as the episode starts (scratch's seed phase counts
#    towards those steps, but its episodes are all the prior's), else by the planner. The prior acts with its mean
#    action plus Gaussian noise of std prior_noise: its own samples are far noisier, their std coming from
#    max-entropy training, not from the demos. Why: on a model that has seen only the demos, the planner picks
#    the actions the model wrongly values most. benchmarks/planner_probe.py on bin-picking-v3 after pretraining
#    and phase 1: prior mean alone 10/10, planner 0/10, prior mean plus noise of std 0.3 7/10; of 48 copies of the
#    prior's sequence with that noise, the best-valued 0/10 and a random one 7/10 (the prior's own samples: 2/10,
#    on other layouts). The handover keeps the early training episodes good; it does not make the planner good
#    (session 12 pilot, 5,000 steps: planner 0/10 throughout, the prior alone falling from 9/10 to 2/10).
# 5. trust in the model's Q, growing from min_std / max_std (1/40) at 0 env steps geometrically to 1 at
#    trust_steps, after which its planner and its prior's loss are those of runs without demos. Until then:
#    - the planner (training and evaluation) searches near the prior's mean action sequence, its std capped at
#      trust * max_std, as MoDem-V2's policy-centred sampling;
#    - online updates (not phase 1's) weight the prior's max-Q and entropy terms by trust_q_weight, 0: the prior
#      learns by cloning alone (the demos, online_bc, and the anchor of item 6), while the model, Q included,
#      learns from everything.
#    Why the cap (pilots on bin-picking-v3, pretrained 45x50, 5 demos, seed 0, 5,000 steps, 10 evaluation
#    episodes at 0, 1k, ..., 5k steps, trust over 20k steps):
#    - the handover alone (session 12): planner 0/10 at every evaluation, none of its 14 training episodes won;
#    - the std cap alone: planner 9,7,0,3,3,4 /10, prior alone 10,6,1,3,3,8 /10, 13 of 25 training episodes won;
#    - the cap and the max-Q term weighted by trust: planner 9,8,4,9,9,8 /10, prior alone 10,8,2,9,9,8 /10.
#    After those 5,000 steps Q still ranks actions wrongly (benchmarks/results/planner_probe_trust20k_q.json:
#    near the prior, std 0.05 9/10, 0.2 4/10, 0.5 0/10; unbounded 0/10), so trust_steps is twice the study's 20k
#    budget: the cap reaches std 0.32 at 20k steps, where trust over 20k steps would have unbounded the planner.
#    Why no max-Q term at all (session 14, benchmarks/results/demo_pilots/README.md): weighted by trust (1/40,
#    rising to 1/28 at 4k steps), it still broke the prior of seed 1: evaluation 9/10 at 0 steps, 1/10 at 1k
#    and 1-4/10 to 4k, while the training episodes, acted with noise, kept winning. Adam gives even a small
#    weight's gradient full steps wherever cloning has none: on every state the demos do not cover. The mean
#    prior then stalls after grasping (prior alone on 20 layouts: 18/20 at 0 steps, 4/20 at 1k; with noise of std
#    0.3, 10/20). With the weight at 0, seed 1 held 10/10 at 1k, 2k and 3k, but 5/10 at 4k: the prior still
#    erodes off the demos' states, later: item 6.
# 6. an anchor, while trust < 1: the prior's windows from the run's own episodes are cloned, with weight
#    anchor_coef, toward the mean actions that the prior after phase 1 (a frozen copy, encoder and all, kept in the
#    run's folder as DEMO_PRIOR) takes on their observations. Cloning the demos constrains the prior only on the
#    demos' states; elsewhere the shared encoder moves under the model's losses and the prior moves with it,
#    unopposed. The anchor is DAgger's idea (Ross et al., 2011) with the phase-1 prior as the expert, in the way
#    policy distillation keeps a student near a teacher. Why (pilots on bin-picking-v3, pretrained 45x50, 5 demos,
#    seed 1, max-Q off; benchmarks/results/demo_pilots/README.md): without it, the prior alone on 20 evaluation
#    layouts fell from 18/20 after phase 1 to 9/20 at 4k steps, while cloning's error on held-out expert states
#    stayed where it was (0.021 per action dim); with it, 17/20 at 4k, its mean action within 0.02-0.03 per dim
#    of the phase-1 prior's on the states it visits (0.04-0.08 at 1k without). Evaluations at 1k..4k (/10):
#    planner 7, 7, 9, 10 with it; 10, 10, 10, 5 without.
# A run records these in its checkpoint and resumes only with the same.
DEMO_METHOD = {"updates_per_step": 2, "bc_coef": BC_COEF, "batch_fraction": 0.25, "online_bc": True,
               "handover_steps": 5_000, "prior_noise": 0.3, "trust_steps": 40_000,
               "trust_q_weight": 0.0, "anchor_coef": BC_COEF}
DEMO_PRIOR = "demo_prior"  # a demos run's folder for its frozen phase-1 agent (item 6), a checkpoint of its own


@dataclass
class AdaptConfig:
    task: str  # the target task
    init: str = "scratch"  # "scratch", or the folder of a `crossover pretrain` run to fine-tune
    steps: int = 20_000  # environment-step budget of online interaction
    demos: int = 0  # scripted-expert episodes given before the first step (used as DEMO_METHOD above says)
    eval_every: int = 2_000  # evaluate at every multiple of this many env steps (at the end of the episode there)
    eval_episodes: int = 10  # evaluation episodes, on fixed seeds
    episode_length: int = 200  # steps per training/evaluation episode
    seed: int = 0  # one seed for weights, exploration, layouts and planner noise
    preset: str = "1m"  # world-model size when starting from scratch
    seed_steps: int | None = None  # seed-phase steps, random or prior-acted (scratch only); None: max(1000, 5 episodes)
    update_every: int = 1  # one gradient update per this many env steps, after the seed phase
    threads: int = 2  # torch threads

    def __post_init__(self) -> None:
        for name in ("steps", "demos", "seed_steps"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise CrossoverError(f"{name} must be >= 0 (got {v})")
        for name in ("eval_every", "eval_episodes", "episode_length", "update_every", "threads"):
            if getattr(self, name) < 1:
                raise CrossoverError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.demos and self.episode_length < AgentConfig.horizon:
            raise CrossoverError(f"demos need episodes of at least {AgentConfig.horizon} steps (the model's training "
                                 f"horizon); got episode_length {self.episode_length}")
        if self.preset not in WorldModelConfig.PRESETS:
            raise CrossoverError(f"unknown preset {self.preset!r}; choose one of {sorted(WorldModelConfig.PRESETS)}")
        get_task(self.task)

    @property
    def from_scratch(self) -> bool:
        return self.init == "scratch"

    @property
    def random_steps(self) -> int:
        if not self.from_scratch:
            return 0
        return self.seed_steps if self.seed_steps is not None else max(1000, 5 * self.episode_length)


@dataclass
class AdaptResult:
    run_dir: Path
    curve: list[dict]  # evaluation points: env_steps, success, steps_to_success, return, prior_success, prior_return
    #                    (the policy prior alone), wall_s, cpu_s, eval_*
    env_steps: int
    demos: int
    wall_s: float  # adaptation only: excludes pretraining; includes evaluation, which eval_wall_s measures
    cpu_s: float
    eval_wall_s: float | None  # the part of wall_s/cpu_s spent evaluating (None: run began before it was timed)
    eval_cpu_s: float | None
    init_weights_sha256: str | None = None  # the pretrained weights the run started from (None: scratch, or a run
    #                                         begun before its checkpoint recorded them, 2026-11-26)
    code: list[dict] | None = None  # code_version, learning_code (crossover.version), cpu, from_env_step and
    #                                 from_cpu_s of each stretch of the run that one checkout trained on one CPU
    #                                 model (runs begun before 2026-11-27 have none for their first stretches;
    #                                 stretches begun by older code record no cpu or from_cpu_s)


def episode_seed(seed: int, episode: int) -> int:
    """The layout seed of a run's training episode number `episode` (the demos take those of seed + 1)."""
    return int(np.random.SeedSequence(seed, spawn_key=(7, episode)).generate_state(1)[0])


def new_agent(cfg: AdaptConfig) -> tuple[Agent, dict]:
    """A fresh agent for the target task, or a pretrained one with the target task added. Returns (agent, info)."""
    spec = get_task(cfg.task)
    agent_cfg = AgentConfig(episode_length=cfg.episode_length)
    if cfg.from_scratch:
        model_cfg = WorldModelConfig.preset(cfg.preset, obs_dim=spec.obs_dim, action_dim=spec.action_dim, num_tasks=1)
        mask = torch.ones(1, spec.action_dim)
        return Agent(model_cfg, agent_cfg, mask, cfg.seed), {"tasks": [cfg.task], "init": "scratch"}
    from crossover.train.pretrain import load_pretrained

    agent, info = load_pretrained(cfg.init, cfg.task, cfg.seed)
    # Both arms adapt with the same online algorithm: a behaviour-cloning term that pretraining used against
    # offline over-estimation is a pretraining choice, and is dropped here as scratch never has it; the discount
    # follows the target's episode length, as scratch's does, whatever length the source episodes had.
    agent.cfg.bc_coef = agent_cfg.bc_coef
    use_target_discount(agent, cfg.episode_length)
    return agent, info


def use_target_discount(agent: Agent, episode_length: int) -> None:
    """Give a pretrained agent the discount of the target's `episode_length`, the one a scratch agent derives from
    it (TD-MPC2's rule), whatever length the source episodes had."""
    fresh = AgentConfig(episode_length=episode_length)
    agent.cfg.episode_length, agent.cfg.discount = fresh.episode_length, fresh.discount


def add_demos(cfg: AdaptConfig, buffer: TrajectoryBuffer, horizon: int) -> None:
    """The run's demonstrations, first in `buffer`: the scripted expert on layouts of their own."""
    for d in range(cfg.demos):
        job = EpisodeJob(cfg.task, -1, d, PolicySpec("expert"), episode_seed(cfg.seed + 1, d))
        buffer.add_episode(run_episode(job, cfg.episode_length), horizon)


def sample_batch(cfg: AdaptConfig, agent: Agent, buffer: TrajectoryBuffer, rng: np.random.Generator,
                 anchor: Agent | None = None) -> dict:
    """One training batch; with demonstrations (the buffer's first cfg.demos episodes), batch_fraction of it from
    them and the rest from the episodes after them. With `anchor` (DEMO_METHOD, 6), once there are such episodes,
    the rest is cloned too, toward that agent's prior's mean actions."""
    size, horizon = agent.cfg.batch_size, agent.cfg.horizon
    if not cfg.demos:
        return batch_to_torch(buffer.sample(size, horizon, rng))
    demos = slice(0, cfg.demos)
    own = slice(cfg.demos, None) if buffer.num_episodes > cfg.demos else demos  # (none of its own yet)
    n_demo = round(DEMO_METHOD["batch_fraction"] * size)
    demo = batch_to_torch(buffer.sample(n_demo, horizon, rng, episodes=demos))
    rest = batch_to_torch(buffer.sample(size - n_demo, horizon, rng, episodes=own))
    batch = {k: torch.cat([demo[k], rest[k]], dim=0 if k == "task" else 1) for k in demo}
    if DEMO_METHOD["online_bc"]:
        batch["bc_weight"] = torch.cat([torch.full((n_demo,), float(DEMO_METHOD["bc_coef"])), torch.zeros(size - n_demo)])
    if anchor is not None and own is not demos:
        batch["bc_weight"][n_demo:] = float(DEMO_METHOD["anchor_coef"])
        batch["bc_target"] = torch.cat([demo["action"], prior_means(anchor, rest["obs"][:-1], rest["task"])], dim=1)
    return batch


def prior_means(agent: Agent, obs: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
    """The policy prior's mean actions [H, B, action_dim] on observations [H, B, obs_dim] of tasks [B]."""
    with torch.no_grad():
        agent.model.eval()
        return agent.model.pi_mean(agent.model.encode(obs, task), task)


def learn_from_demos(agent: Agent, buffer: TrajectoryBuffer, rng: np.random.Generator,
                     progress=lambda _: None) -> dict[str, float]:
    """Phase 1 of the demonstrations (see DEMO_METHOD): offline updates on them, cloning their actions. Returns how
    many updates it made and the last one's losses."""
    losses: dict[str, float] = {}
    todo, last_print = DEMO_METHOD["updates_per_step"] * len(buffer), time.time()  # the buffer: demonstrations only
    clone = torch.full((agent.cfg.batch_size,), float(DEMO_METHOD["bc_coef"]))
    for i in range(todo):
        batch = batch_to_torch(buffer.sample(agent.cfg.batch_size, agent.cfg.horizon, rng))
        losses = agent.update({**batch, "bc_weight": clone})
        if time.time() - last_print > 15:
            last_print = time.time()
            progress(f"[adapt] learning from the demonstrations: update {i + 1:,}/{todo:,}")
    return {"updates": todo, **losses}


def batch_to_torch(batch) -> dict[str, torch.Tensor]:
    """A sampler Batch as the tensors Agent.update takes (zero-copy views of the numpy arrays)."""
    return {"obs": torch.from_numpy(batch.obs), "action": torch.from_numpy(batch.action),
            "reward": torch.from_numpy(batch.reward), "terminated": torch.from_numpy(batch.terminated),
            "task": torch.from_numpy(batch.task)}


def _same_start(ckpt: Path, saved: str, new: str) -> bool:
    """Whether a run saved as fine-tuning `saved` may resume given `new` (say, its study folder was moved, or named
    by another path): yes if `new` holds the very weights the run's checkpoint recorded starting from. Runs begun
    before that was recorded (2026-11-26) need `new` to be the same folder as before."""
    if "scratch" in (saved, new):
        return False
    recorded = read_checkpoint_state(ckpt).get("init_info", {}).get("weights_sha256")
    return same_source(recorded, [saved], [new], lambda: weights_sha256(new))


def adapt(cfg: AdaptConfig, out: str | Path, resume: bool = False, progress=print) -> AdaptResult:
    """Train on `cfg.task` for `cfg.steps` env steps, writing metrics and checkpoints to `out`."""
    out = Path(out)
    ckpt = out / "checkpoint"
    torch.set_num_threads(cfg.threads)
    spec = get_task(cfg.task)
    resume = prepare_run(out, "adapt_config.json", asdict(cfg), resume, progress,
                         same={"init": lambda saved, new: _same_start(ckpt, saved, new)})
    if resume:
        agent, state, buffer_state = load_checkpoint(ckpt)
        if buffer_state is None:  # (damage to the run, which a study redoes)
            raise CheckpointError(ckpt / BUFFER_FILE, "missing; an adaptation run cannot resume without its replay "
                                                      "buffer: start the run afresh")
        task_index = state["task_index"]
        buffer = TrajectoryBuffer(state["tasks"], agent.model_cfg.obs_dim, agent.model_cfg.action_dim, state["capacity"])
        buffer.load_state(buffer_state)
        rng = restore_generator(state["rng"])
        if cfg.demos and state.get("demo_method") != DEMO_METHOD:
            raise CrossoverError(f"{out}: its demonstrations were used as {state.get('demo_method', 'before 2026-11-27')}"
                                 f", not as now ({DEMO_METHOD}); start the run afresh in another --out")
        if cfg.demos and not (out / DEMO_PRIOR).exists():  # (damage to the run, which a study redoes)
            raise CheckpointError(out / DEMO_PRIOR, "missing; a demos run keeps its prior from after the demos there "
                                                    "and cannot resume without it: start the run afresh")
        demo_prior = load_checkpoint(out / DEMO_PRIOR)[0] if cfg.demos else None
        progress(f"[adapt] resuming {out} at env step {state['env_steps']}")
    else:
        agent, info = new_agent(cfg)  # before anything is written: a bad --from leaves no half-made run behind
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "adapt_config.json", asdict(cfg))
        task_index = info["tasks"].index(cfg.task)
        capacity = cfg.steps + (cfg.demos + 2) * (cfg.episode_length + 1)
        # The buffer knows every task of the model, so its task ids are the model's; only the target gets data.
        # The model's sizes, not the task's: a model shared with larger embodiments takes zero-padded rows.
        buffer = TrajectoryBuffer(info["tasks"], agent.model_cfg.obs_dim, agent.model_cfg.action_dim, capacity)
        rng = np.random.default_rng(cfg.seed)
        add_demos(cfg, buffer, agent.cfg.horizon)
        if cfg.demos and not cfg.from_scratch and not info["seen_in_pretraining"]:
            from crossover.train.pretrain import choose_source_task

            best = choose_source_task(agent, buffer, task_index, rng)
            info["embedding_from"] = info["tasks"][best] if best is not None else info["embedding_from"]
        if not cfg.from_scratch:
            progress(f"[adapt] fine-tuning {cfg.init}: {cfg.task} embedding from {info['embedding_from']}")
        state = {"env_steps": 0, "episodes": 0, "updates": 0, "wall_s": 0.0, "cpu_s": 0.0, "curve": [],
                 "task_index": task_index, "tasks": info["tasks"], "capacity": capacity, "init_info": info,
                 "next_eval": 0, "eval_wall_s": 0.0, "eval_cpu_s": 0.0}
        if cfg.demos:
            state["demo_method"] = DEMO_METHOD
        demo_prior = None  # (made by phase 1 below)
    # Which code, on which CPU, trains the run from here on: a run resumed by a later checkout or on another machine
    # gets a stretch of its own, which starts at the run's env step and CPU seconds so far.
    code = {"code_version": CODE_VERSION, "learning_code": LEARNING_CODE, "cpu": machine()["cpu"]}
    last = state["code"][-1] if state.get("code") else {}
    if {k: last.get(k) for k in code} != code:
        state.setdefault("code", []).append({**code, "from_env_step": state["env_steps"], "from_cpu_s": state["cpu_s"]})
    warm_up(agent.model_cfg, agent.cfg)  # before the clocks start: a one-time cost of the process, not of this run
    logger = MetricsLogger(out, resume_step=state["env_steps"] if resume else None)
    env = make_env(spec, cfg.episode_length)
    eval_env = make_env(spec, cfg.episode_length)
    wall0, cpu0 = time.time() - state["wall_s"], time.process_time() - state["cpu_s"]
    last_print, last_save = 0.0, time.time()

    def clocks() -> tuple[float, float]:
        return time.time() - wall0, time.process_time() - cpu0

    def checkpoint() -> None:
        nonlocal last_save
        state["wall_s"], state["cpu_s"] = clocks()
        state["rng"] = generator_state(rng)
        save_checkpoint(ckpt, agent, state, buffer.state())
        last_save = time.time()

    try:
        # Inside adaptation's clocks: their cost is adaptation's. Before the first checkpoint (the one after the
        # evaluation at step 0), so a run killed before it starts over: a checkpoint of its own would share step 0
        # with that evaluation's, and a resume could not tell which of the two the metric rows at step 0 followed.
        if cfg.demos and not resume:
            row = learn_from_demos(agent, buffer, rng, progress)
            logger.log("demos", 0, row)
            demo_prior = Agent.from_config(agent.config(), agent.tensors())
            save_checkpoint(out / DEMO_PRIOR, demo_prior, {"what": "the agent after its updates on the demos"})
            progress(f"[adapt] {row['updates']:,} updates on the {cfg.demos} demonstrations ({clocks()[0]:.0f}s)")
        while True:
            if state["env_steps"] >= state["next_eval"]:  # evaluation happens between episodes only
                before = clocks()
                agent.trust_std = trust_std(state.get("demo_method"), agent, state["env_steps"])  # (as it acts now)
                ev = evaluate(agent, spec, task_index, cfg.eval_episodes, cfg.episode_length, eval_env)
                # The policy prior alone on the same episodes: planning should do better than the prior it starts
                # from, and where it does not, the world model's reward and value are what to look at.
                prior = evaluate(agent, spec, task_index, cfg.eval_episodes, cfg.episode_length, eval_env,
                                 prior_only=True)
                wall, cpu = clocks()
                point = {"env_steps": state["env_steps"], "success": ev.success_rate,
                         "steps_to_success": ev.mean_steps_to_success, "return": ev.mean_return,
                         "prior_success": prior.success_rate, "prior_return": prior.mean_return,
                         "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
                # Evaluation is measurement, not adaptation: its time is kept apart so that costs can leave it
                # out (a run that needs more evaluations before it succeeds would otherwise look dearer). A run
                # resumed from a checkpoint made before this was timed keeps not timing it.
                if "eval_wall_s" in state:
                    state["eval_wall_s"] += wall - before[0]
                    state["eval_cpu_s"] += cpu - before[1]
                    point.update(eval_wall_s=round(state["eval_wall_s"], 3), eval_cpu_s=round(state["eval_cpu_s"], 3))
                state["curve"].append(point)
                logger.log("eval", state["env_steps"], {k: v for k, v in point.items() if k != "env_steps"})
                progress(f"[adapt] {cfg.task} step {state['env_steps']:,}/{cfg.steps:,}: eval success "
                         f"{ev.success_rate:.0%}, return {ev.mean_return:.0f}; the prior alone "
                         f"{prior.success_rate:.0%}, {prior.mean_return:.0f} ({wall:.0f}s)")
                # The next multiple of eval_every (and the last step): a fixed grid, so that an episode length
                # that does not divide eval_every delays one evaluation but does not shift all later ones.
                state["next_eval"] = min((state["env_steps"] // cfg.eval_every + 1) * cfg.eval_every, cfg.steps) \
                    if state["env_steps"] < cfg.steps else cfg.steps + 1
                checkpoint()
            if state["env_steps"] >= cfg.steps:
                break
            ep, by_prior, losses = _train_episode(cfg, agent, env, buffer, rng, state, task_index, spec.action_dim,
                                                  demo_prior)
            wall, cpu = clocks()
            logger.log("train", state["env_steps"], {"episode_return": float(ep.reward.sum()),
                                                      "episode_success": float(ep.success.any()),
                                                      **({"acted_by": "prior" if by_prior else "planner"}
                                                         if cfg.demos else {}),
                                                      "updates": state["updates"], "wall_s": round(wall, 3),
                                                      **losses})
            # (not when an evaluation is due: it saves right after, and its row must come after the checkpoint)
            if time.time() - last_save > CHECKPOINT_EVERY_S and state["env_steps"] < state["next_eval"]:
                checkpoint()
            if time.time() - last_print > 15:
                last_print = time.time()
                rate = state["env_steps"] / max(wall, 1e-9)
                progress(f"[adapt] {cfg.task} step {state['env_steps']:,}/{cfg.steps:,}, episode success "
                         f"{ep.success.any():d}, {rate:.1f} steps/s, ~{(cfg.steps - state['env_steps']) / max(rate, 1e-9) / 60:.0f} min left")
    finally:
        env.close()
        eval_env.close()
        logger.close()
    result = AdaptResult(out, state["curve"], state["env_steps"], cfg.demos, state["wall_s"], state["cpu_s"],
                         state.get("eval_wall_s"), state.get("eval_cpu_s"),
                         state.get("init_info", {}).get("weights_sha256"), state["code"])
    write_json_atomic(out / "summary.json", {**asdict(result), "run_dir": str(out)})
    return result


def _train_episode(cfg: AdaptConfig, agent: Agent, env, buffer: TrajectoryBuffer, rng: np.random.Generator,
                   state: dict, task_index: int, action_dim: int, demo_prior: Agent | None) -> tuple[Episode, bool, dict]:
    """One episode of interaction with updates interleaved; returns it, whether the prior acted (demos runs'
    handover), and its mean losses. demo_prior: a demos run's agent after phase 1 (DEMO_METHOD, 6)."""
    horizon = agent.cfg.horizon
    obs = env.reset(episode_seed(cfg.seed, state["episodes"]))
    rows: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "success", "terminated", "truncated")}
    sums: dict[str, float] = {}
    n_updates = 0
    by_prior = cfg.demos > 0 and _prior_acts(cfg, state["env_steps"], rng)
    agent.trust_std = trust_std(state.get("demo_method"), agent, state["env_steps"])
    # (demos runs, DEMO_METHOD 5 and 6: while the planner is bounded, the prior's max-Q and entropy terms are
    # weighted, and the prior is anchored to the one after phase 1)
    trusting = agent.trust_std is not None
    q_weight = torch.tensor(float(DEMO_METHOD["trust_q_weight"])) if trusting else None
    anchor = demo_prior if trusting else None
    for t in range(cfg.episode_length):
        if by_prior:  # the prior cloned from the demos, while it hands over to the planner (DEMO_METHOD, 2 and 4)
            action = agent.act(obs, task_index, eval_mode=True, prior_only=True)[:action_dim]
            action = np.clip(action + DEMO_METHOD["prior_noise"] * rng.standard_normal(action_dim), -1, 1)
            action = action.astype(np.float32)
        elif state["env_steps"] < cfg.random_steps:
            action = rng.uniform(-1, 1, size=action_dim).astype(np.float32)
        else:
            action = agent.act(obs, task_index, t0=t == 0)[:action_dim]  # the model's actions may be padded
        next_obs, reward, terminated, truncated, success = env.step(action)
        for k, v in zip(rows, (obs, action, reward, success, terminated, truncated)):
            rows[k].append(v)
        obs = next_obs
        state["env_steps"] += 1
        if state["env_steps"] > cfg.random_steps and len(buffer) and state["env_steps"] % cfg.update_every == 0:
            # The first update after the seed phase catches up on it, as TD-MPC2 does after its seed steps.
            todo = cfg.random_steps if state["updates"] == 0 and cfg.random_steps else 1
            for _ in range(todo):
                batch = sample_batch(cfg, agent, buffer, rng, anchor)
                if q_weight is not None:
                    batch["q_weight"] = q_weight
                for k, v in agent.update(batch).items():
                    sums[k] = sums.get(k, 0.0) + v
                n_updates += 1
            state["updates"] += todo
        if terminated or truncated:
            break
    ep = Episode(cfg.task, np.stack(rows["obs"]), np.stack(rows["action"]), np.asarray(rows["reward"], np.float32),
                 np.asarray(rows["success"], bool), np.asarray(rows["terminated"], bool),
                 np.asarray(rows["truncated"], bool), policy="agent", final_obs=obs)
    buffer.add_episode(ep, horizon)
    state["episodes"] += 1
    return ep, by_prior, {k: v / n_updates for k, v in sums.items()}


def _prior_acts(cfg: AdaptConfig, env_steps: int, rng: np.random.Generator) -> bool:
    """Whether the policy prior, not the planner, acts in a demos run's episode starting at env_steps."""
    if env_steps < cfg.random_steps:
        return True
    share = 1.0 - env_steps / DEMO_METHOD["handover_steps"]
    return share > 0 and rng.random() < share


def trust_std(demo_method: dict | None, agent: Agent, env_steps: int) -> float | None:
    """How far from the prior the planner of a run that used its demos as `demo_method` (None: a run without
    demos) may search in an episode or evaluation starting at env_steps: trust * max_std (DEMO_METHOD, 5); None:
    anywhere."""
    steps = (demo_method or {}).get("trust_steps", 0)
    if env_steps >= steps:
        return None
    low, high = agent.cfg.min_std, agent.cfg.max_std
    return low * (high / low) ** (env_steps / steps)
