"""Evaluate the agent saved in a run folder on a task it knows."""
from __future__ import annotations

from pathlib import Path

from crossover.errors import CrossoverError
from crossover.eval.rollout import EvalResult, evaluate
from crossover.tasks import get_task


def evaluate_run(run: str | Path, task: str, episodes: int, episode_length: int = 200,
                 prior_only: bool = False) -> EvalResult:
    from crossover.train.checkpoint import load_checkpoint

    if episodes < 1:
        raise CrossoverError(f"--episodes must be at least 1 (got {episodes})")
    spec = get_task(task)
    agent, state, _ = load_checkpoint(Path(run) / "checkpoint")
    tasks = state.get("tasks", [])
    if task not in tasks:
        known = ", ".join(tasks) if len(tasks) <= 6 else f"{', '.join(tasks[:5])} and {len(tasks) - 5} more"
        raise CrossoverError(f"{run}: the agent was not trained on {task!r} (it knows {known}); for zero-shot "
                             f"success on a new task run `crossover adapt --task {task} --from {run} --steps 0`")
    return evaluate(agent, spec, tasks.index(task), episodes, episode_length, prior_only=prior_only)
