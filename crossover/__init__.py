"""Crossover: when does a pretrained multi-task robot world model beat training from scratch?

The Python API mirrors the `crossover` command, one function per verb; each stage lives in its own folder
(tasks, data, model, agent, train, study, eval) and reads the files the previous stage wrote:

    crossover.collect(tasks, episodes, out, ...)      crossover.inspect_dataset(dir)
    crossover.pretrain(PretrainConfig(...), out)      crossover.adapt(AdaptConfig(...), out)
    crossover.evaluate_run(run, task, episodes)       crossover.run_study(StudyConfig(...), out)
    crossover.report_study(dir)
"""
from importlib import import_module

__version__ = "0.1.0"

# Imported on first use, so `import crossover` stays cheap (no torch or MuJoCo until needed).
_API = {
    "collect": "crossover.data.collect", "inspect_dataset": "crossover.data.inspect",
    "resolve_tasks": "crossover.tasks", "pretrain": "crossover.train.pretrain",
    "PretrainConfig": "crossover.train.pretrain", "adapt": "crossover.train.online",
    "AdaptConfig": "crossover.train.online", "evaluate_run": "crossover.eval.run",
    "run_study": "crossover.study.run", "report_study": "crossover.study.run",
    "StudyConfig": "crossover.study.config",
}


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'crossover' has no attribute {name!r}")


__all__ = list(_API)
