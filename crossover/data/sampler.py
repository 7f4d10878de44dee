"""Sub-trajectory sampling for world-model training: windows of H+1 observations drawn across tasks.

One buffer serves offline pretraining (filled from datasets on disk) and online training (filled episode by
episode). Tasks are drawn uniformly, then a window uniformly within the task, so a task with few transitions
is seen as often as one with many. Observations and actions are zero-padded to the buffer's dims; masks say
which entries are real.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossover.data.episodes import Episode, EpisodeDataset
from crossover.errors import CrossoverError


@dataclass
class Batch:
    obs: np.ndarray  # [H+1, B, obs_dim] float32, zero-padded
    action: np.ndarray  # [H, B, action_dim] float32, zero-padded
    reward: np.ndarray  # [H, B] float32
    terminated: np.ndarray  # [H, B] float32 (1.0 where the episode ended by termination after the action)
    task: np.ndarray  # [B] int64, index into the buffer's task list
    obs_mask: np.ndarray  # [B, obs_dim] float32, 1 for real observation entries
    action_mask: np.ndarray  # [B, action_dim] float32, 1 for real action entries


class TrajectoryBuffer:
    """Episodes of many tasks in flat, growable arrays.

    An episode of T actions adds T+1 observations when its final observation is known (online), or T rows and
    T-1 usable transitions when it is not (LeRobot files have no row for the final observation).
    """

    def __init__(self, tasks: list[str], obs_dim: int, action_dim: int, capacity: int = 1_000_000):
        self.tasks = list(tasks)
        self.task_id = {t: i for i, t in enumerate(self.tasks)}
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self._obs = np.zeros((capacity, obs_dim), np.float32)
        self._action = np.zeros((capacity, action_dim), np.float32)
        self._reward = np.zeros(capacity, np.float32)
        self._terminated = np.zeros(capacity, np.float32)
        self._size = 0
        self._task_dims = np.zeros((len(self.tasks), 2), np.int64)  # real (obs, action) dims per task
        self._starts: list[list[np.ndarray]] = [[] for _ in self.tasks]  # per task: arrays of row indices
        self._start_cache: dict[int, np.ndarray] = {}
        self._episodes: list[tuple[int, int, int]] = []  # (task id, first row, transitions) per episode
        self._horizons: list[int] = []
        self.num_transitions = 0
        self.num_episodes = 0

    def __len__(self) -> int:
        return self.num_transitions

    def add_episode(self, ep: Episode, horizon: int) -> None:
        """Append one episode; windows of `horizon` actions starting inside it become sampleable."""
        if ep.task not in self.task_id:
            raise CrossoverError(f"episode of task {ep.task!r}, but this buffer holds {self.tasks}")
        obs = ep.obs if ep.final_obs is None else np.concatenate([ep.obs, ep.final_obs[None]])
        steps = len(obs) - 1  # transitions with a known next observation
        n = len(obs)
        if self._size + n > len(self._obs):
            raise CrossoverError(f"buffer full ({len(self._obs):,} rows); raise its capacity")
        d_o, d_a = ep.obs.shape[1], ep.action.shape[1]
        if d_o > self.obs_dim or d_a > self.action_dim:
            raise CrossoverError(f"task {ep.task!r} has obs/action dims {d_o}/{d_a}, larger than the buffer's "
                                 f"{self.obs_dim}/{self.action_dim}")
        lo = self._size
        self._obs[lo:lo + n, :d_o] = obs
        self._action[lo:lo + steps, :d_a] = ep.action[:steps]
        self._reward[lo:lo + steps] = ep.reward[:steps]
        self._terminated[lo:lo + steps] = ep.terminated[:steps]
        self._size += n
        t = self.task_id[ep.task]
        self._task_dims[t] = (d_o, d_a)
        self._index(t, lo, steps, horizon)

    def _index(self, t: int, lo: int, steps: int, horizon: int) -> None:
        if steps >= horizon:
            self._starts[t].append(np.arange(lo, lo + steps - horizon + 1))
            self._start_cache.pop(t, None)
        self._episodes.append((t, lo, steps))
        self._horizons.append(horizon)
        self.num_transitions += steps
        self.num_episodes += 1

    def state(self) -> dict[str, np.ndarray]:
        """The filled part of the buffer as named arrays (for a checkpoint); load_state() restores it exactly."""
        n = self._size
        return {"obs": self._obs[:n], "action": self._action[:n], "reward": self._reward[:n],
                "terminated": self._terminated[:n], "task_dims": self._task_dims,
                "episodes": np.asarray(self._episodes, np.int64).reshape(-1, 3),
                "horizons": np.asarray(self._horizons, np.int64)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        n = len(state["obs"])
        if n > len(self._obs) or state["obs"].shape[1] != self.obs_dim or len(state["task_dims"]) != len(self.tasks):
            raise CrossoverError("buffer state does not fit this buffer (capacity, dims or task count differ)")
        self.__init__(self.tasks, self.obs_dim, self.action_dim, len(self._obs))
        for name in ("obs", "action", "reward", "terminated"):
            getattr(self, f"_{name}")[:n] = state[name]
        self._size = n
        self._task_dims[:] = state["task_dims"]
        for (t, lo, steps), h in zip(state["episodes"].tolist(), state["horizons"].tolist()):
            self._index(t, lo, steps, h)

    def add_dataset(self, dataset: EpisodeDataset, horizon: int) -> int:
        """Load every episode of the buffer's tasks from a dataset on disk; returns episodes added."""
        before = self.num_episodes
        for ep in dataset.iter_episodes([t for t in self.tasks if t in dataset.task_names]):
            self.add_episode(ep, horizon)
        return self.num_episodes - before

    def _task_starts(self, t: int) -> np.ndarray:
        if t not in self._start_cache:
            self._start_cache[t] = np.concatenate(self._starts[t]) if self._starts[t] else np.zeros(0, np.int64)
        return self._start_cache[t]

    def _row_range(self, episodes: slice | None) -> tuple[int, int]:
        """The rows [lo, hi) of a slice of episodes (by the order they were added)."""
        if episodes is None:
            return 0, self._size
        first, stop = episodes.start or 0, episodes.stop
        if first < 0 or episodes.step not in (None, 1) or (stop is not None and stop <= first):
            raise CrossoverError(f"episodes {episodes}: give a slice of episode numbers, from 0 up, step 1")

        def row(i: int) -> int:  # the first row of episode i, or the end of the buffer
            return self._episodes[i][1] if i < self.num_episodes else self._size
        return row(first), row(self.num_episodes if stop is None else stop)

    def has_windows(self, task: int) -> bool:
        return len(self._task_starts(task)) > 0

    def sample(self, batch_size: int, horizon: int, rng: np.random.Generator, task: int | None = None,
               episodes: slice | None = None) -> Batch:
        """B windows of `horizon` actions: a task uniformly among those with data (or the given one), then a
        window uniformly within it; only in the episodes numbered by `episodes` (in the order they were added) if
        that is given: online adaptation keeps its demonstrations first and oversamples them this way."""
        if self._horizons and horizon > min(self._horizons):
            raise CrossoverError(f"windows of {horizon} actions asked for, but episodes were added for windows of "
                                 f"{min(self._horizons)}: longer ones would run past their episode")
        lo, hi = self._row_range(episodes)
        # Rows grow as episodes come, so each task's window starts are sorted and a row range is a slice of them.
        starts_of = {t: s if episodes is None else s[np.searchsorted(s, lo):np.searchsorted(s, hi)]
                     for t in (range(len(self.tasks)) if task is None else [task]) for s in [self._task_starts(t)]}
        ready = [t for t, s in starts_of.items() if len(s)]
        if not ready:
            where = "" if episodes is None else f" among episodes {episodes.start or 0}..{episodes.stop or 'end'}"
            raise CrossoverError(f"no episode{where} has {horizon} steps yet; add data before sampling")
        task = np.asarray(ready)[rng.integers(len(ready), size=batch_size)]
        start = np.empty(batch_size, np.int64)
        for t in np.unique(task):
            pick = task == t
            starts = starts_of[t]
            start[pick] = starts[rng.integers(len(starts), size=int(pick.sum()))]
        rows = start[None, :] + np.arange(horizon + 1)[:, None]  # [H+1, B]
        dims = self._task_dims[task]
        return Batch(
            obs=self._obs[rows], action=self._action[rows[:-1]], reward=self._reward[rows[:-1]],
            terminated=self._terminated[rows[:-1]], task=task.astype(np.int64),
            obs_mask=(np.arange(self.obs_dim)[None] < dims[:, :1]).astype(np.float32),
            action_mask=(np.arange(self.action_dim)[None] < dims[:, 1:]).astype(np.float32),
        )
