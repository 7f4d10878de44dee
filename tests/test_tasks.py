import pytest

from crossover.cli import main
from crossover.errors import CrossoverError
from crossover.tasks import all_tasks, get_task, resolve_tasks, split_names


def test_catalogue_has_all_50_metaworld_tasks():
    tasks = all_tasks()
    assert len(tasks) == 50
    assert all(t.obs_dim == 39 and t.action_dim == 4 and t.description for t in tasks)


@pytest.mark.parametrize("split,size", [("MT10", 10), ("MT50", 50), ("ML10-train", 10), ("ML10-test", 5),
                                        ("ML45-train", 45), ("ML45-test", 5)])
def test_split_sizes(split, size):
    assert len(resolve_tasks(split)) == size


def test_ml45_train_and_test_are_disjoint_and_cover_mt50():
    train = {t.name for t in resolve_tasks("ML45-train")}
    test = {t.name for t in resolve_tasks("ML45-test")}
    assert not train & test
    assert train | test == {t.name for t in resolve_tasks("MT50")}
    assert test == {"bin-picking-v3", "box-close-v3", "hand-insert-v3", "door-lock-v3", "door-unlock-v3"}


def test_mixed_spec_keeps_order_and_drops_duplicates():
    names = [t.name for t in resolve_tasks("ML10-test,reach-v3,door-close-v3")]
    assert names[:5] == [t.name for t in resolve_tasks("ML10-test")]
    assert names[5:] == ["reach-v3"]


def test_minus_removes_tasks_from_what_comes_before():
    names = [t.name for t in resolve_tasks("ML45-train,-reach-v3")]
    assert len(names) == 44 and "reach-v3" not in names
    assert [t.name for t in resolve_tasks("MT10,-MT10,reach-v3")] == ["reach-v3"]
    with pytest.raises(CrossoverError, match="empty task list"):
        resolve_tasks("reach-v3,-reach-v3")
    with pytest.raises(CrossoverError, match="reach-v3"):
        resolve_tasks("MT10,-reach-v2")


def test_unknown_name_lists_close_matches():
    with pytest.raises(CrossoverError, match="reach-v3"):
        resolve_tasks("ML45-train,reach-v2")
    with pytest.raises(CrossoverError, match="ML45-train"):
        resolve_tasks("ML45train")
    with pytest.raises(CrossoverError):
        get_task("nope")
    assert "ML45-test" in split_names()


def test_cli_bad_task_is_one_line_error(capsys, tmp_path):
    assert main(["collect", "--tasks", "rech-v3", "--episodes", "1", "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reach-v3" in err
    assert not (tmp_path / "ds").exists()


def test_cli_tasks_lists_split(capsys):
    assert main(["tasks", "--split", "ML10-test"]) == 0
    out = capsys.readouterr().out
    assert "lever-pull-v3" in out and "reach-v3" not in out
