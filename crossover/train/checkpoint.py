"""Checkpoints of a training run: safetensors for every tensor, JSON for configs and counters. No pickle.

A checkpoint is a folder written whole under a temporary name and renamed into place, so a run killed while
saving keeps its previous checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy, save_file as save_numpy
from safetensors.torch import load_file as load_torch, save_file as save_torch

from crossover.agent.agent import Agent
from crossover.atomic import fsync_file, write_json_atomic
from crossover.dictconfig import ConfigError, field_problem
from crossover.errors import CheckpointError, CrossoverError

MODEL_FILE = "model.safetensors"  # agent weights, optimiser moments, generator state
CONFIG_FILE = "config.json"  # agent and world-model configs
STATE_FILE = "state.json"  # loop counters, numpy generator state, task names, anything JSON
BUFFER_FILE = "buffer.safetensors"  # replay buffer arrays (online runs only)


def save_checkpoint(path: str | Path, agent: Agent, state: dict, buffer: dict[str, np.ndarray] | None = None) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_torch({k: v.contiguous() for k, v in agent.tensors().items()}, str(tmp / MODEL_FILE))
    (tmp / CONFIG_FILE).write_text(json.dumps(agent.config(), indent=2))
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
    if buffer is not None:
        save_numpy({k: np.ascontiguousarray(v) for k, v in buffer.items()}, str(tmp / BUFFER_FILE))
    for file in tmp.iterdir():
        fsync_file(file)
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: str | Path) -> tuple[Agent, dict, dict[str, np.ndarray] | None]:
    """(agent, state, buffer arrays or None); a missing or damaged file is an error naming it."""
    path = _existing(Path(path))
    if not path.exists():
        raise CrossoverError(f"{path}: no checkpoint there; give the folder of a `crossover pretrain` or `adapt` run")
    for name in (MODEL_FILE, CONFIG_FILE, STATE_FILE):
        if not (path / name).exists():
            raise CheckpointError(path / name, "missing; the checkpoint is incomplete")
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError) as e:  # unreadable, not UTF-8, or not JSON
        raise CheckpointError(path / CONFIG_FILE, f"cannot be read ({e})") from None
    _check_fields(path / CONFIG_FILE, config, {"model": dict, "agent": dict, "seed": int}, required=True)
    state = read_checkpoint_state(path)
    tensors = _load(path / MODEL_FILE, load_torch)
    buffer = _load(path / BUFFER_FILE, load_numpy) if (path / BUFFER_FILE).exists() else None
    try:
        agent = Agent.from_config(config, tensors)
    except ConfigError as e:
        raise CheckpointError(path / CONFIG_FILE, str(e))
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(path / MODEL_FILE, f"does not match {path / CONFIG_FILE} ({str(e).splitlines()[0]})")
    return agent, state, buffer


# The fields of state.json, by type where a run has them (which ones depends on the kind of run).
STATE_FIELDS = {name: int for name in ("env_steps", "updates", "episodes", "next_eval", "task_index", "capacity")}
STATE_FIELDS.update({name: float for name in ("wall_s", "cpu_s", "eval_wall_s", "eval_cpu_s")})
STATE_FIELDS.update({name: list for name in ("tasks", "curve", "code")})
STATE_FIELDS.update({name: dict for name in ("rng", "init_info", "demo_method", "heldout")})
STATE_FIELDS.update(data_digest=str | None)


def _check_fields(file: Path, held: Any, types: dict[str, Any], required: bool = False) -> None:
    """Refuse, by file and field, a checkpoint's JSON whose fields are not of `types` (hand-edited, or damaged),
    rather than meet it as a TypeError somewhere in a run."""
    problem = field_problem(held, types, required)
    if problem:
        raise CheckpointError(file, problem)


def _existing(path: Path) -> Path:
    """The checkpoint folder, or the one it replaced if the run was killed between save_checkpoint's two renames."""
    old = path.with_name(f".{path.name}.old")
    return old if not path.exists() and old.exists() else path


