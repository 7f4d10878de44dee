"""Roll out scripted experts, noisy experts and random policies on many tasks and write the episodes to disk.

Every episode has a fixed place in a plan (task-major, slot 0..N-1 per task) and its own seed derived from
(run seed, task, slot), so the same seed gives the same episodes with any number of workers, and a rerun on
the same folder skips the slots already committed instead of starting over. Policies take turns over the slots
in proportion to the mix, so the first n slots of a task hold the mix too: a dataset extended to more episodes
keeps it, and so does pretraining on the first n episodes per task (a smaller pretraining scale).
"""
from __future__ import annotations

import math
import multiprocessing as mp
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossover.data.episodes import OURS, Episode, EpisodeDataset, EpisodeWriter
from crossover.errors import CrossoverError
from crossover.tasks import TaskSpec, all_tasks, make_env, make_expert


@dataclass(frozen=True)
class PolicySpec:
    kind: str  # "expert", "noisy" (expert + Gaussian action noise) or "random" (uniform in [-1, 1])
    sigma: float = 0.0  # noise standard deviation in action units, for "noisy"

    @property
    def name(self) -> str:
        return f"noisy:{self.sigma:g}" if self.kind == "noisy" else self.kind


def parse_policy(text: str) -> PolicySpec:
    """'expert', 'random' or 'noisy:SIGMA'."""
    kind, _, rest = text.strip().partition(":")
    if kind in ("expert", "random") and not rest:
        return PolicySpec(kind)
    if kind == "noisy":
        try:
            sigma = float(rest)
        except ValueError:
            sigma = -1.0
        if not (math.isfinite(sigma) and sigma > 0):
            raise CrossoverError(f"policy {text!r}: noisy needs a positive noise level, e.g. noisy:0.3")
        return PolicySpec("noisy", sigma)
    raise CrossoverError(f"unknown policy {text!r}: use expert, random or noisy:SIGMA")


def parse_mix(text: str) -> list[tuple[PolicySpec, float]]:
    """'expert:0.5,noisy:0.3:0.3,random:0.2' -> policies with the fraction of episodes each collects."""
    mix = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        policy_text, _, frac_text = part.rpartition(":")
        try:
            frac = float(frac_text)
        except ValueError:
            raise CrossoverError(f"--mix entry {part!r}: expected POLICY:FRACTION, e.g. expert:0.5 or noisy:0.3:0.2")
        if not policy_text or not (math.isfinite(frac) and frac >= 0):
            raise CrossoverError(f"--mix entry {part!r}: expected POLICY:FRACTION with a fraction >= 0")
        mix.append((parse_policy(policy_text), frac))
    total = sum(f for _, f in mix)
    if not mix or abs(total - 1.0) > 1e-6:
        raise CrossoverError(f"--mix {text!r}: fractions must add up to 1 (they add up to {total:g})")
    return mix


@dataclass(frozen=True)
class EpisodeJob:
    task: str
    task_number: int  # position in the full catalogue, so seeds do not depend on which tasks were asked for
    slot: int
    policy: PolicySpec
    seed: int


SLOT_ORDER = "interleaved"  # recorded with a dataset; datasets of the first version filled slots in blocks


def slot_policies(mix: list[tuple[PolicySpec, float]], episodes: int) -> list[PolicySpec]:
    """The policy of slots 0..episodes-1: each slot goes to the policy furthest behind its share so far (the
    earlier one in the mix on a tie). Every prefix of the list keeps each policy within one episode of its share,
    and a longer list starts with the shorter one."""
    counts = [0] * len(mix)
    policies = []
    for n in range(1, episodes + 1):
        i = max(range(len(mix)), key=lambda i: (mix[i][1] * n - counts[i], -i))
        counts[i] += 1
        policies.append(mix[i][0])
    return policies


def _in_blocks(recipe: dict) -> bool:
    """Whether a dataset's collect recipe gave a task's slots to one policy after another (the first version,
    which recorded no slot order); with a single policy the order makes no difference."""
    return len(recipe.get("mix", [])) > 1 and "slot_order" not in recipe


