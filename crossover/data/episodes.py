"""The on-disk episode format: a LeRobot v3.0 dataset (parquet + meta/), written atomically, with checksums.

Layout (the same files LeRobot writes, see ../shared/fixtures/lerobot-v3.0-metaworld):
  data/chunk-XXX/file-YYY.parquet           one row per frame, many episodes per file
  meta/episodes/chunk-000/file-000.parquet  one row per episode: task, length, frame range, data file, stats
  meta/tasks.parquet                        task index <-> task name (the pandas index, as LeRobot reads it)
  meta/stats.json, meta/info.json           dataset statistics and features; our own fields under "crossover"

The episodes table is the commit point: a data file counts only once an episodes row points at it, so a run
killed at any moment leaves a readable dataset, and the next writer deletes files nothing points at.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crossover.atomic import write_atomic, write_json_atomic
from crossover.errors import CrossoverError

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder, as LeRobot
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
FRAME_COLUMNS = ("index", "observation.state", "action", "next.reward", "next.done", "next.success")  # read per frame
OURS = "crossover"  # key / column prefix for fields LeRobot does not define


@dataclass
class Episode:
    """One episode in memory. Row t holds the observation o_t, the action a_t taken in it, and what followed."""

    task: str
    obs: np.ndarray  # [T, obs_dim] float32
    action: np.ndarray  # [T, action_dim] float32
    reward: np.ndarray  # [T] float32, reward after action t
    success: np.ndarray  # [T] bool, success after action t
    terminated: np.ndarray  # [T] bool
    truncated: np.ndarray  # [T] bool
    policy: str = "unknown"  # what produced it: "expert", "noisy:0.3", "random", "agent", ...
    seed: int = -1  # the reset seed, so the episode can be replayed
    slot: int = -1  # position in the collection plan, used to resume without duplicates
    final_obs: np.ndarray | None = field(default=None, repr=False)  # o_T, not stored on disk (LeRobot has no row for it)

    def __len__(self) -> int:
        return len(self.action)


def _features(obs_dim: int, action_dim: int) -> dict:
    scalar = lambda dtype: {"dtype": dtype, "shape": [1], "names": None}  # noqa: E731
    return {
        "observation.state": {"dtype": "float32", "shape": [obs_dim], "names": None},
        "action": {"dtype": "float32", "shape": [action_dim], "names": None},
        "next.reward": scalar("float32"),
        "next.success": scalar("bool"),
        "next.done": scalar("bool"),
        "next.terminated": scalar("bool"),
        "next.truncated": scalar("bool"),
        "timestamp": scalar("float32"),
        "frame_index": scalar("int64"),
        "episode_index": scalar("int64"),
        "index": scalar("int64"),
        "task_index": scalar("int64"),
    }


def _hf_schema_metadata(features: dict) -> bytes:
    """The `huggingface` schema note LeRobot's files carry, so `datasets` sees the same feature types."""
    hf = {}
    for name, f in features.items():
        value = {"dtype": f["dtype"], "_type": "Value"}
        hf[name] = {"feature": value, "length": f["shape"][0], "_type": "List"} if f["shape"][0] > 1 or name in (
            "observation.state", "action") else value
    return json.dumps({"info": {"features": hf}}).encode()


def _episode_table(ep: Episode, episode_index: int, first_index: int, task_index: int, fps: int) -> pa.Table:
    n = len(ep)
    obs_dim, act_dim = ep.obs.shape[1], ep.action.shape[1]
    frame = np.arange(n, dtype=np.int64)
    return pa.table({
        "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(ep.obs.astype(np.float32).ravel()), obs_dim),
        "action": pa.FixedSizeListArray.from_arrays(pa.array(ep.action.astype(np.float32).ravel()), act_dim),
        "next.reward": pa.array(ep.reward.astype(np.float32)),
        "next.success": pa.array(ep.success.astype(bool)),
        "next.done": pa.array((ep.terminated | ep.truncated).astype(bool)),
        "next.terminated": pa.array(ep.terminated.astype(bool)),
        "next.truncated": pa.array(ep.truncated.astype(bool)),
        "timestamp": pa.array((frame / fps).astype(np.float32)),
        "frame_index": pa.array(frame),
        "episode_index": pa.array(np.full(n, episode_index, dtype=np.int64)),
        "index": pa.array(first_index + frame),
        "task_index": pa.array(np.full(n, task_index, dtype=np.int64)),
    })


