"""The pretraining probe's bad input is a one-line error, given before any pretraining is extended."""

import importlib.util
import sys
from pathlib import Path

import pytest


def _probe_script():
    script = Path(__file__).parents[1] / "benchmarks" / "pretrain_probe.py"
    spec = importlib.util.spec_from_file_location("pretrain_probe", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, expected", [
    (["--updates", "10k"], "--updates must be comma-separated update counts, got '10k'"),
    (["--updates", "0,100"], "--updates must be >= 1, got 0"),
    (["--episodes", "0"], "--episodes must be at least 1 (got 0)"),
    (["--tasks", "reach-v9"], "reach-v9"),
    (["--from", "/nonexistent/run"], "/nonexistent/run: not a readable `crossover pretrain` run"),
])
def test_bad_probe_input_is_a_one_line_error(argv, expected, monkeypatch):
    module = _probe_script()
    monkeypatch.setattr(sys, "argv", ["pretrain_probe.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    message = str(exit_info.value.code)
    assert len(message.splitlines()) == 1 and expected in message, message
