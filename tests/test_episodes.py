"""The episode format: LeRobot compatibility, round-trip, checksums and damaged files."""
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from crossover.data.episodes import Episode, EpisodeDataset, EpisodeWriter
from crossover.data.inspect import inspect_dataset
from crossover.errors import CrossoverError


def _episode(task, n, rng, slot):
    return Episode(task, rng.normal(size=(n, 39)).astype(np.float32), rng.uniform(-1, 1, (n, 4)).astype(np.float32),
                   rng.normal(size=n).astype(np.float32), rng.random(n) > 0.5, np.zeros(n, bool),
                   np.arange(n) == n - 1, policy="noisy:0.1", seed=100 + slot, slot=slot)


def test_round_trip_preserves_every_field(tmp_path):
    rng = np.random.default_rng(0)
    eps = [_episode("reach-v3", 7, rng, 0), _episode("push-v3", 5, rng, 0), _episode("reach-v3", 9, rng, 1)]
    with EpisodeWriter(tmp_path, 39, 4, 80, "sawyer", {"reach-v3": "reach it"}) as w:
        for e in eps[:2]:
            w.add(e)
        w.flush()
        w.add(eps[2])
    ds = EpisodeDataset(tmp_path)
    assert ds.task_names == ["reach-v3", "push-v3"] and ds.num_frames == 21
    back = list(ds.iter_episodes())
    for a, b in zip(eps, back):
        assert a.task == b.task and a.policy == b.policy and a.seed == b.seed and a.slot == b.slot
        for k in ("obs", "action", "reward", "success", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    info = json.loads((tmp_path / "meta/info.json").read_text())
    assert info["total_episodes"] == 3 and info["total_frames"] == 21 and info["splits"] == {"train": "0:3"}
    stats = json.loads((tmp_path / "meta/stats.json").read_text())
    all_obs = np.concatenate([e.obs for e in eps])
    np.testing.assert_allclose(stats["observation.state"]["mean"], all_obs.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["std"], all_obs.std(0), rtol=1e-4, atol=1e-6)
    assert stats["action"]["count"] == [21]


def test_reads_lerobot_fixture(lerobot_fixture):
    ds = EpisodeDataset(lerobot_fixture)
    assert ds.task_names == ["reach-v3", "drawer-close-v3"]
    eps = list(ds.iter_episodes())
    assert [len(e) for e in eps] == [100] * 4 and eps[0].obs.shape == (100, 39)
    assert all(e.truncated[-1] and not e.terminated.any() for e in eps)
    assert ds.verify() == []


def test_the_fixture_is_a_copy_of_the_shared_one(lerobot_fixture, shared_lerobot_fixture):
    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert files(lerobot_fixture) == files(shared_lerobot_fixture)


def test_written_files_match_lerobot_layout(small_dataset, lerobot_fixture):
    ours_info = json.loads((small_dataset / "meta/info.json").read_text())
    ref_info = json.loads((lerobot_fixture / "meta/info.json").read_text())
    assert set(ref_info) <= set(ours_info)
    for name, feat in ref_info["features"].items():
        assert ours_info["features"][name] == feat, name
    for rel in ["data/chunk-000/file-000.parquet", "meta/tasks.parquet", "meta/episodes/chunk-000/file-000.parquet"]:
        ref = pq.read_schema(lerobot_fixture / rel)
        ours = pq.read_schema(small_dataset / rel)
        for f in ref:
            assert f.name in ours.names, f"{rel}: column {f.name} missing"
            assert ours.field(f.name).type == f.type, f"{rel}: column {f.name} is {ours.field(f.name).type}, LeRobot writes {f.type}"
    ref_stats = json.loads((lerobot_fixture / "meta/stats.json").read_text())
    ours_stats = json.loads((small_dataset / "meta/stats.json").read_text())
    assert set(ref_stats) <= set(ours_stats)
    assert set(ref_stats["action"]) == set(ours_stats["action"])


def test_checksum_mismatch_is_reported_by_name(small_dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    target = copy / "data/chunk-000/file-001.parquet"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(bytes(raw))
    summary = inspect_dataset(copy)
    assert not summary.ok
    assert any("file-001.parquet" in p and "checksum" in p for p in summary.problems)


def test_truncated_file_is_reported_by_name(small_dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    target = copy / "data/chunk-000/file-000.parquet"
    target.write_bytes(target.read_bytes()[:100])
    problems = EpisodeDataset(copy).verify()
    assert len(problems) == 1 and "file-000.parquet" in problems[0]


def test_missing_meta_is_a_clear_error(tmp_path):
    with pytest.raises(CrossoverError, match="meta/info.json"):
        EpisodeDataset(tmp_path)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_text("{not json")
    with pytest.raises(CrossoverError, match="info.json.*not valid JSON"):
        EpisodeDataset(tmp_path)


def test_second_writer_is_refused(tmp_path):
    with EpisodeWriter(tmp_path, 39, 4, 80, "sawyer"):
        with pytest.raises(CrossoverError, match="another process"):
            EpisodeWriter(tmp_path, 39, 4, 80, "sawyer")
