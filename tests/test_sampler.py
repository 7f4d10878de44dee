import dataclasses

import numpy as np
import pytest

from crossover.data.episodes import EpisodeDataset
from crossover.data.sampler import TrajectoryBuffer
from crossover.errors import CrossoverError


def test_shapes_masks_and_alignment(small_dataset):
    ds = EpisodeDataset(small_dataset)
    buf = TrajectoryBuffer(["reach-v3", "drawer-close-v3", "other"], obs_dim=42, action_dim=6)
    assert buf.add_dataset(ds, horizon=3) == 8
    assert len(buf) == 8 * 99  # LeRobot files have no final observation: one transition per episode is lost
    b = buf.sample(64, 3, np.random.default_rng(0))
    assert b.obs.shape == (4, 64, 42) and b.action.shape == (3, 64, 6) and b.reward.shape == (3, 64)
    assert b.task.shape == (64,) and set(b.task) <= {0, 1}
    assert (b.obs_mask[:, :39] == 1).all() and (b.obs_mask[:, 39:] == 0).all() and (b.obs[..., 39:] == 0).all()
    assert (b.action_mask[:, :4] == 1).all() and (b.action_mask[:, 4:] == 0).all() and (b.action[..., 4:] == 0).all()
    # Every window is consecutive rows of one episode: obs[t+1] is what followed obs[t] in the file, and the
    # window ends inside the episode.
    episodes = list(ds.iter_episodes())
    where = {row.tobytes(): (i, k) for i, ep in enumerate(episodes) for k, row in enumerate(ep.obs)}
    assert len(where) == sum(len(ep) for ep in episodes)  # every observation is unique, so it names its place
    b = buf.sample(2000, 3, np.random.default_rng(1))  # enough windows to include ones at episode ends
    for j in range(2000):
        i, k = where[b.obs[0, j, :39].tobytes()]
        ep = episodes[i]
        assert k + 3 < len(ep), "the window runs past its episode's last observation"
        np.testing.assert_array_equal(b.obs[:, j, :39], ep.obs[k:k + 4])
        np.testing.assert_array_equal(b.action[:, j, :4], ep.action[k:k + 3])
        np.testing.assert_array_equal(b.reward[:, j], ep.reward[k:k + 3])


def test_tasks_are_sampled_uniformly_not_by_transitions(small_dataset):
    buf = TrajectoryBuffer(["reach-v3", "drawer-close-v3"], 39, 4)
    eps = list(EpisodeDataset(small_dataset).iter_episodes())
    for e in eps:
        if e.task == "reach-v3" or e.slot == 0:  # drawer-close gets 1 episode, reach-v3 gets 4
            buf.add_episode(e, 3)
    counts = np.bincount(buf.sample(20000, 3, np.random.default_rng(1)).task, minlength=2)
    assert abs(counts[0] / counts.sum() - 0.5) < 0.02


def test_a_slice_of_episodes_keeps_windows_to_those_episodes(small_dataset):
    # Online adaptation keeps its demonstrations first in the buffer and oversamples them this way.
    eps = [e for e in EpisodeDataset(small_dataset).iter_episodes() if e.task == "reach-v3"]
    buf = TrajectoryBuffer(["drawer-close-v3", "reach-v3"], 39, 4)
    for e in eps:
        buf.add_episode(e, 3)
    for part in (slice(0, 2), slice(2, None), slice(1, 3)):
        allowed = {row.tobytes() for e in eps[part] for row in e.obs}
        b = buf.sample(3000, 3, np.random.default_rng(0), episodes=part)
        assert all(b.obs[t, j].tobytes() in allowed for t in range(4) for j in range(3000))
        assert len({b.obs[0, j].tobytes() for j in range(3000)}) == 2 * (len(eps[0]) - 3)  # all of their windows
    # A slice past the buffer's end is what it holds; the same seed then gives what plain sampling gives.
    np.testing.assert_array_equal(buf.sample(50, 3, np.random.default_rng(1), episodes=slice(0, 99)).obs,
                                  buf.sample(50, 3, np.random.default_rng(1)).obs)
    with pytest.raises(CrossoverError, match="among episodes 4..end"):
        buf.sample(1, 3, np.random.default_rng(0), episodes=slice(4, None))
    # An episode too short for a window still counts in the numbering, and adds no window.
    e = eps[0]
    short = dataclasses.replace(e, obs=e.obs[:2], action=e.action[:2], reward=e.reward[:2], success=e.success[:2],
                                terminated=e.terminated[:2], truncated=e.truncated[:2])
    buf.add_episode(short, 3)
    buf.add_episode(eps[3], 3)
    with pytest.raises(CrossoverError, match="among episodes 4..5"):
        buf.sample(1, 3, np.random.default_rng(0), episodes=slice(4, 5))
    b = buf.sample(500, 3, np.random.default_rng(0), episodes=slice(4, None))
    assert {b.obs[0, j].tobytes() for j in range(500)} <= {row.tobytes() for row in eps[3].obs}
    with pytest.raises(CrossoverError, match="slice of episode numbers"):
        buf.sample(1, 3, np.random.default_rng(0), episodes=slice(-1, None))


def test_online_episode_with_final_obs_and_errors(small_dataset):
    ep = next(EpisodeDataset(small_dataset).iter_episodes())
    ep.final_obs = ep.obs[-1] + 1
    buf = TrajectoryBuffer([ep.task], 39, 4, capacity=350)
    buf.add_episode(ep, 5)
    assert len(buf) == 100
    with pytest.raises(CrossoverError, match="buffer full"):
        for _ in range(5):
            buf.add_episode(ep, 5)
    with pytest.raises(CrossoverError, match="no episode"):
        TrajectoryBuffer(["x"], 39, 4).sample(1, 3, np.random.default_rng(0))
    with pytest.raises(CrossoverError, match="windows of 6 actions"):
        buf.sample(1, 6, np.random.default_rng(0))


def test_holds_a_million_transitions():
    buf = TrajectoryBuffer(["reach-v3"], 39, 4, capacity=1_050_000)
    assert buf._obs.nbytes + buf._action.nbytes < 250e6  # ~180 MB: comfortable in 24 GiB