def read_checkpoint_state(path: str | Path) -> dict:
    """Only the loop state (counters, curve, ...) of a checkpoint, without loading its tensors; a missing or
    damaged file, or a field of the wrong type, is an error naming it."""
    file = _existing(Path(path)) / STATE_FILE
    try:
        state = json.loads(file.read_text())
    except FileNotFoundError:
        raise CheckpointError(file, "missing; the checkpoint is incomplete") from None
    except (OSError, ValueError) as e:  # unreadable, not UTF-8, or not JSON
        raise CheckpointError(file, f"cannot be read ({e})") from None
    _check_fields(file, state, STATE_FIELDS)
    return state


def weights_sha256(run: str | Path) -> str | None:
    """SHA-256 of the weights file of training run `run`'s checkpoint (None if it has none): names a model by its
    content, wherever its folder lies."""
    weights = _existing(Path(run) / "checkpoint") / MODEL_FILE
    return hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists() else None


def has_checkpoint(run: Path) -> bool:
    return _existing(run / "checkpoint").exists()


def same_source(recorded: str | None, saved: list, new: list, new_digest: Callable[[], str | None]) -> bool:
    """For prepare_run's `same=`: whether a run that started from the folders `saved` (pretrained weights, or
    data) may resume from `new`. Yes if `new` holds the content whose digest the run recorded; a run begun before
    digests were recorded (recorded None) needs the same folders, named relative or absolute."""
    if recorded is None:
        return [Path(p).resolve() for p in saved] == [Path(p).resolve() for p in new]
    return recorded == new_digest()


def prepare_run(run: Path, config_file: str, config: dict, resume: bool, progress, may_grow: tuple = (),
                same: dict[str, Callable[[Any, Any], bool]] | None = None) -> bool:
    """Decide how a training run starts; returns True when it resumes from its checkpoint.

    Resuming needs the settings it was started with, except that the settings named in `may_grow` may be raised
    (pretraining's `steps`: a longer run continues a shorter one exactly, its learning rate being constant), and
    a setting in `same` may change when same[name](saved value, new value) says both name the same thing (an
    adaptation's `init`: the folder of the very weights it started from, wherever that folder now lies). The
    config file is rewritten to the new values. A folder holding a run is never overwritten unless --resume was
    asked for and the run died before its first checkpoint, in which case it starts over; --resume where there is
    no run yet starts one, and says so.
    """
    if resume and has_checkpoint(run):
        try:
            saved = json.loads((run / config_file).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(run / config_file, f"cannot read the run's settings ({e}); start the run afresh")
        same = same or {}
        changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
        grown = [k for k in changed if k in may_grow and k in saved and config.get(k, 0) > saved[k]]
        moved = [k for k in changed if k in same and k in saved and k in config and same[k](saved[k], config[k])]
        refused = [k for k in changed if k not in grown and k not in moved]
        if refused:
            raise CrossoverError(f"{run}: --resume with different settings ({', '.join(refused)}); "
                                 f"use the original ones or another --out")
        if grown:
            progress(f"{run}: extending the run: " + ", ".join(f"{k} {saved[k]:,} -> {config[k]:,}" for k in grown))
        for k in moved:
            progress(f"{run}: {k} {saved[k]} is now {config[k]} (same content)")
        if changed:
            write_json_atomic(run / config_file, config)
        return True
    if run.exists() and any(run.iterdir()):
        if not resume:
            raise CrossoverError(f"{run}: already holds a run; pass --resume to continue it or choose another --out")
        progress(f"{run}: killed before its first checkpoint; starting over")
        shutil.rmtree(run)
    elif resume:
        progress(f"{run}: no run there to resume; starting a new one")
    return False


def _load(file: Path, loader) -> dict:
    try:
        return loader(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(file, f"damaged safetensors file ({e})")


def generator_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def restore_generator(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng
