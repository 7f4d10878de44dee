"""Run records: the learning curve and costs of one study run, `<study>/runs/<run_id>/result.json`, as typed
dataclasses; loading and validating them, with errors that name the file and the field. Pure Python + the
standard library; no torch."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from crossover.errors import CrossoverError

ARMS = ("scratch", "pretrained")


class RunRecordError(CrossoverError):
    """A result.json that is missing a field or holds a value of the wrong type or range."""


@dataclass(frozen=True)
class PretrainScale:
    """How much multi-task data the checkpoint a pretrained run started from was trained on."""

    source_tasks: int
    episodes_per_task: int
    label: str

    @property
    def order(self) -> tuple[int, int, str]:
        # Scales are compared by number of tasks first: breadth is what a multi-task world model is bought for.
        return (self.source_tasks, self.episodes_per_task, self.label)


class _TrainTime:
    """For records with wall_s/cpu_s and the part of them spent evaluating, eval_wall_s/eval_cpu_s (None in runs
    made before evaluation was timed apart): the time spent adapting, evaluation left out where it was timed."""

    wall_s: float
    cpu_s: float
    eval_wall_s: float | None
    eval_cpu_s: float | None

    @property
    def train_wall_s(self) -> float:
        return self.wall_s - (self.eval_wall_s or 0.0)

    @property
    def train_cpu_s(self) -> float:
        return self.cpu_s - (self.eval_cpu_s or 0.0)


@dataclass(frozen=True)
class EvalPoint(_TrainTime):
    """One evaluation of a run; wall_s/cpu_s are the adaptation time spent so far (pretraining excluded)."""

    env_steps: int
    success: float
    wall_s: float
    cpu_s: float
    eval_wall_s: float | None = None
    eval_cpu_s: float | None = None
    prior_success: float | None = None  # the policy prior alone, without planning (None: not measured, pre 2026-11-27)


@dataclass(frozen=True)
class AdaptCost(_TrainTime):
    """What the whole run cost: training env steps, time and demonstrations used."""

    env_steps: int
    wall_s: float
    cpu_s: float
    demos: int
    eval_wall_s: float | None = None
    eval_cpu_s: float | None = None


@dataclass(frozen=True)
class PretrainCost:
    """Cost of collecting data and pretraining one checkpoint; shared by every run started from it."""

    wall_s: float
    cpu_s: float
    env_steps: int


@dataclass(frozen=True)
class RunRecord:
    """One run of the study grid: a target task, an arm, a pretraining scale (pretrained arm only), a seed."""

    run_id: str
    target: str
    arm: Literal["scratch", "pretrained"]
    pretrain_scale: PretrainScale | None
    demos: int
    seed: int
    curve: tuple[EvalPoint, ...]
    adapt_cost: AdaptCost
    pretrain_cost: PretrainCost | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form that `parse_run_record` reads back."""
        data = asdict(self)
        data["curve"] = list(data["curve"])
        return data


