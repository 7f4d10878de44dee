"""Meta-World v3 (MuJoCo, Sawyer arm): its 50 tasks, its benchmark splits, environments and scripted experts.

Splits are read from Meta-World's own tables (`metaworld.env_dict`), so they stay what Meta-World defines
(Yu et al., "Meta-World", CoRL 2019; v3 as shipped in metaworld 3.1.1).
"""
from __future__ import annotations

import numpy as np

from crossover.tasks.spec import TaskSpec

SUITE = "metaworld"
EMBODIMENT = "sawyer"
OBS_DIM = 39
ACTION_DIM = 4
EPISODE_LENGTH = 500  # Meta-World's max_path_length; its own expert tests run episodes this long
FPS = 80  # frame_skip 5 x timestep 0.0025 s = 12.5 ms per step

# Our own one-line descriptions of what each task asks of the arm.
DESCRIPTIONS = {
    "assembly-v3": "pick up the nut and place it onto the peg",
    "basketball-v3": "pick up the ball and dunk it into the hoop",
    "bin-picking-v3": "pick the puck out of one bin and place it into the other",
    "box-close-v3": "grasp the lid and put it on the box",
    "button-press-topdown-v3": "press the button down from above",
    "button-press-topdown-wall-v3": "press the button down from above, reaching past a wall",
    "button-press-v3": "press the button in from the front",
    "button-press-wall-v3": "press the button in from the front, reaching past a wall",
    "coffee-button-v3": "push the button on the coffee machine",
    "coffee-pull-v3": "pull the mug away from the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "rotate the dial 180 degrees",
    "disassemble-v3": "pick the nut up off the peg",
    "door-close-v3": "push the door shut",
    "door-lock-v3": "turn the door's lock down",
    "door-open-v3": "pull the door open by its handle",
    "door-unlock-v3": "turn the door's lock up",
    "hand-insert-v3": "move the gripper into the hole",
    "drawer-close-v3": "push the drawer shut",
    "drawer-open-v3": "pull the drawer open",
    "faucet-open-v3": "rotate the faucet handle counter-clockwise",
    "faucet-close-v3": "rotate the faucet handle clockwise",
    "hammer-v3": "grasp the hammer and drive the nail in",
    "handle-press-side-v3": "press the handle down from the side",
    "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up from the side",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever up",
    "pick-place-wall-v3": "pick up the puck and place it at the goal behind a wall",
    "pick-out-of-hole-v3": "pick the peg up out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "plate-slide-v3": "slide the plate into the cabinet",
    "plate-slide-side-v3": "slide the plate sideways into the cabinet",
    "plate-slide-back-v3": "slide the plate back out of the cabinet",
    "plate-slide-back-side-v3": "slide the plate sideways back out of the cabinet",
    "peg-insert-side-v3": "insert the peg into the hole from the side",
    "peg-unplug-side-v3": "pull the peg out of the hole sideways",
    "soccer-v3": "kick the ball into the goal",
    "stick-push-v3": "grasp the stick and push the box with it",
    "stick-pull-v3": "grasp the stick and pull the box with it",
    "push-v3": "push the puck to the goal",
    "push-wall-v3": "push the puck to the goal around a wall",
    "push-back-v3": "pull the puck back to the goal",
    "reach-v3": "move the gripper to the goal position",
    "reach-wall-v3": "move the gripper to the goal position past a wall",
    "shelf-place-v3": "pick up the puck and place it on the shelf",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the table",
    "window-open-v3": "slide the window open",
    "window-close-v3": "slide the window shut",
}


def task_specs() -> list[TaskSpec]:
    """All 50 Meta-World v3 tasks, in Meta-World's own order."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return [
        TaskSpec(name, SUITE, EMBODIMENT, OBS_DIM, ACTION_DIM, EPISODE_LENGTH, FPS, DESCRIPTIONS[name])
        for name in ALL_V3_ENVIRONMENTS
    ]


def splits() -> dict[str, list[str]]:
    """Meta-World's named benchmark splits, as task-name lists."""
    from metaworld import env_dict as d

    return {
        "MT10": list(d.MT10_V3),
        "MT50": list(d.MT50_V3),
        "ML10-train": list(d.ML10_V3["train"]),
        "ML10-test": list(d.ML10_V3["test"]),
        "ML45-train": list(d.ML45_V3["train"]),
        "ML45-test": list(d.ML45_V3["test"]),
    }


class MetaWorldEnv:
    """One Meta-World task with the goal visible in the observation and a fresh random layout each reset.

    `reset(seed)` fixes object and goal positions from `seed`, so an episode is reproducible from its seed.
    Observations are float32. Meta-World never terminates an episode; it is truncated at `episode_length`.
    """

    def __init__(self, task: str, episode_length: int = EPISODE_LENGTH, render_mode: str | None = None):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        self.task = task
        self.episode_length = episode_length
        self._env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"](seed=0, render_mode=render_mode)
        # Sample a new layout at every reset from the env's own seeded generator (goal-observable envs
        # otherwise freeze the layout drawn at construction).
        self._env._freeze_rand_vec = False
        self._env.seeded_rand_vec = True
        self._env.max_path_length = episode_length
        self._t = 0

    def reset(self, seed: int) -> np.ndarray:
        self._env.seed(int(seed))
        obs, _ = self._env.reset()
        self._t = 0
        return obs.astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, bool]:
        """Returns (obs, reward, terminated, truncated, success)."""
        obs, reward, terminated, _, info = self._env.step(np.asarray(action, dtype=np.float32))
        self._t += 1
        truncated = self._t >= self.episode_length
        return obs.astype(np.float32), float(reward), bool(terminated), truncated, bool(info["success"] > 0.5)

    def render(self) -> np.ndarray:
        return self._env.render()

    def close(self) -> None:
        self._env.close()


def make_expert(task: str):
    """Meta-World's scripted expert for `task`: a callable obs -> action in [-1, 1]."""
    import warnings

    from metaworld.policies import ENV_POLICY_MAP

    policy = ENV_POLICY_MAP[task]()

    def act(obs: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():  # the experts warn on every clipped action; clipping is intended
            warnings.simplefilter("ignore")
            return np.clip(policy.get_action(obs.astype(np.float64)), -1.0, 1.0).astype(np.float32)

    return act
