"""Collecting real Meta-World episodes: experts succeed, seeds reproduce, and a killed run resumes exactly."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from crossover.cli import main
from crossover.data.collect import collect, parse_mix, parse_policy, plan
from crossover.data.episodes import EpisodeDataset
from crossover.data.inspect import inspect_dataset
from crossover.errors import CrossoverError
from crossover.tasks import resolve_tasks


def _episodes(root):
    return {(e.task, e.slot): e for e in EpisodeDataset(root).iter_episodes()}


def test_small_dataset_content(small_dataset):
    summary = inspect_dataset(small_dataset)
    assert summary.ok and summary.episodes == 8 and summary.frames == 8 * 100
    by = {(g.task, g.policy): g for g in summary.groups}
    assert by[("reach-v3", "expert")].success_rate == 1.0  # the reach expert succeeds within 100 steps
    assert by[("reach-v3", "random")].episodes == 2


def test_same_seed_same_episodes_with_any_worker_count(tmp_path):
    tasks = resolve_tasks("reach-v3,push-v3")
    quiet = lambda _: None  # noqa: E731
    collect(tasks, 3, tmp_path / "a", mix="noisy:0.5:0.5,random:0.5", episode_length=30, progress=quiet)
    collect(tasks, 3, tmp_path / "b", mix="noisy:0.5:0.5,random:0.5", episode_length=30, workers=2, flush_every=2,
            progress=quiet)
    collect(tasks, 3, tmp_path / "c", mix="noisy:0.5:0.5,random:0.5", episode_length=30, seed=1, progress=quiet)
    a, b, c = _episodes(tmp_path / "a"), _episodes(tmp_path / "b"), _episodes(tmp_path / "c")
    assert a.keys() == b.keys() and len(a) == 6
    for k in a:
        np.testing.assert_array_equal(a[k].obs, b[k].obs)
        np.testing.assert_array_equal(a[k].action, b[k].action)
    assert not np.array_equal(a[("reach-v3", 0)].obs, c[("reach-v3", 0)].obs)


def test_resume_after_sigkill_gives_exact_dataset(tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "crossover.cli", "collect", "--tasks", "reach-v3,drawer-close-v3", "--episodes", "12",
           "--episode-length", "100", "--flush-every", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("data/chunk-000/*.parquet"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = EpisodeDataset(out)
    assert 0 < len(partial.episodes) < 24, "the kill should land midway"
    assert main(cmd[3:]) == 0
    resumed = _episodes(out)
    assert len(EpisodeDataset(out).episodes) == 24 and len(resumed) == 24  # exactly the plan, no duplicates
    assert inspect_dataset(out).ok
    collect(resolve_tasks("reach-v3,drawer-close-v3"), 12, tmp_path / "clean", episode_length=100,
            progress=lambda _: None)
    clean = _episodes(tmp_path / "clean")
    for k in clean:
        np.testing.assert_array_equal(clean[k].obs, resumed[k].obs)


def test_policy_and_mix_parsing():
    assert parse_policy("noisy:0.3").name == "noisy:0.3"
    mix = parse_mix("expert:0.5,noisy:0.3:0.3,random:0.2")
    assert [p.name for p, _ in mix] == ["expert", "noisy:0.3", "random"]
    jobs = plan(resolve_tasks("reach-v3"), 10, mix, seed=0)
    assert [j.policy.name for j in jobs].count("expert") == 5 and len({j.seed for j in jobs}) == 10
    for bad in ["noisy", "noisy:-1", "greedy", "expert:0.5", "expert:x"]:
        with pytest.raises(CrossoverError):
            parse_mix(bad) if ":" in bad and bad.startswith("expert") else parse_policy(bad)


def test_resume_with_other_seed_is_refused(small_dataset):
    with pytest.raises(CrossoverError, match="seed 0"):
        collect(resolve_tasks("reach-v3"), 1, small_dataset, seed=5, episode_length=100, progress=lambda _: None)
