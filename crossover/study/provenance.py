"""Where each finished run came from, and whether the runs a study pools and compares were made alike.

A run's result.json keeps its "provenance" (study/run.py writes it; the KPIs never read it): the code version that
made it, the SHA-256 of the pretrained weights it started from, its demo method (with demos), the learning code
that trained each stretch of it ("code", from 2026-11-27; with each stretch's CPU since commit 79fb7b6) and the
machine it finished on ("machine", from 2026-11-28). A run made before a field existed lacks it and is not checked
on it."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

from crossover.study.records import RunRecord


def load_provenance(study_dir: str | Path, records: Iterable[RunRecord]) -> dict[str, dict]:
    """run_id -> the provenance in the run's result.json ({} where it has none, or none that is an object: it only
    informs, so a damaged one is not worth stopping a report for)."""
    runs, found = Path(study_dir) / "runs", {}
    for r in records:
        held = json.loads((runs / r.run_id / "result.json").read_text()).get("provenance")
        found[r.run_id] = held if isinstance(held, dict) else {}
    return found


def provenance_warnings(records: Iterable[RunRecord], provenance: Mapping[str, dict]) -> list[str]:
    """What makes the pooled or compared runs unlike: the runs of one scale started from different pretrained
    models; the runs with demos used different demo methods (a resumed run refuses another one, but a folder may
    hold runs restored from elsewhere); or runs compared with one another (one target, demos and seed, each arm)
    were trained by different learning code (crossover.version.LEARNING_CODE: the change may be unfair or may only
    have moved code around, and `git diff` of their code versions tells which) or ran on different CPUs (CPU
    and wall-clock seconds on one CPU model are not like for like with another's, so their costs and N* are not)."""
    records = list(records)
    lines = []
    digests: dict[str, set] = {}
    for r in records:
        digest = provenance[r.run_id].get("pretrained_weights_sha256")
        if r.pretrain_scale and digest:
            digests.setdefault(r.pretrain_scale.label, set()).add(digest)
    lines += [f"the runs of scale {label} started from {len(seen)} different pretrained models (see each run's "
              f"'provenance')" for label, seen in sorted(digests.items()) if len(seen) > 1]
    methods = {json.dumps(provenance[r.run_id]["demo_method"], sort_keys=True) for r in records
               if r.demos and provenance[r.run_id].get("demo_method")}
    if len(methods) > 1:
        lines.append(f"the runs with demos used {len(methods)} different demo methods, and the KPIs pool them (see "
                     f"each run's 'provenance')")
    checks = {
        "were trained by different learning code; `git diff` their code versions (see each run's 'provenance') to "
        "see whether it matters": lambda p: frozenset(s["learning_code"] for s in p.get("code") or ()),
        "ran on different CPUs (see each run's 'provenance'): their costs in CPU and wall-clock seconds are not "
        "like for like": _cpu,
    }
    for what, of in checks.items():
        seen_by_pair: dict[tuple, dict[str, object]] = {}
        for r in records:
            value = of(provenance[r.run_id])
            if value:
                seen_by_pair.setdefault((r.target, r.demos, r.seed), {})[r.run_id] = value
        lines += [f"{' and '.join(sorted(runs))} {what}" for _, runs in sorted(seen_by_pair.items())
                  if len(set(runs.values())) > 1]
    return lines


def machines_note(records: Iterable[RunRecord], provenance: Mapping[str, dict]) -> str | None:
    """Which CPUs the runs ran on ("A + B" for a run resumed on another), with how many runs each, if more than
    one (None otherwise): the KPIs pool the costs of every seed, so their spread then holds the difference between
    machines too."""
    counts = Counter(_cpu(provenance[r.run_id]) or "not recorded" for r in records)
    if len(counts) < 2:
        return None
    return "the runs ran on more than one CPU: " + ", ".join(f"{cpu} ({n})" for cpu, n in counts.most_common())


def _cpu(run_provenance: Mapping) -> str | None:
    """The CPU model(s) a run's provenance says it trained on: those of its stretches ("code", where they record
    one) and the one it finished on, joined by " + " in the order met; None if it recorded none."""
    stretches = [s.get("cpu") for s in run_provenance.get("code") or ()]
    cpus = dict.fromkeys(c for c in [*stretches, (run_provenance.get("machine") or {}).get("cpu")] if c)
    return " + ".join(cpus) or None
