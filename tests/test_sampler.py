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
    # the window is consecutive rows of one episode: obs[t+1] is what followed obs[t] in the file
    ep = next(ds.iter_episodes(["reach-v3"]))
    first = np.flatnonzero((b.obs[0, :, :39] == ep.obs[0]).all(1))
    if len(first):
        np.testing.assert_array_equal(b.obs[1, first[0], :39], ep.obs[1])
        np.testing.assert_array_equal(b.action[0, first[0], :4], ep.action[0])


def test_tasks_are_sampled_uniformly_not_by_transitions(small_dataset):
    buf = TrajectoryBuffer(["reach-v3", "drawer-close-v3"], 39, 4)
    eps = list(EpisodeDataset(small_dataset).iter_episodes())
    for e in eps:
        if e.task == "reach-v3" or e.slot == 0:  # drawer-close gets 1 episode, reach-v3 gets 4
            buf.add_episode(e, 3)
    counts = np.bincount(buf.sample(20000, 3, np.random.default_rng(1)).task, minlength=2)
    assert abs(counts[0] / counts.sum() - 0.5) < 0.02


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


def test_holds_a_million_transitions():
    buf = TrajectoryBuffer(["reach-v3"], 39, 4, capacity=1_050_000)
    assert buf._obs.nbytes + buf._action.nbytes < 250e6  # ~180 MB: comfortable in 24 GiB