def check_prefix_holds_mix(dataset: EpisodeDataset, episodes_per_task: int) -> None:
    """Refuse to take the first `episodes_per_task` episodes per task of a dataset collected in the first
    version's block order (one policy after another) with a mix of policies: they would be one policy's."""
    if not _in_blocks(dataset.info.get(OURS, {}).get("extra", {}).get("collect") or {}):
        return
    if any(n > episodes_per_task for n in Counter(r["tasks"][0] for r in dataset.episodes).values()):
        raise CrossoverError(f"{dataset.root}: collected by an early version that gave a task's slots to one policy "
                             f"after another, so its first {episodes_per_task} episodes per task are not its policy "
                             f"mix; use all its episodes, or collect the data again")


def plan(tasks: list[TaskSpec], episodes: int, mix: list[tuple[PolicySpec, float]], seed: int) -> list[EpisodeJob]:
    """Task-major plan; each task's slots take policies from `slot_policies`, each its own seed."""
    policies = slot_policies(mix, episodes)
    number = {t.name: i for i, t in enumerate(all_tasks())}
    jobs = []
    for task in tasks:
        for slot, policy in enumerate(policies):
            ss = np.random.SeedSequence(seed, spawn_key=(number[task.name], slot))
            jobs.append(EpisodeJob(task.name, number[task.name], slot, policy, int(ss.generate_state(1)[0])))
    return jobs


# Per process: the last (task, episode length) -> (env, expert). Simulators are slow to build, so consecutive
# episodes of one task share one; plans are task-major, so one is enough, and the previous one is closed.
_ENVS: dict = {}


def close_envs() -> None:
    for env, _ in _ENVS.values():
        env.close()
    _ENVS.clear()


def run_episode(job: EpisodeJob, episode_length: int | None = None) -> Episode:
    from crossover.tasks import get_task

    key = (job.task, episode_length)
    if key not in _ENVS:
        close_envs()
        spec = get_task(job.task)
        _ENVS[key] = (make_env(spec, episode_length), make_expert(spec))
    env, expert = _ENVS[key]
    rng = np.random.default_rng(job.seed)
    obs = env.reset(job.seed)
    rows: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "success", "terminated", "truncated")}
    while True:
        if job.policy.kind == "random":
            action = rng.uniform(-1.0, 1.0, size=4).astype(np.float32)
        else:
            action = expert(obs)
            if job.policy.kind == "noisy":
                action = np.clip(action + rng.normal(0.0, job.policy.sigma, size=action.shape), -1, 1).astype(np.float32)
        next_obs, reward, terminated, truncated, success = env.step(action)
        for k, v in zip(rows, (obs, action, reward, success, terminated, truncated)):
            rows[k].append(v)
        obs = next_obs
        if terminated or truncated:
            break
    return Episode(job.task, np.stack(rows["obs"]), np.stack(rows["action"]),
                   np.asarray(rows["reward"], np.float32), np.asarray(rows["success"], bool),
                   np.asarray(rows["terminated"], bool), np.asarray(rows["truncated"], bool),
                   policy=job.policy.name, seed=job.seed, slot=job.slot, final_obs=obs)


def _run(args: tuple[EpisodeJob, int | None]) -> Episode:
    return run_episode(*args)


@dataclass
class CollectResult:
    out: Path
    episodes_written: int  # by this call; slots already on disk are not counted
    episodes_skipped: int
    frames: int
    seconds: float


def collect(tasks: list[TaskSpec], episodes: int, out: str | Path, policy: str | None = "expert",
            mix: str | None = None, workers: int = 1, seed: int = 0, episode_length: int | None = None,
            flush_every: int = 25, progress=print) -> CollectResult:
    """Collect `episodes` per task into the dataset folder `out`, resuming what an earlier run left there."""
    if episodes < 1:
        raise CrossoverError(f"--episodes must be at least 1 (got {episodes})")
    if flush_every < 1:
        raise CrossoverError(f"--flush-every must be at least 1 (got {flush_every})")
    if workers < 1:
        raise CrossoverError(f"--workers must be at least 1 (got {workers})")
    if episode_length is not None and episode_length < 1:
        raise CrossoverError(f"--episode-length must be at least 1 (got {episode_length})")
    if seed < 0:
        raise CrossoverError(f"--seed must be >= 0 (got {seed})")
    policy_mix = parse_mix(mix) if mix else [(parse_policy(policy or "expert"), 1.0)]
    spec0 = tasks[0]
    if any((t.obs_dim, t.action_dim, t.fps) != (spec0.obs_dim, spec0.action_dim, spec0.fps) for t in tasks):
        raise CrossoverError("tasks with different observation/action sizes or rates go into separate datasets")
    recipe = {"seed": seed, "mix": [[p.name, f] for p, f in policy_mix],
              "episode_length": episode_length or spec0.episode_length, "slot_order": SLOT_ORDER}
    writer = EpisodeWriter(out, spec0.obs_dim, spec0.action_dim, spec0.fps, spec0.embodiment,
                           {t.name: t.description for t in tasks})
    with writer:  # on an error the lock is let go, and what was committed is kept
        _check_recipe(out, writer.extra.get("collect"), recipe)
        writer.extra["collect"] = recipe
        return _collect_into(writer, tasks, episodes, out, policy_mix, workers, seed, episode_length, flush_every,
                             progress)


