"""The code version each run and benchmark result records."""
import subprocess

from crossover.version import code_version, learning_code_sha256


def test_code_version_is_dirty_for_changed_code_and_not_for_changed_results(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    for name in ("crossover/agent.py", "benchmarks/bench.py", "benchmarks/results/bench.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("0\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "start")
    head = git("rev-parse", "--short", "HEAD")
    assert code_version(tmp_path) == head
    (tmp_path / "benchmarks/results/bench.json").write_text("1\n")
    assert code_version(tmp_path) == head, "a changed result does not make the code dirty"
    for name in ("crossover/agent.py", "benchmarks/bench.py"):
        (tmp_path / name).write_text("1\n")
        assert code_version(tmp_path) == head + "-dirty", f"a change to {name} does"
        git("checkout", "-q", name)
    assert code_version(tmp_path / "no-such-folder") == "unknown (not a git checkout)"


def test_learning_code_digest_ignores_prose_and_sees_code(tmp_path):
    module = tmp_path / "agent" / "planner.py"
    module.parent.mkdir()
    module.write_text('"""The planner."""\n\ndef plan(x):\n    """Plan."""\n    return x + 1  # one step\n')
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "report.py").write_text("A = 1\n")  # not learning code
    start = learning_code_sha256(tmp_path)
    module.write_text('"""The MPPI planner."""\n\ndef plan(x):\n    """Plan ahead."""\n    return x + 1  # a step\n')
    (tmp_path / "study" / "report.py").write_text("A = 2\n")
    assert learning_code_sha256(tmp_path) == start, "docstrings, comments and non-learning packages do not count"
    module.write_text('"""The planner."""\n\ndef plan(x):\n    """Plan."""\n    return x + 2\n')
    assert learning_code_sha256(tmp_path) != start