def _column_stats(x: np.ndarray) -> dict[str, list]:
    """min/max/mean/std/count and quantiles over axis 0, in the list-per-stat shape LeRobot writes."""
    x2 = x.reshape(len(x), -1)
    xf = x2.astype(np.float64)
    keep = (lambda v: v.tolist()) if x2.dtype == bool else (lambda v: v.astype(x2.dtype).tolist())
    out = {"min": keep(x2.min(0)), "max": keep(x2.max(0)), "mean": xf.mean(0).tolist(), "std": xf.std(0).tolist(),
           "count": [len(x2)]}
    for q, v in zip(QUANTILES, np.quantile(xf, QUANTILES, axis=0)):
        out[f"q{round(q * 100):02d}"] = v.tolist()
    return out


def _aggregate_stats(per_episode: list[dict[str, dict[str, list]]]) -> dict:
    """Dataset statistics from per-episode ones: exact mean/std/min/max; quantiles count-weighted (as LeRobot)."""
    out = {}
    for name in per_episode[0]:
        eps = [s[name] for s in per_episode]
        n = np.array([e["count"][0] for e in eps], dtype=np.float64)[:, None]
        mean = np.array([e["mean"] for e in eps])
        var = np.array([e["std"] for e in eps]) ** 2
        total_mean = (n * mean).sum(0) / n.sum()
        total_var = (n * (var + (mean - total_mean) ** 2)).sum(0) / n.sum()
        mins, maxs = np.array([e["min"] for e in eps]), np.array([e["max"] for e in eps])
        agg = {"min": mins.min(0).tolist(), "max": maxs.max(0).tolist(), "mean": total_mean.tolist(),
               "std": np.sqrt(total_var).tolist(), "count": [int(n.sum())]}
        for key in eps[0]:
            if key.startswith("q"):
                agg[key] = ((n * np.array([e[key] for e in eps])).sum(0) / n.sum()).tolist()
        out[name] = agg
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class EpisodeWriter:
    """Appends episodes to a dataset folder (new or existing). One writer per folder at a time (a lock file).

    `add` buffers; `flush` writes the buffered episodes as one new data file and commits them. On opening an
    existing folder, files left by a killed writer that no episode row points at are removed, and the metadata is
    rebuilt from the episode rows. Only datasets Crossover wrote are opened: another tool's (LeRobot's, say) is
    refused before anything in it is touched.
    """

    def __init__(self, root: str | Path, obs_dim: int, action_dim: int, fps: int, robot_type: str,
                 descriptions: dict[str, str] | None = None, extra: dict | None = None):
        self.root = Path(root)
        _refuse_foreign(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.root / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CrossoverError(f"{self.root}: another process is writing this dataset; wait for it or use another --out")
        try:
            self._open(obs_dim, action_dim, fps, robot_type, descriptions, extra)
        except BaseException:
            self._lock.close()  # a writer that failed to open lets the dataset go at once
            raise

    def _open(self, obs_dim: int, action_dim: int, fps: int, robot_type: str, descriptions: dict[str, str] | None,
              extra: dict | None) -> None:
        self.fps, self.robot_type = fps, robot_type
        self.features = _features(obs_dim, action_dim)
        self.descriptions = dict(descriptions or {})
        self._buffer: list[Episode] = []
        self.extra = dict(extra or {})  # our own facts about the dataset, kept in info.json under "crossover"
        if (self.root / EPISODES_PATH).exists():
            ds = EpisodeDataset(self.root)
            for name in ("observation.state", "action"):
                if ds.features[name]["shape"] != self.features[name]["shape"]:
                    raise CrossoverError(f"{ds.root / 'meta/info.json'}: {name} has shape {ds.features[name]['shape']}, "
                                         f"this run writes {self.features[name]['shape']}; use another --out")
            problems = ds.verify()  # the slots of damaged files count as written: adding to them would hide that
            if problems:
                more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
                raise CrossoverError(f"{problems[0]}{more}; this dataset cannot be added to: `crossover inspect "
                                     f"{self.root}` lists what is damaged; collect into another --out")
            self.rows = ds.episodes
            # The tasks of the committed rows, in the order they were first written (their task_index): a
            # tasks.parquet written ahead of rows that were never committed names tasks that have none (at its
            # end), one of the first version (written after the rows) may miss the last.
            in_rows = list(dict.fromkeys(r["tasks"][0] for r in self.rows))
            self.tasks = [t for t in ds.task_names if t in in_rows] + [t for t in in_rows if t not in ds.task_names]
            self.descriptions = {**ds.descriptions, **self.descriptions}
            self.extra = {**ds.info.get(OURS, {}).get("extra", {}), **self.extra}
        else:
            self.rows, self.tasks = [], []
        self._remove_uncommitted()
        if self.rows:  # a writer killed while writing the metadata left some of it behind the episode rows
            self._write_meta()

    def _remove_uncommitted(self) -> None:
        used = {self.root / r["data_path"] for r in self.rows}
        for f in self.root.glob("data/chunk-*/*.parquet"):
            if f not in used:
                f.unlink()
        for f in self.root.rglob(".*.tmp"):
            f.unlink()

    @property
    def committed_slots(self) -> set[tuple[str, int]]:
        return {(r["tasks"][0], r[f"{OURS}/slot"]) for r in self.rows}

    def add(self, ep: Episode) -> None:
        self._buffer.append(ep)

    def flush(self) -> None:
        if not self._buffer:
            return
        file_number = max((r["data/chunk_index"] * CHUNKS_SIZE + r["data/file_index"] for r in self.rows), default=-1) + 1
        chunk, file = divmod(file_number, CHUNKS_SIZE)
        rel = DATA_PATH.format(chunk_index=chunk, file_index=file)
        next_episode = len(self.rows)
        next_index = self.rows[-1]["dataset_to_index"] if self.rows else 0
        tables, new_rows = [], []
        for ep in self._buffer:
            if ep.task not in self.tasks:
                self.tasks.append(ep.task)
            table = _episode_table(ep, next_episode, next_index, self.tasks.index(ep.task), self.fps)
            tables.append(table)
            stats = {name: _column_stats(_column_numpy(table, name)) for name in self.features}
            new_rows.append({
                "episode_index": next_episode, "tasks": [ep.task], "length": len(ep),
                "data/chunk_index": chunk, "data/file_index": file,
                "dataset_from_index": next_index, "dataset_to_index": next_index + len(ep),
                "stats": stats, "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                f"{OURS}/policy": ep.policy, f"{OURS}/seed": int(ep.seed), f"{OURS}/slot": int(ep.slot),
                f"{OURS}/success": bool(ep.success.any()), "data_path": rel,
            })
            next_episode += 1
            next_index += len(ep)
        data = pa.concat_tables(tables)
        data = data.replace_schema_metadata({b"huggingface": _hf_schema_metadata(self.features)})
        write_atomic(self.root / rel, lambda p: pq.write_table(data, p, compression="snappy"))
        digest = _sha256(self.root / rel)
        for r in new_rows:
            r[f"{OURS}/data_sha256"] = digest
        self.rows = self.rows + new_rows
        self._buffer = []
        self._write_meta()

    def _write_meta(self) -> None:
        """Tasks, stats and info first, the episode rows last: the rows are the commit point, and a writer that
        reopens the folder rebuilds the rest from them."""
        meta = self.root / "meta"
        write_atomic(meta / "tasks.parquet", lambda p: pq.write_table(_tasks_table(self.tasks, self.descriptions), p))
        write_json_atomic(meta / "stats.json", _aggregate_stats([r["stats"] for r in self.rows]))
        total = self.rows[-1]["dataset_to_index"]
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": self.robot_type,
            "total_episodes": len(self.rows), "total_frames": total, "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
            "fps": self.fps, "splits": {"train": f"0:{len(self.rows)}"}, "data_path": DATA_PATH,
            "video_path": None, "features": self.features,
            OURS: {"format": 1, "extra": self.extra, "descriptions": {t: self.descriptions.get(t, "") for t in self.tasks},
                   "note": "per-episode policy, seed, plan slot and data-file sha256 are columns "
                           "'crossover/*' of meta/episodes"},
        }
        write_json_atomic(meta / "info.json", info)
        write_atomic(self.root / EPISODES_PATH, lambda p: pq.write_table(_episodes_table(self.rows), p))

    def close(self) -> None:
        self.flush()
        self._lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:  # keep what was committed; drop the unflushed buffer
            self._lock.close()


