"""Collecting real Meta-World episodes: experts succeed, seeds reproduce, and a killed run resumes exactly."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from crossover.cli import main
from crossover.data.collect import check_prefix_holds_mix, collect, parse_mix, parse_policy, plan, slot_policies
from crossover.data.episodes import EpisodeDataset, EpisodeWriter
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
    for bad in ["noisy", "noisy:-1", "noisy:nan", "greedy", "expert:0.5", "expert:x", "expert:nan,random:1"]:
        with pytest.raises(CrossoverError):
            parse_mix(bad) if ":" in bad and bad.startswith("expert") else parse_policy(bad)
    for bad in [dict(episode_length=-5), dict(seed=-1)]:
        with pytest.raises(CrossoverError, match="episode-length|seed"):
            collect(resolve_tasks("reach-v3"), 1, "/nonexistent/never-made", **bad, progress=lambda _: None)


def test_every_prefix_of_a_tasks_slots_holds_the_mix():
    # Extending a dataset, or pretraining on its first n episodes per task, keeps the policy mix.
    mix = parse_mix("expert:0.5,noisy:0.3:0.3,random:0.2")
    policies = [p.name for p in slot_policies(mix, 50)]
    for n in range(1, 51):
        assert slot_policies(mix, n) == slot_policies(mix, 50)[:n]
        for p, f in mix:
            assert abs(policies[:n].count(p.name) - f * n) < 1, (n, p.name)
    assert [policies[:10].count(k) for k in ("expert", "noisy:0.3", "random")] == [5, 3, 2]


def test_extending_a_mixed_dataset_gives_the_episodes_of_collecting_it_whole(tmp_path):
    tasks, quiet = resolve_tasks("reach-v3"), (lambda _: None)
    args = dict(mix="expert:0.5,random:0.5", episode_length=20, progress=quiet)
    collect(tasks, 2, tmp_path / "grown", **args)
    collect(tasks, 4, tmp_path / "grown", **args)
    collect(tasks, 4, tmp_path / "whole", **args)
    grown, whole = _episodes(tmp_path / "grown"), _episodes(tmp_path / "whole")
    assert [grown[k].policy for k in sorted(grown)] == [whole[k].policy for k in sorted(whole)] \
        == ["expert", "random", "expert", "random"]
    for k in whole:
        np.testing.assert_array_equal(grown[k].obs, whole[k].obs)
    with pytest.raises(CrossoverError, match="mix expert:0.5,random:0.5"):
        collect(tasks, 4, tmp_path / "grown", mix="expert:0.75,random:0.25", episode_length=20, progress=quiet)
    # A dataset of the first version filled its slots in blocks (expert, expert, random, random): not added to.
    info_file = tmp_path / "whole/meta/info.json"
    info = json.loads(info_file.read_text())
    del info["crossover"]["extra"]["collect"]["slot_order"]
    info_file.write_text(json.dumps(info))
    with pytest.raises(CrossoverError, match="slot order blocks"):
        collect(tasks, 6, tmp_path / "whole", **args)
    # ...and pretraining on its first 2 episodes per task (all expert, in that order) is refused; all 4 are fine.
    with pytest.raises(CrossoverError, match="first 2 episodes per task are not its policy mix"):
        check_prefix_holds_mix(EpisodeDataset(tmp_path / "whole"), 2)
    check_prefix_holds_mix(EpisodeDataset(tmp_path / "whole"), 4)


def test_a_dataset_another_tool_wrote_is_refused_untouched(lerobot_fixture, tmp_path):
    theirs = tmp_path / "theirs"
    shutil.copytree(lerobot_fixture, theirs)
    before = sorted(p.relative_to(theirs) for p in theirs.rglob("*"))
    with pytest.raises(CrossoverError, match="another tool"):
        collect(resolve_tasks("reach-v3"), 1, theirs, episode_length=20, progress=lambda _: None)
    assert sorted(p.relative_to(theirs) for p in theirs.rglob("*")) == before
    # ...and one of its data files without a column an episode needs is named, not a KeyError.
    data_file = next(theirs.glob("data/chunk-*/*.parquet"))
    pq.write_table(pq.read_table(data_file).drop_columns(["next.success"]), data_file)
    with pytest.raises(CrossoverError, match=r"file-000.parquet: no column 'next.success'"):
        next(EpisodeDataset(theirs).iter_episodes())


def test_reopening_a_dataset_rebuilds_metadata_a_killed_writer_left_behind(tmp_path):
    out, quiet = tmp_path / "ds", (lambda _: None)
    collect(resolve_tasks("reach-v3"), 1, out, episode_length=20, progress=quiet)
    stale = {name: (out / "meta" / name).read_bytes() for name in ("tasks.parquet", "info.json")}
    collect(resolve_tasks("reach-v3,push-v3"), 1, out, episode_length=20, progress=quiet)
    for name, data in stale.items():  # as if killed after the episode rows were committed
        (out / "meta" / name).write_bytes(data)
    assert EpisodeDataset(out).task_names == ["reach-v3"]
    collect(resolve_tasks("reach-v3,push-v3"), 1, out, episode_length=20, progress=quiet)  # nothing left to collect
    ds = EpisodeDataset(out)
    assert ds.task_names == ["reach-v3", "push-v3"] and ds.info["total_episodes"] == 2
    # Tasks written ahead of episode rows that were never committed are dropped on reopening.
    alone = tmp_path / "alone"
    collect(resolve_tasks("reach-v3"), 1, alone, episode_length=20, progress=quiet)
    shutil.copy(out / "meta" / "tasks.parquet", alone / "meta" / "tasks.parquet")
    assert EpisodeDataset(alone).task_names == ["reach-v3", "push-v3"]
    collect(resolve_tasks("reach-v3"), 1, alone, episode_length=20, progress=quiet)
    assert EpisodeDataset(alone).task_names == ["reach-v3"]
    # A writer that fails to open (other sizes) lets the dataset go at once.
    with pytest.raises(CrossoverError, match="shape"):
        EpisodeWriter(alone, 42, 4, 80, "sawyer")
    EpisodeWriter(alone, 39, 4, 80, "sawyer").close()


def test_resume_with_other_seed_is_refused(small_dataset):
    with pytest.raises(CrossoverError, match="seed 0"):
        collect(resolve_tasks("reach-v3"), 1, small_dataset, seed=5, episode_length=100, progress=lambda _: None)


def test_adding_to_a_damaged_dataset_is_refused(small_dataset, tmp_path):
    # Its slots count as written, so collecting again would add nothing and say all was well.
    copy = tmp_path / "small"
    shutil.copytree(small_dataset, copy)
    damaged = sorted(copy.glob("data/chunk-*/*.parquet"))[0]
    damaged.write_bytes(b"")
    with pytest.raises(CrossoverError, match=rf"{re.escape(str(damaged))}: checksum mismatch.*crossover inspect"):
        collect(resolve_tasks("reach-v3,drawer-close-v3"), 4, copy, mix="expert:0.5,random:0.5", episode_length=100,
                progress=lambda _: None)
    assert damaged.stat().st_size == 0  # refused before anything in it was touched
