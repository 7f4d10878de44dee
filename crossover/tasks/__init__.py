"""The catalogue of tasks Crossover can learn, and how task lists are written on the command line."""
from __future__ import annotations

import difflib
from functools import lru_cache

from crossover.errors import CrossoverError
from crossover.tasks.spec import TaskSpec

__all__ = ["TaskSpec", "all_tasks", "get_task", "split_names", "resolve_tasks", "make_env", "make_expert"]


@lru_cache(maxsize=1)
def _catalogue() -> tuple[dict[str, TaskSpec], dict[str, list[str]]]:
    from crossover.tasks import metaworld

    return {t.name: t for t in metaworld.task_specs()}, metaworld.splits()


def all_tasks() -> list[TaskSpec]:
    return list(_catalogue()[0].values())


def split_names() -> list[str]:
    return list(_catalogue()[1])


def get_task(name: str) -> TaskSpec:
    """The one task called `name`; a split name is refused with the tasks it holds, since the caller wants one."""
    tasks, splits = _catalogue()
    if name in splits:
        raise CrossoverError(f"{name!r} is a split of {len(splits[name])} tasks, not one task; give one of them, "
                             f"e.g. {splits[name][0]!r} (`crossover tasks --split {name}` lists them)")
    if name not in tasks:
        raise CrossoverError(_unknown(name))
    return tasks[name]


def resolve_tasks(spec: str) -> list[TaskSpec]:
    """Expand a comma-separated list of split names and/or task names ("ML45-train,reach-v3") into tasks.

    Order is kept and duplicates are dropped, so "MT10,reach-v3" is just MT10. A part with a leading "-" removes
    that task or split from what comes before it: "ML45-train,-reach-v3" is the 44 others, for holding a task out.
    """
    tasks, splits = _catalogue()
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        remove = part.startswith("-")
        part = part[1:].strip() if remove else part
        if part in splits:
            found = splits[part]
        elif part in tasks:
            found = [part]
        else:
            raise CrossoverError(_unknown(part))
        names = [n for n in names if n not in found] if remove else names + found
    if not names:
        raise CrossoverError(f"empty task list {spec!r}: give split names ({', '.join(splits)}) or task names")
    return [tasks[n] for n in dict.fromkeys(names)]


def _unknown(name: str) -> str:
    tasks, splits = _catalogue()
    close = difflib.get_close_matches(name, list(splits) + list(tasks), n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `crossover tasks` to list them"
    return f"unknown task or split {name!r}{hint}"


def make_env(task: TaskSpec, episode_length: int | None = None, render_mode: str | None = None):
    """A simulator for `task` with reset(seed) / step(action) / close()."""
    from crossover.tasks import metaworld

    if task.suite != metaworld.SUITE:
        raise CrossoverError(f"task {task.name!r}: suite {task.suite!r} has no simulator adapter yet")
    return metaworld.MetaWorldEnv(task.name, episode_length or task.episode_length, render_mode)


def make_expert(task: TaskSpec):
    from crossover.tasks import metaworld

    return metaworld.make_expert(task.name)