def load_run_record(path: str | Path) -> RunRecord:
    """Read and validate one result.json; errors name the file and the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunRecordError(f"{path}: run record not found") from None
    except json.JSONDecodeError as exc:
        raise RunRecordError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (OSError, ValueError) as exc:  # unreadable, or not UTF-8 text
        raise RunRecordError(f"{path}: cannot read the run record ({exc})") from None
    return parse_run_record(data, source=str(path))


def load_run_records(study_dir: str | Path) -> list[RunRecord]:
    """All run records of a study (`<study_dir>/runs/*/result.json`), sorted by run_id."""
    runs_dir = Path(study_dir) / "runs"
    paths = sorted(runs_dir.glob("*/result.json"))
    if not paths:
        raise RunRecordError(f"{runs_dir}: no run records found (expected runs/<run_id>/result.json)")
    records = [load_run_record(p) for p in paths]
    seen: dict[str, Path] = {}
    for record, path in zip(records, paths):
        if record.run_id in seen:
            raise RunRecordError(f"{path}: run_id {record.run_id!r} is also used by {seen[record.run_id]}")
        seen[record.run_id] = path
    return sorted(records, key=lambda r: r.run_id)


def parse_run_record(data: Any, source: str) -> RunRecord:
    """Validate a decoded result.json; `source` (usually the file path) starts every error message."""
    reader = _FieldReader(source)
    top = reader.mapping(data, "")
    arm = reader.get(top, "arm", "")
    if arm not in ARMS:
        raise RunRecordError(f"{source}: field 'arm' must be one of {', '.join(ARMS)}; got {arm!r}")
    scale_raw = reader.get(top, "pretrain_scale", "")
    cost_raw = reader.get(top, "pretrain_cost", "")
    if arm == "scratch" and (scale_raw is not None or cost_raw is not None):
        raise RunRecordError(f"{source}: a scratch run must have 'pretrain_scale' and 'pretrain_cost' set to null")
    if arm == "pretrained" and (scale_raw is None or cost_raw is None):
        missing = "pretrain_scale" if scale_raw is None else "pretrain_cost"
        raise RunRecordError(f"{source}: field '{missing}' must be set for a pretrained run (it is null)")

    scale = None
    if scale_raw is not None:
        s = reader.mapping(scale_raw, "pretrain_scale")
        scale = PretrainScale(
            source_tasks=reader.integer(s, "source_tasks", "pretrain_scale", minimum=1),
            episodes_per_task=reader.integer(s, "episodes_per_task", "pretrain_scale", minimum=1),
            label=reader.string(s, "label", "pretrain_scale"),
        )
    pretrain_cost = None
    if cost_raw is not None:
        c = reader.mapping(cost_raw, "pretrain_cost")
        pretrain_cost = PretrainCost(
            wall_s=reader.number(c, "wall_s", "pretrain_cost", minimum=0.0),
            cpu_s=reader.number(c, "cpu_s", "pretrain_cost", minimum=0.0),
            env_steps=reader.integer(c, "env_steps", "pretrain_cost", minimum=0),
        )

    curve_raw = reader.get(top, "curve", "")
    if not isinstance(curve_raw, list) or not curve_raw:
        raise RunRecordError(f"{source}: field 'curve' must be a non-empty list of eval points")
    curve = []
    for i, point_raw in enumerate(curve_raw):
        where = f"curve[{i}]"
        p = reader.mapping(point_raw, where)
        curve.append(
            EvalPoint(
                env_steps=reader.integer(p, "env_steps", where, minimum=0),
                success=reader.number(p, "success", where, minimum=0.0, maximum=1.0),
                wall_s=reader.number(p, "wall_s", where, minimum=0.0),
                cpu_s=reader.number(p, "cpu_s", where, minimum=0.0),
                **reader.eval_time(p, where),
                prior_success=None if p.get("prior_success") is None
                else reader.number(p, "prior_success", where, minimum=0.0, maximum=1.0),
            )
        )
        if i > 0 and curve[i].env_steps <= curve[i - 1].env_steps:
            raise RunRecordError(
                f"{source}: field '{where}.env_steps' must be greater than the previous point's "
                f"({curve[i].env_steps} <= {curve[i - 1].env_steps}); eval points must ascend"
            )

    a = reader.mapping(reader.get(top, "adapt_cost", ""), "adapt_cost")
    adapt_cost = AdaptCost(
        env_steps=reader.integer(a, "env_steps", "adapt_cost", minimum=0),
        wall_s=reader.number(a, "wall_s", "adapt_cost", minimum=0.0),
        cpu_s=reader.number(a, "cpu_s", "adapt_cost", minimum=0.0),
        demos=reader.integer(a, "demos", "adapt_cost", minimum=0),
        **reader.eval_time(a, "adapt_cost"),
    )
    timed = {p.eval_wall_s is not None for p in curve} | {adapt_cost.eval_wall_s is not None}
    if len(timed) > 1:
        raise RunRecordError(f"{source}: 'eval_wall_s' and 'eval_cpu_s' must be in every curve point and in "
                             f"'adapt_cost', or in none of them")
    # The censoring bound for a run that never reaches the threshold is its full cost, so it must cover the curve.
    if adapt_cost.env_steps < curve[-1].env_steps:
        raise RunRecordError(
            f"{source}: field 'adapt_cost.env_steps' ({adapt_cost.env_steps}) is smaller than the last eval point "
            f"({curve[-1].env_steps}); it must be the run's total env steps"
        )

    return RunRecord(
        run_id=reader.string(top, "run_id", ""),
        target=reader.string(top, "target", ""),
        arm=arm,
        pretrain_scale=scale,
        demos=reader.integer(top, "demos", "", minimum=0),
        seed=reader.integer(top, "seed", ""),
        curve=tuple(curve),
        adapt_cost=adapt_cost,
        pretrain_cost=pretrain_cost,
    )


@dataclass(frozen=True)
class _FieldReader:
    """Typed field access whose errors read '<file>: field 'a.b' ...'."""

    source: str

    def _name(self, parent: str, key: str) -> str:
        return f"{parent}.{key}" if parent else key

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            what = f"field '{where}'" if where else "the top level"
            raise RunRecordError(f"{self.source}: {what} must be a JSON object, got {type(value).__name__}")
        return value

    def get(self, obj: dict[str, Any], key: str, parent: str) -> Any:
        if key not in obj:
            raise RunRecordError(f"{self.source}: missing field '{self._name(parent, key)}'")
        return obj[key]

    def string(self, obj: dict[str, Any], key: str, parent: str) -> str:
        value = self.get(obj, key, parent)
        if not isinstance(value, str) or not value:
            raise RunRecordError(
                f"{self.source}: field '{self._name(parent, key)}' must be a non-empty string, got {value!r}"
            )
        return value

    def integer(self, obj: dict[str, Any], key: str, parent: str, minimum: int | None = None) -> int:
        value = self.get(obj, key, parent)
        # bool is an int subclass in Python; `true` in a step count is a bug upstream, not a 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise RunRecordError(f"{self.source}: field '{self._name(parent, key)}' must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise RunRecordError(f"{self.source}: field '{self._name(parent, key)}' must be >= {minimum}, got {value}")
        return value

    def number(
        self, obj: dict[str, Any], key: str, parent: str, minimum: float | None = None, maximum: float | None = None
    ) -> float:
        value = self.get(obj, key, parent)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RunRecordError(
                f"{self.source}: field '{self._name(parent, key)}' must be a finite number, got {value!r}"
            )
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            lo = "-inf" if minimum is None else minimum
            hi = "inf" if maximum is None else maximum
            raise RunRecordError(
                f"{self.source}: field '{self._name(parent, key)}' must be in [{lo}, {hi}], got {value}"
            )
        return float(value)

    def eval_time(self, obj: dict[str, Any], parent: str) -> dict[str, float | None]:
        """The optional pair eval_wall_s/eval_cpu_s: both or neither, each within the total it is part of."""
        if obj.get("eval_wall_s") is None and obj.get("eval_cpu_s") is None:  # absent or null: not timed
            return {"eval_wall_s": None, "eval_cpu_s": None}
        out = {}
        for key, total in (("eval_wall_s", "wall_s"), ("eval_cpu_s", "cpu_s")):
            # A little slack: both are rounded to the millisecond on their own.
            out[key] = self.number(obj, key, parent, minimum=0.0, maximum=float(obj[total]) + 0.01)
        return out