def _refuse_foreign(root: Path) -> None:
    info = root / "meta" / "info.json"
    if not info.exists():
        return
    try:
        ours = OURS in json.loads(info.read_text())
    except (OSError, ValueError) as e:
        raise CrossoverError(f"{info}: cannot be read ({e}); choose another --out") from None
    if not ours:
        raise CrossoverError(f"{root}: holds a dataset another tool wrote (no '{OURS}' section in meta/info.json); "
                             f"Crossover adds episodes only to its own datasets, so choose another --out")


def _column_numpy(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name).combine_chunks()
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
        width = col.type.list_size if pa.types.is_fixed_size_list(col.type) else None
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(col), width or -1)
    return col.to_numpy(zero_copy_only=False)


def _episodes_table(rows: list[dict]) -> pa.Table:
    cols: dict[str, list] = {}
    for r in rows:
        flat = {k: v for k, v in r.items() if k not in ("stats", "data_path")}
        for name, stats in r["stats"].items():
            for stat, v in stats.items():
                flat[f"stats/{name}/{stat}"] = v
        for k, v in flat.items():
            cols.setdefault(k, []).append(v)
    return pa.table(cols)


def _tasks_table(tasks: list[str], descriptions: dict[str, str]) -> pa.Table:
    # LeRobot reads this with pandas and expects the task string as the index; the pandas note makes it so.
    pandas_note = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
            {"name": "description", "field_name": "description", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.0",
    }
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "description": pa.array([descriptions.get(t, "") for t in tasks], pa.large_string()),
                      "__index_level_0__": pa.array(tasks, pa.large_string())})
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_note).encode()})


