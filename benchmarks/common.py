"""Shared by the benchmarks: where results go and the facts about the machine each result was measured on."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from crossover.atomic import write_atomic
from crossover.dictconfig import field_problem
from crossover.errors import CrossoverError
from crossover.version import CODE_VERSION, machine  # noqa: F401 (the benchmarks import CODE_VERSION from here)

RESULTS = Path(__file__).resolve().parent / "results"


def arg_parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's parser: --help prints the script's whole docstring (goal, budget, usage) as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def write_result(name: str, result: dict, path: Path | None = None) -> Path:
    """Write benchmarks/results/<name>.json (or `path`) atomically, with date, machine, the command and the code
    version that produced it."""
    path = path or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
               "command": " ".join([Path(sys.executable).name] + sys.argv), "code_version": CODE_VERSION, **result}
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2) + "\n"))
    return path


def read_json(path: Path, **fields: type) -> dict:
    """The JSON object in `path` (a benchmark's own results, or a run's saved config), holding `fields` of the
    given types (name=type; float takes any number); anything else is a CrossoverError naming the file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:  # unreadable, not UTF-8, or not JSON
        raise CrossoverError(f"{path}: cannot be read as JSON ({e})") from None
    problem = field_problem(data, fields)
    if problem:
        raise CrossoverError(f"{path}: {problem}")
    return data


def run_benchmark(main) -> None:
    """Run a benchmark's main(): bad input (a CrossoverError, a path that cannot be read or written) ends it with
    a one-line error and exit code 1, not a traceback."""
    try:
        main()
    except (CrossoverError, OSError) as e:
        sys.exit(f"error: {e}")
