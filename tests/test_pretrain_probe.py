"""The benchmarks' bad input is a one-line error, given before any pretraining is extended or episode is run."""

import json
import sys

import pytest


def assert_one_line_error(module, argv, expected, monkeypatch):
    """Running the benchmark `module` with `argv` exits with a single-line message that contains `expected`."""
    monkeypatch.setattr(sys, "argv", [f"{module.__name__}.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        module.run_benchmark(module.main)
    message = str(exit_info.value.code)
    assert len(message.splitlines()) == 1 and expected in message, message


@pytest.mark.parametrize("argv, expected", [
    (["--updates", "10k"], "--updates must be comma-separated update counts, got '10k'"),
    (["--updates", "0,100"], "--updates must be >= 1, got 0"),
    (["--episodes", "0"], "--episodes must be at least 1 (got 0)"),
    (["--tasks", "reach-v9"], "reach-v9"),
    (["--from", "/nonexistent/run"], "/nonexistent/run: not a readable `crossover pretrain` run"),
])
def test_bad_probe_input_is_a_one_line_error(argv, expected, monkeypatch, benchmark_script):
    assert_one_line_error(benchmark_script("pretrain_probe"), argv, expected, monkeypatch)


def test_a_pretrain_run_config_of_wrong_types_is_a_one_line_error(monkeypatch, benchmark_script, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run/pretrain_config.json").write_text(json.dumps({"data": ["d"], "tasks": None, "steps": "x"}))
    assert_one_line_error(benchmark_script("pretrain_probe"), ["--from", str(tmp_path / "run")],
                          "pretrain_config.json: field 'steps' must be int, got 'x'", monkeypatch)


@pytest.mark.parametrize("argv, expected", [
    ([], "not a `crossover adapt` run (no adapt_config.json)"),
    (["damaged"], "adapt_config.json: cannot be read as JSON"),
    (["partial"], "adapt_config.json: missing field 'episode_length'"),
    (["typed"], "adapt_config.json: field 'threads' must be int, got 'two'"),
    (["--episodes", "0"], "--episodes must be at least 1 (got 0)"),
    (["--prior-only", "--variants"], "--prior-only and --variants each choose the ways of acting: give one"),
])
def test_bad_planner_probe_input_is_a_one_line_error(argv, expected, monkeypatch, benchmark_script, tmp_path):
    run = tmp_path / "run"
    if argv:  # an adaptation run's folder, so that the bad flag (or its damaged config) is what is wrong
        run.mkdir()
        good = {"task": "reach-v3", "episode_length": 200, "seed": 0, "threads": 1}
        config = {"damaged": "{trunc", "partial": '{"task": "reach-v3"}',
                  "typed": json.dumps({**good, "threads": "two"})}.get(argv[0])
        (run / "adapt_config.json").write_text(config or json.dumps(good))
        argv = argv[1:] if config else argv
    assert_one_line_error(benchmark_script("planner_probe"), [str(run), *argv], expected, monkeypatch)


@pytest.mark.parametrize("argv, expected", [
    (["--episodes", "0"], "--episodes and --episode-length must be at least 1 (got 0 and 200)"),
    (["--episode-length", "100"], "holds rows at episode length 200; pass --episode-length 200 or move the file"),
    (["--targets", "door-lock-v9"], "unknown task or split 'door-lock-v9'"),
    (["--from", "/nonexistent/run"], "/nonexistent/run/checkpoint: missing; is /nonexistent/run a"),
    (["--targets", "reach-v3"], "reach-v3 is a source task of"),  # the ML45 study's kept model, ML45-train
    (["--sources", "door-lock-v3"], "door-lock-v3: not source tasks of"),
])
def test_bad_embedding_probe_input_is_a_one_line_error(argv, expected, monkeypatch, benchmark_script):
    assert_one_line_error(benchmark_script("embedding_probe"), argv, expected, monkeypatch)


@pytest.mark.parametrize("script, argv, expected", [
    ("collect_throughput", ["--tasks", "bogus"], "unknown task or split 'bogus'"),
    ("collect_throughput", ["--episodes", "0"], "--episodes must be at least 1 (got 0)"),
    ("scratch_learning", ["--seeds", "x"], "--seeds must be whole numbers >= 0"),
    ("agent_speed", ["--agent", "bogus=1"], "--agent 'bogus=1': give FIELD=NUMBER, FIELD one of"),
    ("agent_speed", ["--agent", "horizon=abc"], "'abc' is not a whole number"),
    ("agent_speed", ["--num-q", "0"], "--num-q: Q ensemble sizes must be >= 1"),
])
def test_bad_benchmark_input_is_a_one_line_error(script, argv, expected, monkeypatch, benchmark_script):
    assert_one_line_error(benchmark_script(script), argv, expected, monkeypatch)
