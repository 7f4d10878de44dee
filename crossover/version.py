"""Which code made a run: the git commit of this checkout and a digest of its learning code, read once when
crossover is imported (a commit made while a run is going does not change the code it already loaded); and which
machine it ran on."""
from __future__ import annotations

import ast
import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

# The packages whose code decides what a run learns and how it is scored; study/ and cli.py only arrange runs.
LEARNING_PACKAGES = ("agent", "model", "train", "eval", "data", "tasks")


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


def learning_code_sha256(package: str | Path) -> str:
    """A digest (16 hex digits) of the modules of LEARNING_PACKAGES under the crossover package folder `package`,
    taken over their parsed code with docstrings dropped (comments never reach the parse): edits to prose leave it
    as it is, and any change to code changes it, whether or not it changes what a run does."""
    package, digest = Path(package), hashlib.sha256()
    for path in sorted(p for name in LEARNING_PACKAGES for p in (package / name).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        digest.update(f"{path.relative_to(package).as_posix()}\0{ast.dump(tree)}\0".encode())
    return digest.hexdigest()[:16]


def machine() -> dict:
    """The facts about this machine that set how long a run takes: CPU model, core count, Python and torch. CPU and
    wall-clock seconds measured on one CPU model are not like for like with those on another."""
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


CODE_VERSION = code_version(Path(__file__).resolve().parents[1])
LEARNING_CODE = learning_code_sha256(Path(__file__).resolve().parent)
