"""Which code made a run: the git commit of this checkout, read once when crossover is imported (a commit made
while a run is going does not change the code it already loaded)."""
from __future__ import annotations

import subprocess
from pathlib import Path


def code_version(repo: str | Path) -> str:
    """The short commit of the checkout at `repo`, plus "-dirty" if tracked files other than benchmarks/results
    (benchmark output, not code) differ from it. git runs at the root: pathspecs are relative to where it runs."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()

    try:
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
        return git("rev-parse", "--short", "HEAD") + ("-dirty" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


CODE_VERSION = code_version(Path(__file__).resolve().parents[1])