def _check_recipe(out: str | Path, old: dict | None, new: dict) -> None:
    """Adding to a dataset needs the recipe it was collected with; otherwise the new episodes would not be the
    ones the plan promises."""
    if not old:
        return
    was = {**old, "slot_order": "blocks" if _in_blocks(old) else old.get("slot_order", new["slot_order"])}
    changed = [k for k in ("seed", "episode_length", "mix", "slot_order") if was.get(k) != new[k]]
    if changed:
        said = "; ".join(f"{k.replace('_', ' ')} {_recipe_value(was.get(k))}" for k in changed)
        raise CrossoverError(f"{out}: was collected with {said}; rerun with the same settings to add to it, or "
                             f"choose another --out")


def _recipe_value(v) -> str:
    return ",".join(f"{name}:{f:g}" for name, f in v) if isinstance(v, list) else str(v)


def _collect_into(writer: EpisodeWriter, tasks: list[TaskSpec], episodes: int, out: str | Path, policy_mix,
                  workers: int, seed: int, episode_length: int | None, flush_every: int, progress) -> CollectResult:
    done = writer.committed_slots
    jobs = [j for j in plan(tasks, episodes, policy_mix, seed) if (j.task, j.slot) not in done]
    skipped = len(tasks) * episodes - len(jobs)
    if skipped:
        progress(f"[collect] {out}: {skipped} episodes already on disk, {len(jobs)} to go")
    per_task = Counter(j.task for j in jobs)
    finished: Counter = Counter()
    expert_runs: Counter = Counter()
    expert_wins: Counter = Counter()
    frames, start, last_print = 0, time.time(), 0.0
    # spawn, not fork: workers must not inherit this process's open files, such as the locks a study holds
    # (a forked worker outliving a killed parent would keep them held).
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        # A worker builds each task's simulator once (about 0.15 s each), so hand out runs of a task's episodes;
        # half a task per run keeps the last runs short enough that neither core idles long at the end.
        chunk = max(1, min(-(-episodes // 2), len(jobs) // (workers * 4)))
        results = (pool.imap(_run, [(j, episode_length) for j in jobs], chunksize=chunk) if pool
                   else (run_episode(j, episode_length) for j in jobs))
        for n, ep in enumerate(results, 1):
            writer.add(ep)
            if n % flush_every == 0:
                writer.flush()
            frames += len(ep)
            finished[ep.task] += 1
            if ep.policy == "expert":
                expert_runs[ep.task] += 1
                expert_wins[ep.task] += int(ep.success.any())
            now = time.time()
            if finished[ep.task] == per_task[ep.task] or now - last_print > 5 or n == len(jobs):
                last_print = now
                rate = frames / max(now - start, 1e-9)
                left = (len(jobs) - n) * frames / n / max(rate, 1e-9)
                task_note = ""
                if finished[ep.task] == per_task[ep.task]:
                    task_note = f" | {ep.task} done" + (
                        f", expert success {expert_wins[ep.task]}/{expert_runs[ep.task]}" if expert_runs[ep.task] else "")
                wins, runs = sum(expert_wins.values()), sum(expert_runs.values())
                expert = f" | expert success {wins / runs:.0%}" if runs else ""
                progress(f"[collect] {n}/{len(jobs)} episodes, {frames} frames, {rate:,.0f} frames/s{expert}, "
                         f"~{left:.0f}s left{task_note}")
    finally:
        if pool:
            pool.terminate()
        else:
            close_envs()
    return CollectResult(Path(out), len(jobs), skipped, frames, time.time() - start)
