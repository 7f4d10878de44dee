"""Shared by the benchmarks: where results go and the facts about the machine each result was measured on."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from crossover.atomic import write_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def _code_version() -> str:
    """The commit the benchmark's code came from, read when it starts (a later commit in the same work tree does
    not change the code it already imported); "-dirty" if tracked files other than results were changed."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=RESULTS.parent, capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
        return git("rev-parse", "--short", "HEAD") + ("-dirty" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


CODE_VERSION = _code_version()


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch_version,
            "platform": platform.platform()}


def write_result(name: str, result: dict, path: Path | None = None) -> Path:
    """Write benchmarks/results/<name>.json (or `path`) atomically, with date, machine, the command and the code
    version that produced it."""
    path = path or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
               "command": " ".join([Path(sys.executable).name] + sys.argv), "code_version": CODE_VERSION, **result}
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2) + "\n"))
    return path
