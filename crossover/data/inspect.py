"""What is in a dataset: counts per task and policy, success rates, episode lengths, and integrity checks."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crossover.data.episodes import EpisodeDataset


@dataclass
class GroupSummary:
    task: str
    policy: str
    episodes: int
    frames: int
    success_rate: float  # fraction of episodes with success at any step
    mean_length: float
    mean_first_success: float | None  # mean steps taken up to the first success (1 = the first step), over successes


@dataclass
class DatasetSummary:
    root: Path
    episodes: int
    frames: int
    tasks: int
    groups: list[GroupSummary]
    problems: list[str] = field(default_factory=list)  # one line each, naming the file
    checksummed: bool = True  # False for datasets written by other tools (no checksums to verify)

    @property
    def ok(self) -> bool:
        return not self.problems


def inspect_dataset(root: str | Path) -> DatasetSummary:
    ds = EpisodeDataset(root)
    problems = ds.verify()
    stats: dict[tuple[str, str], list[tuple[int, int | None]]] = defaultdict(list)
    if not problems:  # reading damaged files would only repeat the problem
        for ep in ds.iter_episodes():
            hits = np.flatnonzero(ep.success)
            stats[(ep.task, ep.policy)].append((len(ep), int(hits[0]) + 1 if len(hits) else None))
    groups = []
    for (task, policy), eps in sorted(stats.items()):
        firsts = [f for _, f in eps if f is not None]
        groups.append(GroupSummary(task, policy, len(eps), sum(n for n, _ in eps), len(firsts) / len(eps),
                                   float(np.mean([n for n, _ in eps])), float(np.mean(firsts)) if firsts else None))
    checksummed = all(r.get("crossover/data_sha256") for r in ds.episodes)
    return DatasetSummary(Path(root), len(ds.episodes), ds.num_frames, len(ds.task_names), groups, problems, checksummed)


def format_summary(s: DatasetSummary) -> str:
    lines = [f"{s.root}: {s.episodes} episodes, {s.frames:,} frames, {s.tasks} tasks", ""]
    header = f"{'task':<30} {'policy':<12} {'episodes':>8} {'frames':>9} {'success':>8} {'length':>7} {'1st success':>11}"
    lines += [header, "-" * len(header)]
    for g in s.groups:
        first = f"{g.mean_first_success:.0f}" if g.mean_first_success is not None else "-"
        lines.append(f"{g.task:<30} {g.policy:<12} {g.episodes:>8} {g.frames:>9,} {g.success_rate:>8.0%} "
                     f"{g.mean_length:>7.0f} {first:>11}")
    lines.append("")
    intact = "checksums verified: all data files intact" if s.checksummed else \
        "no checksums recorded (not written by crossover): all data files parse"
    lines += [f"PROBLEM {p}" for p in s.problems] or [intact]
    return "\n".join(lines)
