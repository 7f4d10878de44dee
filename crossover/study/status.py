"""Where a study stands: which runs are finished, running, stopped part-way or not started, and what is left.

A long study (the ML45 benchmark is ~50 hours of 2 cores) runs in pieces over many sessions; this reads the study
folder, without changing it, so that whoever picks it up sees at once what a restart will do and what it will cost.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crossover.errors import CrossoverError
from crossover.locks import held_elsewhere
from crossover.study.records import load_run_record
from crossover.study.run import _plan, load_study_json
from crossover.train.checkpoint import read_checkpoint_state

STATES = ("finished", "running", "stopped", "not started")


@dataclass(frozen=True)
class RunStatus:
    run_id: str
    state: str  # one of STATES; "running": another process holds the run's lock now
    env_steps: int  # done so far: the last checkpoint's count for an unfinished run
    cpu_s: float | None  # spent so far, evaluation included (None: not started)
    wall_s: float | None
    success: float | None  # success at the last evaluation so far
    damaged: str | None = None  # the run's record or checkpoint that cannot be read, and why (a restart redoes it)


@dataclass(frozen=True)
class StudyStatus:
    folder: Path
    steps_per_run: int
    runs: tuple[RunStatus, ...]  # in the order the study does them

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.runs)

    @property
    def steps_left(self) -> int:
        return sum(self.steps_per_run - r.env_steps for r in self.runs if r.state != "finished")

    def cost_per_step(self) -> tuple[float, float] | None:
        """(CPU, wall-clock) seconds per env step of the finished runs, evaluation included; None if none is."""
        done = [r for r in self.runs if r.state == "finished" and r.env_steps > 0]
        steps = sum(r.env_steps for r in done)
        if not steps:
            return None
        return sum(r.cpu_s for r in done) / steps, sum(r.wall_s for r in done) / steps


def study_status(out: str | Path) -> StudyStatus:
    """The state of every run of the study in `out`. A run counts as running while another process holds its
    lock; checking takes the lock for an instant, so a study process starting at that moment may pass the run by
    (it is then done by the next process or restart). A damaged record or checkpoint counts as not there, and the
    run says which file it was."""
    out = Path(out)
    cfg = load_study_json(out)
    runs = []
    for run_id in _plan(cfg):
        run = out / "runs" / run_id
        record_file, damaged = run / "result.json", None
        if record_file.exists():
            try:
                record = load_run_record(record_file)
                cost = record.adapt_cost
                runs.append(RunStatus(run_id, "finished", cost.env_steps, cost.cpu_s, cost.wall_s,
                                      record.curve[-1].success if record.curve else None))
                continue
            except CrossoverError as e:
                damaged = str(e)  # a restart redoes the run, so it counts as unfinished
        state, checkpoint_damage = _checkpoint_state(run)
        if held_elsewhere(out / "locks" / f"run-{run_id}.lock"):
            kind = "running"
        else:
            kind = "stopped" if state else "not started"
        runs.append(RunStatus(run_id, kind, *(state or (0, None, None, None)),
                              damaged=damaged or checkpoint_damage))
    return StudyStatus(out, cfg.max_budget, tuple(runs))


def _checkpoint_state(run: Path) -> tuple[tuple[int, float, float, float | None] | None, str | None]:
    """(env steps, CPU s, wall s, last success) from a run's last checkpoint, or None if it has none or it cannot
    be read (a restart reports and redoes such a run); and, for one that cannot be read, which file and why."""
    checkpoint = run / "checkpoint"
    if not checkpoint.exists():
        return None, None
    try:
        state = read_checkpoint_state(checkpoint)
        curve = state["curve"]
        success = curve[-1]["success"] if curve else None
        return (int(state["env_steps"]), float(state["cpu_s"]), float(state["wall_s"]),
                None if success is None else float(success)), None
    except CrossoverError as e:
        return None, str(e)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        return None, f"{checkpoint / 'state.json'}: not the loop state of a run ({type(e).__name__}: {e})"


def format_status(status: StudyStatus, processes: int = 2) -> str:
    """A table of every run that has begun, a line for those that have not, and the cost of what is left as the
    finished runs measured it."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise CrossoverError(f"--processes must be a whole number >= 1, got {processes!r}")
    runs = status.runs
    counts = ", ".join(f"{status.count(s)} {s}" for s in STATES)
    lines = [f"{status.folder}: {len(runs)} runs of {status.steps_per_run:,} env steps: {counts}"]
    begun = [r for r in runs if r.state != "not started"]
    if begun:
        width = max(len(r.run_id) for r in begun)
        lines.append(f"{'run':<{width}}  {'state':<8}  {'env steps':>15}  {'CPU':>9}  {'wall':>9}  last success")
        for r in begun:
            lines.append(f"{r.run_id:<{width}}  {r.state:<8}  {f'{r.env_steps:,}/{status.steps_per_run:,}':>15}  "
                         f"{_minutes(r.cpu_s):>9}  {_minutes(r.wall_s):>9}  "
                         f"{'-' if r.success is None else f'{r.success:.0%}'}")
    damaged = [r for r in runs if r.damaged]
    if damaged:
        lines.append(f"{len(damaged)} run{'s' if len(damaged) > 1 else ''} with a damaged file, counted as not there "
                     f"(a restart reports it and redoes the run):")
        lines += [f"  {r.damaged}" for r in damaged]
    rate = status.cost_per_step()
    left = status.steps_left
    if not left:
        lines.append("nothing left to run")
    elif rate is None:
        lines.append(f"left: {left:,} env steps; no run has finished yet to estimate their cost from")
    else:
        cpu_h, wall_h = rate[0] * left / 3600, rate[1] * left / 3600
        lines.append(f"left: {left:,} env steps, ~{cpu_h:.1f} CPU-hours at the finished runs' {rate[0]:.2f} CPU-s "
                     f"per env step (evaluation included), ~{wall_h / processes:.1f} h of wall-clock with "
                     f"{processes} processes side by side; pretraining not yet done is not counted")
    return "\n".join(lines)


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"
