"""Crossover: when does a pretrained multi-task robot world model beat training from scratch?

The Python API mirrors the `crossover` command; each stage lives in its own folder (tasks, data, model, agent,
train, study, eval) and reads the files the previous stage wrote.
"""
__version__ = "0.1.0"
