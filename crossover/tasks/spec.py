"""What a task is: the fixed facts a learner and a dataset need about one robot task."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TaskSpec:
    name: str  # unique task name, e.g. "reach-v3"
    suite: str  # where it comes from, e.g. "metaworld"
    embodiment: str  # which robot acts, e.g. "sawyer"
    obs_dim: int  # length of the state observation vector
    action_dim: int  # length of the action vector (actions live in [-1, 1])
    episode_length: int  # steps before the episode is truncated
    fps: int  # control frequency, steps per second of simulated time
    description: str  # one line of plain text saying what success means

    def to_dict(self) -> dict:
        return asdict(self)
