import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

# The reference dataset LeRobot wrote (tests/fixtures/README.md): a copy of the team's shared one, which sits beside
# the repository where there is one.
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "lerobot-v3.0-metaworld"
SHARED_FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lerobot-v3.0-metaworld"


@pytest.fixture(scope="session")
def lerobot_fixture() -> Path:
    return FIXTURE


@pytest.fixture(scope="session")
def shared_lerobot_fixture() -> Path:
    if not SHARED_FIXTURE.exists():
        pytest.skip(f"no shared LeRobot fixture at {SHARED_FIXTURE} to compare the copy in tests/fixtures with")
    return SHARED_FIXTURE


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """Two tasks, a few short expert and random episodes, collected for real."""
    from crossover.data.collect import collect
    from crossover.tasks import resolve_tasks

    out = tmp_path_factory.mktemp("data") / "small"
    collect(resolve_tasks("reach-v3,drawer-close-v3"), 4, out, mix="expert:0.5,random:0.5", episode_length=100,
            flush_every=3, progress=lambda _: None)
    return out


@pytest.fixture(scope="session")
def benchmark_script():
    """Import a script of benchmarks/ (not a package) by name, e.g. benchmark_script("pretrain_probe")."""
    def load(name: str):
        script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