class EpisodeDataset:
    """Reads a LeRobot v3.0 dataset folder (ours or LeRobot's own): metadata eagerly, frames on demand."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info_path = self.root / "meta/info.json"
        if not info_path.exists():
            raise CrossoverError(f"{self.root}: not a dataset (no meta/info.json); create one with `crossover collect`")
        try:
            self.info = json.loads(info_path.read_text())
        except json.JSONDecodeError as e:
            raise CrossoverError(f"{info_path}: not valid JSON ({e.msg} at line {e.lineno})")
        for key in ("features", "fps", "data_path"):
            if key not in self.info:
                raise CrossoverError(f"{info_path}: missing field {key!r}")
        self.features: dict = self.info["features"]
        self.fps: int = self.info["fps"]
        tasks = _read_parquet(self.root / "meta/tasks.parquet")
        name_column = next((c for c in ("__index_level_0__", "task") if c in tasks.column_names), None)
        if name_column is None or "task_index" not in tasks.column_names:
            raise CrossoverError(f"{self.root / 'meta/tasks.parquet'}: needs columns task_index and the task names "
                                 f"(as the pandas index or a 'task' column); has {', '.join(tasks.column_names)}")
        names = tasks.column(name_column).to_pylist()
        order = tasks.column("task_index").to_pylist()
        self.task_names: list[str] = [n for _, n in sorted(zip(order, names))]
        self.descriptions: dict[str, str] = dict(self.info.get(OURS, {}).get("descriptions", {}))
        self.episodes: list[dict] = []
        files = sorted((self.root / "meta/episodes").glob("chunk-*/file-*.parquet"))
        if not files:
            raise CrossoverError(f"{self.root}: no meta/episodes/chunk-*/file-*.parquet; the dataset is incomplete")
        for f in files:
            self.episodes.extend(_episode_rows(_read_parquet(f), self.info["data_path"]))
        self.episodes.sort(key=lambda r: r["episode_index"])

    @property
    def obs_dim(self) -> int:
        return self.features["observation.state"]["shape"][0]

    @property
    def action_dim(self) -> int:
        return self.features["action"]["shape"][0]

    @property
    def num_frames(self) -> int:
        return sum(r["length"] for r in self.episodes)

    def data_files(self) -> list[str]:
        return list(dict.fromkeys(r["data_path"] for r in self.episodes))

    def iter_episodes(self, tasks: list[str] | None = None):
        """Yield Episode objects, reading one data file at a time."""
        wanted = set(tasks) if tasks is not None else None
        by_file: dict[str, list[dict]] = {}
        for r in self.episodes:
            if wanted is None or r["tasks"][0] in wanted:
                by_file.setdefault(r["data_path"], []).append(r)
        for rel, rows in by_file.items():
            table = _read_parquet(self.root / rel)
            missing = [c for c in FRAME_COLUMNS if c not in table.column_names]
            if missing:
                raise CrossoverError(f"{self.root / rel}: no column {missing[0]!r}; an episode needs "
                                     f"{', '.join(FRAME_COLUMNS)}")
            cols = {name: _column_numpy(table, name) for name in table.column_names}
            first = int(cols["index"][0])
            for r in rows:
                lo, hi = r["dataset_from_index"] - first, r["dataset_to_index"] - first
                if lo < 0 or hi > len(table):
                    raise CrossoverError(f"{self.root / rel}: episode {r['episode_index']} rows {lo}:{hi} are not in the file")
                done = cols["next.done"][lo:hi].astype(bool)
                term = cols["next.terminated"][lo:hi].astype(bool) if "next.terminated" in cols else np.zeros_like(done)
                trunc = cols["next.truncated"][lo:hi].astype(bool) if "next.truncated" in cols else done & ~term
                yield Episode(
                    task=r["tasks"][0], obs=cols["observation.state"][lo:hi].astype(np.float32),
                    action=cols["action"][lo:hi].astype(np.float32), reward=cols["next.reward"][lo:hi].astype(np.float32),
                    success=cols["next.success"][lo:hi].astype(bool), terminated=term, truncated=trunc,
                    policy=r.get(f"{OURS}/policy") or "unknown", seed=r.get(f"{OURS}/seed", -1),
                    slot=r.get(f"{OURS}/slot", -1))

    def verify(self) -> list[str]:
        """Problems found, one line each naming the file: missing, unreadable, or checksum mismatch."""
        problems = []
        for rel in self.data_files():
            path = self.root / rel
            expected = {r.get(f"{OURS}/data_sha256") for r in self.episodes if r["data_path"] == rel} - {None}
            if not path.exists():
                problems.append(f"{path}: missing")
                continue
            if expected and _sha256(path) not in expected:
                problems.append(f"{path}: checksum mismatch (expected sha256 {sorted(expected)[0][:12]}...); "
                                f"the file was changed or truncated after it was written")
                continue
            try:
                n = pq.ParquetFile(path).metadata.num_rows
            except Exception as e:  # pyarrow raises several types for damaged files
                problems.append(f"{path}: unreadable parquet ({e})")
                continue
            need = sum(r["length"] for r in self.episodes if r["data_path"] == rel)
            if n < need:
                problems.append(f"{path}: has {n} rows, its episodes need {need}")
        return problems


def _read_parquet(path: Path) -> pa.Table:
    if not path.exists():
        raise CrossoverError(f"{path}: missing")
    try:
        return pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for damaged files
        raise CrossoverError(f"{path}: unreadable parquet ({e})")


def _episode_rows(table: pa.Table, data_path: str) -> list[dict]:
    rows = []
    for r in table.drop_columns([c for c in table.column_names if c.startswith("stats/")]).to_pylist():
        r["data_path"] = data_path.format(chunk_index=r["data/chunk_index"], file_index=r["data/file_index"])
        rows.append(r)
    stats_cols = [c for c in table.column_names if c.startswith("stats/")]
    if stats_cols:
        stats_table = table.select(stats_cols).to_pylist()
        for r, s in zip(rows, stats_table):
            stats: dict[str, dict] = {}
            for key, v in s.items():
                _, name, stat = key.split("/", 2)
                stats.setdefault(name, {})[stat] = v
            r["stats"] = stats
    return rows
