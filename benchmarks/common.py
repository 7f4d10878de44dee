"""Shared by the benchmarks: where results go and the facts about the machine each result was measured on."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def write_result(name: str, result: dict) -> Path:
    """Write benchmarks/results/<name>.json with date, machine and the command that produced it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
               "command": " ".join([Path(sys.executable).name] + sys.argv), **result}
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
    return path
