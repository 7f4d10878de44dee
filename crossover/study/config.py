"""What a crossover study runs: source tasks, targets, pretraining scales, budgets, demos and seeds (YAML)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from crossover.dictconfig import fits_type
from crossover.errors import CrossoverError
from crossover.tasks import resolve_tasks
from crossover.agent.agent import BC_COEF
from crossover.data.collect import parse_mix
from crossover.model.world_model import PRESETS as MODEL_PRESETS


@dataclass
class Scale:
    source_tasks: int  # the first N of the study's source tasks
    episodes_per_task: int  # the first N collected episodes of each

    @property
    def label(self) -> str:
        return f"{self.source_tasks}x{self.episodes_per_task}"


@dataclass
class StudyConfig:
    sources: str  # source tasks: split names and/or task names, "-name" removes one, e.g. "ML45-train,-reach-v3"
    targets: str  # target tasks, held out of pretraining, e.g. "ML45-test"
    scales: list[Scale]  # pretraining scales to compare with scratch
    budgets: list[int]  # env-step budgets at which success is reported; the largest is each run's length
    seeds: list[int] = field(default_factory=lambda: [0])  # adaptation seeds, one run each
    demos: list[int] = field(default_factory=lambda: [0])  # expert demos given to each run (0 = none)
    threshold: float = 0.8  # success rate that counts as "solved" (reached when an evaluation and the next average it)
    collect_mix: str = "expert:0.5,noisy:0.3:0.3,random:0.2"  # policies that produce the pretraining data
    collect_workers: int = 2  # collect worker processes
    episode_length: int = 200  # steps per episode, for data, training and evaluation
    preset: str = "1m"  # world-model size, pretrained and scratch alike
    pretrain_steps: int = 20_000  # gradient updates of each pretraining run
    pretrain_bc_coef: float = BC_COEF  # behaviour-cloning weight of pretraining (PretrainConfig.bc_coef); adapt: 0
    eval_every: int = 2_000  # evaluation period of the adaptation runs, in env steps
    eval_episodes: int = 10  # evaluation episodes per point
    seed_steps: int | None = None  # seed-phase steps before planning in scratch runs (None: adapt's default)
    threads: int = 2  # torch threads

    def __post_init__(self) -> None:
        for name in ("sources", "targets", "collect_mix", "preset"):
            if not isinstance(getattr(self, name), str):
                raise CrossoverError(f"{name}: give one comma-separated string, got {getattr(self, name)!r}")
        if not isinstance(self.scales, list) or not all(isinstance(s, (Scale, dict)) for s in self.scales):
            raise CrossoverError(f"scales: give a list of {{source_tasks, episodes_per_task}}, got {self.scales!r}")
        try:
            self.scales = [s if isinstance(s, Scale) else Scale(**s) for s in self.scales]
        except TypeError as e:
            raise CrossoverError(f"scales: each needs source_tasks and episodes_per_task ({e})") from None
        for s in self.scales:
            if not (fits_type(s.source_tasks, int) and fits_type(s.episodes_per_task, int)):
                raise CrossoverError(f"scale {s.label}: source_tasks and episodes_per_task must be integers")
        if self.preset not in MODEL_PRESETS:
            raise CrossoverError(f"preset: {self.preset!r} is not a world-model size; choose one of "
                                 f"{', '.join(sorted(MODEL_PRESETS))}")
        try:
            parse_mix(self.collect_mix)
        except CrossoverError as e:
            raise CrossoverError(f"collect_mix: {e}") from None
        if self.seed_steps is not None and not (fits_type(self.seed_steps, int) and self.seed_steps >= 0):
            raise CrossoverError(f"seed_steps must be an integer >= 0 or null, got {self.seed_steps!r}")
        src = [t.name for t in resolve_tasks(self.sources)]
        tgt = [t.name for t in resolve_tasks(self.targets)]
        overlap = set(src) & set(tgt)
        if overlap:
            raise CrossoverError(f"targets must be held out of the sources; both have {', '.join(sorted(overlap))}")
        if not self.scales:
            raise CrossoverError("scales: give at least one pretraining scale")
        for s in self.scales:
            if not 1 <= s.source_tasks <= len(src) or s.episodes_per_task < 2:
                raise CrossoverError(f"scale {s.label}: source_tasks must be 1..{len(src)} and episodes_per_task >= 2")
        labels = [s.label for s in self.scales]
        if len(set(labels)) < len(labels):
            raise CrossoverError(f"scales: {labels} repeats a scale")
        _check_int_list("budgets", self.budgets, minimum=0)
        _check_int_list("seeds", self.seeds, minimum=0)
        _check_int_list("demos", self.demos, minimum=0)
        for name in ("episode_length", "eval_every", "eval_episodes", "pretrain_steps", "threads", "collect_workers"):
            value = getattr(self, name)
            if not fits_type(value, int) or value < 1:
                raise CrossoverError(f"{name} must be an integer >= 1, got {value!r}")
        # Success at a budget is read from the evaluation there, so every budget must be an evaluation point:
        # evaluations fall at multiples of eval_every, at the end of an episode.
        if self.eval_every % self.episode_length:
            raise CrossoverError(f"eval_every ({self.eval_every}) must be a multiple of episode_length "
                                 f"({self.episode_length}), so that evaluations fall on it")
        off_grid = [b for b in self.budgets if b % self.eval_every]
        if off_grid:
            raise CrossoverError(f"budgets {off_grid} are not multiples of eval_every ({self.eval_every}); success "
                                 f"at a budget is measured by the evaluation there")
        if not fits_type(self.pretrain_bc_coef, float) or not 0 <= self.pretrain_bc_coef < math.inf:
            raise CrossoverError(f"pretrain_bc_coef must be a finite number >= 0, got {self.pretrain_bc_coef!r}")
        if not fits_type(self.threshold, float) or not 0 < self.threshold <= 1:
            raise CrossoverError(f"threshold must be in (0, 1], got {self.threshold!r}")

    @property
    def source_names(self) -> list[str]:
        return [t.name for t in resolve_tasks(self.sources)]

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in resolve_tasks(self.targets)]

    @property
    def max_budget(self) -> int:
        return max(self.budgets)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Fields StudyConfig gained after studies had begun, each with the value that does what studies saved before it
# did (not today's default): pretraining had no behaviour-cloning term before `pretrain_bc_coef` (session 7).
# Add a field here when you add it to StudyConfig, so that running studies stay the studies they were.
ADDED_FIELDS: dict = {"pretrain_bc_coef": 0.0}


def same_study(held: dict, cfg: StudyConfig) -> bool:
    """Whether a saved study config (a study.json, say) is `cfg`; a field it lacks counts as its ADDED_FIELDS
    value, and one missing from that table makes them differ."""
    return {**ADDED_FIELDS, **held} == cfg.to_dict()


def _check_int_list(name: str, values, minimum: int | None = None) -> None:
    if not isinstance(values, list) or not values:
        raise CrossoverError(f"{name}: give a non-empty list, got {values!r}")
    for v in values:
        if not fits_type(v, int) or (minimum is not None and v < minimum):
            at_least = f" >= {minimum}" if minimum is not None else ""
            raise CrossoverError(f"{name}: {v!r} is not an integer{at_least}")
    if len(set(values)) < len(values):
        raise CrossoverError(f"{name}: {values} repeats a value")


# The built-in study `make demo` runs: small enough for ~15 minutes on 2 CPU cores, real in every part
# (measured 2026-11-27, session 13: 13.2 min for `make demo` on a clean clone, venv included, idle 2-core EPYC;
# with budgets up to 2,000 env steps it took 21-22.5 min).
PRESETS = {
    "demo": {
        "sources": "reach-wall-v3,button-press-topdown-v3,drawer-close-v3,door-close-v3",
        "targets": "reach-v3",
        "scales": [{"source_tasks": 2, "episodes_per_task": 6}, {"source_tasks": 4, "episodes_per_task": 6}],
        "budgets": [0, 500, 1000, 1500],
        "seeds": [0],
        "demos": [0],
        "threshold": 0.5,
        "episode_length": 100,
        "pretrain_steps": 600,
        "eval_every": 500,
        "eval_episodes": 4,
        "seed_steps": 500,
    },
}


def load_study_config(source: str) -> StudyConfig:
    """A built-in preset name ("demo") or a YAML file; errors name the file and the field."""
    if source in PRESETS:
        return StudyConfig(**PRESETS[source])
    path = Path(source)
    if not path.exists():
        raise CrossoverError(f"{path}: no such study config (built-in presets: {', '.join(PRESETS)})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CrossoverError(f"{path}: not valid YAML ({str(e).splitlines()[0]})")
    except (OSError, UnicodeDecodeError) as e:
        raise CrossoverError(f"{path}: cannot be read as a YAML text file ({e})") from None
    return study_config_from(data, path)


def study_config_from(data, where) -> StudyConfig:
    """A parsed study config (from a YAML file or a study folder's study.json) as a StudyConfig; errors name
    `where` and the field."""
    if not isinstance(data, dict):
        raise CrossoverError(f"{where}: expected a mapping of study fields, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(StudyConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CrossoverError(f"{where}: unknown field {unknown[0]!r}; known fields: {', '.join(sorted(known))}")
    try:
        return StudyConfig(**data)
    except (TypeError, CrossoverError) as e:  # TypeError: a field without a default is missing
        raise CrossoverError(f"{where}: {e}") from None
