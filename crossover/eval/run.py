"""Evaluate the agent saved in a run folder on a task it knows, or a pretrained agent zero-shot on a new task."""
from __future__ import annotations

from pathlib import Path

from crossover.errors import CrossoverError
from crossover.eval.rollout import EvalResult, evaluate
from crossover.tasks import get_task


def evaluate_run(run: str | Path, task: str, episodes: int, episode_length: int = 200,
                 prior_only: bool = False, progress=print) -> EvalResult:
    """Evaluate the agent of `run` on `task`. A `crossover pretrain` run may be given a task it was not trained on:
    the task is added as `crossover adapt` would start it (embedding: the mean of the source tasks'), so this
    measures zero-shot success, with the planner or (prior_only) the policy prior alone."""
    from crossover.train.checkpoint import load_checkpoint
    from crossover.train.online import trust_std, use_target_discount
    from crossover.train.pretrain import load_pretrained

    if episodes < 1 or episode_length < 1:
        raise CrossoverError(f"--episodes and --episode-length must be at least 1 (got {episodes} and "
                             f"{episode_length})")
    spec = get_task(task)
    run = Path(run)
    if (run / "pretrain_config.json").exists():
        agent, info = load_pretrained(run, task, seed=0)
        use_target_discount(agent, episode_length)  # as `adapt` starts from it
        tasks = info["tasks"]
        if not info["seen_in_pretraining"]:
            progress(f"[evaluate] {task} is new to {run}: zero-shot, its embedding is the {info['embedding_from']}")
    else:
        agent, state, _ = load_checkpoint(run / "checkpoint")
        # A demos run's planner searches near the prior for a while: evaluate it as the run itself did.
        agent.trust_std = trust_std(state.get("demo_method"), agent, state.get("env_steps", 0))
        tasks = state.get("tasks", [])
        if task not in tasks:
            known = ", ".join(tasks) if len(tasks) <= 6 else f"{', '.join(tasks[:5])} and {len(tasks) - 5} more"
            raise CrossoverError(f"{run}: the agent was not trained on {task!r} (it knows {known}); zero-shot "
                                 f"success on a new task needs a `crossover pretrain` run")
    return evaluate(agent, spec, tasks.index(task), episodes, episode_length, prior_only=prior_only)
