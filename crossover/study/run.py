"""Run a crossover study: collect source data, pretrain at each scale, adapt every (target, arm, demos, seed),
and write one run record per run for the KPIs. Finished steps are skipped on restart; a damaged checkpoint is
reported by name and its run redone.

Layout of a study folder:
  study.json                     the config it was started with
  data/sources/                  LeRobot dataset of the source tasks (largest scale; smaller scales use a prefix)
  data/cost.json                 what collecting them cost (cost.partial.json: the time spent so far, across kills)
  pretrain/<scale>/              pretraining runs, with cost.json once finished
  runs/<run_id>/                 adaptation runs, with result.json once finished
  locks/                         lock files of the runs and pretraining scales processes are working on
  report.html, *.png             written by `crossover report` and at the end of `crossover study`
  prior_acting/                  the same, from `crossover report --acting prior`
"""
from __future__ import annotations

import json
import resource
import shutil
import time
from pathlib import Path

from crossover.data.collect import collect
from crossover.atomic import write_json_atomic
from crossover.errors import CheckpointError, CrossoverError
from crossover.locks import claim
from crossover.study.config import Scale, StudyConfig, same_study, study_config_from
from crossover.study.records import load_run_record, parse_run_record
from crossover.tasks import resolve_tasks
from crossover.version import CODE_VERSION, machine


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (collect workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_study(cfg: StudyConfig, out: str | Path, progress=print, max_runs: int | None = None,
              keep_pretrained: str | Path | None = None, on_finished=None) -> list[Path]:
    """Run (or finish) the study's runs; returns the paths of the finished run records.

    Several processes may work on one study folder at once (e.g. two on 2 cores, 1 torch thread each): each run
    and each pretraining scale is claimed with a lock that dies with its process, so they split the work, and a
    killed process's run is free for the next one to resume. `max_runs` stops after starting that many runs.
    `keep_pretrained`: a folder to copy each finished pretraining scale to (`save_pretrained`) as soon as it is
    done, before the adaptation runs that use it. `on_finished(record_path)` is called after each run this
    process finishes.
    """
    if max_runs is not None and max_runs < 0:
        raise CrossoverError(f"--max-runs must be >= 0, got {max_runs}")
    # A study process lives for hours: load now the modules it imports later (for a run, for the report), so that
    # code edited meanwhile is never mixed with what it started with (a report module newer than the KPI module
    # already loaded failed to import, 2026-11-27).
    import crossover.study.report  # noqa: F401
    import crossover.train.online  # noqa: F401
    import crossover.train.pretrain  # noqa: F401

    out = _study_folder(cfg, out)
    plan = _plan(cfg)
    costs: dict[str, dict] = {}  # pretraining cost per scale label, pretrained on first need
    records: dict[str, Path] = {}
    started = 0
    while True:
        waiting = 0  # runs whose scale another process is pretraining: worth waiting for
        held = 0  # runs another process is running
        for n, (run_id, (seed, target, demos, scale)) in enumerate(plan.items(), 1):
            if run_id in records:
                continue
            with claim(out / "locks" / f"run-{run_id}.lock") as claimed:
                if not claimed:
                    held += 1
                    continue
                done = _finished_record(out / "runs" / run_id / "result.json", progress)
                if done:
                    progress(f"[study] run {n}/{len(plan)}: {run_id}: finished earlier")
                    records[run_id] = done
                    continue
                if max_runs is not None and started >= max_runs:
                    progress(f"[study] stopping after {max_runs} runs (--max-runs); run again to continue")
                    return list(records.values())
                if scale is not None and scale.label not in costs:
                    cost = _pretrain_scale(cfg, out, scale, progress)
                    if cost is None:
                        waiting += 1
                        continue
                    costs[scale.label] = cost
                    if keep_pretrained is not None:
                        for label in save_pretrained(cfg, out, keep_pretrained):
                            progress(f"[study] kept the pretrained model of scale {label} in {keep_pretrained}")
                started += 1
                progress(f"[study] run {n}/{len(plan)}: {run_id}")
                records[run_id] = _adapt_run(cfg, out, run_id, target, scale, demos, seed,
                                             costs[scale.label] if scale else None, progress)
                if on_finished is not None:
                    on_finished(records[run_id])
        if not waiting:
            break
        progress(f"[study] waiting for another process to finish pretraining ({waiting} runs need it)")
        time.sleep(30)
    if held:
        progress(f"[study] runs held by another process working on {out}: {held}; when it is done, run this "
                 f"command again (it finishes what that process left) or `crossover report {out}`")
    return list(records.values())


def pretrain_scales(cfg: StudyConfig, out: str | Path, progress=print) -> list[str]:
    """Collect the source data and pretrain every scale now, as run_study does on first need, but start no
    adaptation run: to settle (and keep) a study's pretrained models before its adaptation runs. Returns the
    labels of the scales that are finished; a scale another process is pretraining is left to it."""
    out = _study_folder(cfg, out)
    return [s.label for s in cfg.scales if _pretrain_scale(cfg, out, s, progress) is not None]


def _plan(cfg: StudyConfig) -> dict[str, tuple[int, str, int, Scale | None]]:
    """run_id -> (seed, target, demos, scale or None for scratch), in the order the runs are done.

    Seeds outermost and arms innermost: a study stopped part-way (or run in pieces) has whole comparisons,
    scratch next to every pretrained scale for the same target, demos and seed, rather than one arm's runs. Demo
    counts go before targets, so the first pieces of a long study cover every target (task by task is what it
    reports) before they add demos."""
    plan = {}
    for seed in cfg.seeds:
        for demos in cfg.demos:
            for target in cfg.target_names:
                for scale in [None, *cfg.scales]:
                    arm = "scratch" if scale is None else f"pre-{scale.label}"
                    plan[f"{target}__{arm}__demos{demos}__seed{seed}"] = (seed, target, demos, scale)
    return plan


def _study_folder(cfg: StudyConfig, out: str | Path) -> Path:
    """The study folder for `cfg`, made if new; one holding a study of another config is refused."""
    out = Path(out)
    _bind_config(out, cfg, "holds a study with another config; use the same config or another --out")
    return out


def _bind_config(folder: Path, cfg: StudyConfig, refusal: str) -> None:
    """Tie `folder` to one study config through its study.json; one holding another config is refused with
    `refusal`, a damaged one named."""
    held = _read_study_json(folder)
    if held is not None and not same_study(held, cfg):
        raise CrossoverError(f"{folder}: {refusal}")
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "study.json", cfg.to_dict())


def _read_study_json(folder: Path) -> dict | None:
    """The study config saved in `folder` (its study.json) as written, None if there is none; a damaged one is a
    one-line error naming it."""
    cfg_file = folder / "study.json"
    if not cfg_file.exists():
        return None
    try:
        return json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise CrossoverError(f"{cfg_file}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except (OSError, ValueError) as e:  # unreadable, or not UTF-8 text
        raise CrossoverError(f"{cfg_file}: cannot read it ({e})") from None


def _collect_sources(cfg: StudyConfig, out: Path, progress) -> dict:
    with claim(out / "locks" / "collect.lock", wait=True):  # a second process waits, then reuses the data
        return _collect_sources_locked(cfg, out, progress)


def _collect_sources_locked(cfg: StudyConfig, out: Path, progress) -> dict:
    data = out / "data" / "sources"
    cost_file = out / "data" / "cost.json"
    if cost_file.exists():
        cost = _read_cost(cost_file, DATA_COST_KEYS)
        if cost is None:  # the data are there, but what they cost is not: only collecting again can say
            raise CrossoverError(f"{cost_file}: damaged, so the collection's cost is unknown; delete {out / 'data'} "
                                 f"to collect again")
        return cost
    # A killed collection resumes where it stopped; the time spent before the kill is kept in a ledger, updated
    # whenever collect reports progress, so that the cost covers every episode collected, not just this process's.
    # (CPU of collect workers counts once they finish, so a kill loses the CPU of the workers it stopped.)
    ledger = out / "data" / "cost.partial.json"
    before = _read_cost(ledger, ("wall_s", "cpu_s")) if ledger.exists() else {"wall_s": 0.0, "cpu_s": 0.0}
    if before is None:
        raise CrossoverError(f"{ledger}: damaged, so the time spent collecting before is unknown; delete "
                             f"{out / 'data'} to collect again")
    wall0, cpu0 = time.time(), _cpu_seconds()

    def spent() -> dict:
        return {"wall_s": before["wall_s"] + time.time() - wall0, "cpu_s": before["cpu_s"] + _cpu_seconds() - cpu0}

    def progress_and_ledger(line: str) -> None:
        write_json_atomic(ledger, spent())
        progress(line)

    episodes = max(s.episodes_per_task for s in cfg.scales)
    r = collect(resolve_tasks(",".join(cfg.source_names)), episodes, data, mix=cfg.collect_mix,
                workers=cfg.collect_workers, episode_length=cfg.episode_length, progress=progress_and_ledger)
    cost = {**spent(), "env_steps": (r.episodes_written + r.episodes_skipped) * cfg.episode_length,
            "episodes_per_task": episodes, "tasks": len(cfg.source_names)}
    write_json_atomic(cost_file, cost)
    ledger.unlink(missing_ok=True)
    return cost


def _pretrain_scale(cfg: StudyConfig, out: Path, scale: Scale, progress) -> dict | None:
    """Pretrain at one scale (or reuse a finished run); its cost includes its share of data collection.
    None when another process is pretraining this scale."""
    with claim(out / "locks" / f"pretrain-{scale.label}.lock") as claimed:
        return _pretrain_scale_locked(cfg, out, scale, progress) if claimed else None


def _pretrain_scale_locked(cfg: StudyConfig, out: Path, scale: Scale, progress) -> dict:
    from crossover.train.checkpoint import load_checkpoint
    from crossover.train.pretrain import PretrainConfig, pretrain

    run = out / "pretrain" / scale.label
    cost_file = run / "cost.json"
    if cost_file.exists():  # finished, unless its record or the weights the adaptation runs start from are damaged
        cost = _read_cost(cost_file, PRETRAIN_COST_KEYS)
        problem = None if cost is not None else f"{cost_file}: damaged"
        if problem is None:
            try:
                load_checkpoint(run / "checkpoint")
            except CrossoverError as e:
                problem = str(e)
        if problem is None:
            return cost
        # Pretraining resumes from its checkpoint (cost.json is kept until it is rewritten at the end, so a failure
        # here leaves the scale as it found it), or starts over in an emptied folder if the checkpoint is damaged.
        progress(f"[study] {problem}; pretraining scale {scale.label} again")
    data_cost = _collect_sources(cfg, out, progress)
    tasks = cfg.source_names[: scale.source_tasks]
    pcfg = PretrainConfig([str(out / "data" / "sources")], tasks=",".join(tasks), preset=cfg.preset,
                          steps=cfg.pretrain_steps, episodes_per_task=scale.episodes_per_task,
                          eval_every=max(1, cfg.pretrain_steps // 5), episode_length=cfg.episode_length,
                          bc_coef=cfg.pretrain_bc_coef, threads=cfg.threads)
    progress(f"[study] pretraining scale {scale.label}: {len(tasks)} source tasks x {scale.episodes_per_task} episodes")
    result = _with_rerun_on_damage(lambda resume: pretrain(pcfg, run, resume=resume, progress=progress), run, progress)
    share = scale.source_tasks * scale.episodes_per_task / (data_cost["tasks"] * data_cost["episodes_per_task"])
    cost = {"wall_s": result.wall_s + share * data_cost["wall_s"], "cpu_s": result.cpu_s + share * data_cost["cpu_s"],
            "env_steps": int(share * data_cost["env_steps"]), "pretrain_wall_s": result.wall_s,
            "pretrain_cpu_s": result.cpu_s, "collect_share": share}
    write_json_atomic(cost_file, cost)
    return cost


DATA_COST_KEYS = ("wall_s", "cpu_s", "env_steps", "episodes_per_task", "tasks")
PRETRAIN_COST_KEYS = ("wall_s", "cpu_s", "env_steps", "pretrain_wall_s", "pretrain_cpu_s", "collect_share")


def _read_cost(path: Path, keys: tuple[str, ...]) -> dict | None:
    """A stage's cost record (seconds, env steps, ...), or None if it is damaged: not JSON, or missing a field."""
    try:
        cost = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(cost, dict) and all(isinstance(cost.get(k), (int, float)) for k in keys)
    return cost if ok else None


def _with_rerun_on_damage(step, run: Path, progress):
    """Run `step(resume=True)`; if the run's own checkpoint is damaged, say which file and redo the run. Damage
    elsewhere (say, the pretrained checkpoint an adaptation run starts from) is not this run's to repair: raised."""
    try:
        return step(True)
    except CheckpointError as e:
        if run.resolve() not in Path(e.path).resolve().parents:
            raise
        progress(f"[study] {e}; rerunning {run} from the start")
        shutil.rmtree(run)
        return step(False)


def _finished_record(record_file: Path, progress) -> Path | None:
    """The run's record if it is there and valid; a damaged one is reported by name (and the run redone)."""
    if not record_file.exists():
        return None
    try:
        load_run_record(record_file)
        return record_file
    except CrossoverError as e:
        progress(f"[study] {e}; redoing the run")
        return None


def _adapt_run(cfg: StudyConfig, out: Path, run_id: str, target: str, scale: Scale | None, demos: int, seed: int,
               pretrain_cost: dict | None, progress) -> Path:
    from crossover.train.checkpoint import weights_sha256
    from crossover.train.online import DEMO_METHOD, AdaptConfig, adapt

    run = out / "runs" / run_id
    record_file = run / "result.json"
    acfg = AdaptConfig(target, init="scratch" if scale is None else str(out / "pretrain" / scale.label),
                       steps=cfg.max_budget, demos=demos, eval_every=cfg.eval_every, eval_episodes=cfg.eval_episodes,
                       episode_length=cfg.episode_length, seed=seed, preset=cfg.preset, seed_steps=cfg.seed_steps,
                       threads=cfg.threads)
    r = _with_rerun_on_damage(lambda resume: adapt(acfg, run, resume=resume, progress=progress), run, progress)
    record = {
        "run_id": run_id, "target": target, "arm": "scratch" if scale is None else "pretrained",
        "pretrain_scale": None if scale is None else {"source_tasks": scale.source_tasks,
                                                     "episodes_per_task": scale.episodes_per_task, "label": scale.label},
        "demos": demos, "seed": seed,
        "curve": [{k: p[k] for k in ("env_steps", "success", "prior_success", "wall_s", "cpu_s", "eval_wall_s",
                                     "eval_cpu_s") if k in p} for p in r.curve],
        "adapt_cost": {"env_steps": r.env_steps, "wall_s": r.wall_s, "cpu_s": r.cpu_s, "demos": demos,
                       "eval_wall_s": r.eval_wall_s, "eval_cpu_s": r.eval_cpu_s},
        "pretrain_cost": None if pretrain_cost is None else {k: pretrain_cost[k] for k in ("wall_s", "cpu_s", "env_steps")},
        # Which code made the run, which weights it started from, how it used its demos and the machine it
        # finished on (not read by the KPIs). The weights by the digest the run recorded when it began: the scale's
        # folder may hold another model by now (pretrained again after damage).
        "provenance": {"code_version": CODE_VERSION,
                       "pretrained_weights_sha256": None if scale is None else (
                           r.init_weights_sha256 or weights_sha256(Path(acfg.init))),
                       "demo_method": DEMO_METHOD if demos else None,
                       "code": r.code, "machine": machine()},
    }
    parse_run_record(record, str(record_file))  # the schema check, before anything is written
    write_json_atomic(record_file, record)
    return record_file


def restore_run_records(cfg: StudyConfig, out: str | Path, records: list[dict], source: str,
                        provenance: dict[str, dict] | None = None) -> int:
    """Put finished run records of study `cfg` saved elsewhere (e.g. a benchmark's committed JSON) back into its
    study folder, so `run_study` skips those runs instead of redoing them; returns how many were restored. A valid
    record already in the folder wins; each restored one is checked like a fresh result.json (errors name `source`)
    and must be a run of this study's grid. `provenance` (run_id -> provenance, where the records were saved without
    theirs) goes back into each restored result.json, and into one restored earlier without it."""
    out = _study_folder(cfg, out)
    provenance = provenance or {}
    planned = _plan(cfg)
    restored = 0
    for i, data in enumerate(records):
        where = f"{source}: runs[{i}]"
        record = parse_run_record(data, where)
        run_id = record.run_id
        if run_id not in planned:
            raise CrossoverError(f"{where}: run_id {run_id!r} is not a run of this study's config")
        seed, target, demos, scale = planned[run_id]
        label = None if record.pretrain_scale is None else record.pretrain_scale.label
        if (record.seed, record.target, record.demos, label) != (seed, target, demos, scale and scale.label):
            raise CrossoverError(f"{where}: run {run_id!r} does not hold what its name says (seed, target, demos, "
                                 f"pretraining scale)")
        record_file = out / "runs" / run_id / "result.json"
        kept = "provenance" not in data and provenance.get(run_id)
        if kept and not isinstance(kept, dict):
            raise CrossoverError(f"{source}: provenance of run {run_id!r} must be an object, not {kept!r}")
        if not _finished_record(record_file, progress=lambda _: None):
            write_json_atomic(record_file, {**data, "provenance": kept} if kept else data)
            restored += 1
        elif kept and json.loads(record_file.read_text()) == data:  # restored before provenance came back with it
            write_json_atomic(record_file, {**data, "provenance": kept})
    return restored


def pretrained_weights_sha256(out: str | Path) -> dict[str, str]:
    """Scale label -> SHA-256 of its pretrained checkpoint's weights file, for every finished pretraining scale.
    Pretraining is seeded, so two sessions that each pretrain a scale should get the same digest; a second digest
    for one scale says runs of that scale started from different models."""
    from crossover.train.checkpoint import weights_sha256

    digests = {}
    for cost in sorted(Path(out).glob("pretrain/*/cost.json")):
        digest = weights_sha256(cost.parent)
        if digest:
            digests[cost.parent.name] = digest
    return digests


def save_pretrained(cfg: StudyConfig, out: str | Path, store: str | Path) -> list[str]:
    """Copy every finished pretraining scale of study folder `out` (checkpoint, configs, metrics, cost.json) to
    `store/<label>/` unless it is there already; returns the labels copied. With `restore_pretrained`, later work
    trees adapt from these very weights instead of pretraining again, and all runs of a scale share one model."""
    out, store = Path(out), Path(store)
    copied = []
    with claim(out / "locks" / "save-pretrained.lock", wait=True):  # two processes may end at once
        for scale in cfg.scales:
            run, kept = out / "pretrain" / scale.label, store / scale.label
            if (run / "cost.json").exists() and not (kept / "cost.json").exists():
                _store_config(cfg, store)
                _copy_folder(run, kept)
                copied.append(scale.label)
    return copied


def restore_pretrained(cfg: StudyConfig, out: str | Path, store: str | Path) -> list[str]:
    """Put the pretraining scales kept in `store` by `save_pretrained` into study folder `out`, where a scale is not
    finished yet; returns the labels restored. A store made for another config is refused."""
    store = Path(store)
    if not store.exists():
        return []
    _store_config(cfg, store)
    out = _study_folder(cfg, out)
    restored = []
    for scale in cfg.scales:
        run, kept = out / "pretrain" / scale.label, store / scale.label
        # The scale's pretraining lock: a process restoring or pretraining it now is left alone.
        with claim(out / "locks" / f"pretrain-{scale.label}.lock") as claimed:
            if claimed and (kept / "cost.json").exists() and not (run / "cost.json").exists():
                _copy_folder(kept, run)  # an unfinished pretraining there is replaced by the kept one
                restored.append(scale.label)
    return restored


def _store_config(cfg: StudyConfig, store: Path) -> None:
    _bind_config(store, cfg, "holds pretrained models of another study config; move it away to pretrain afresh")


def _copy_folder(src: Path, dst: Path) -> None:
    """Copy a folder so that `dst` appears whole or not at all (copy beside it, then rename). Callers copy only
    onto a `dst` that is unfinished (no cost.json), so whatever is there is replaced."""
    tmp = dst.with_name(dst.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)


def has_finished_runs(out: str | Path) -> bool:
    """Whether the study folder holds a run record to report on (a damaged one counts: the report names it)."""
    return any(Path(out).glob("runs/*/result.json"))


def report_study(out: str | Path, threshold: float | None = None, acting: str = "planner") -> tuple[Path, str]:
    """Write report.html for a study folder; returns its path and the text summary for the terminal. `threshold`
    replaces the study's success threshold: the runs' curves are kept whole, so no run is redone for it.

    acting "prior" computes the KPIs from the policy prior's evaluations (measured beside the planner's at each
    one; training and its costs unchanged), into <out>/prior_acting/ so as not to replace the planner's report."""
    from crossover.study.kpi import summarise, with_prior_acting
    from crossover.study.provenance import load_provenance, machines_note, provenance_warnings
    from crossover.study.records import load_run_records
    from crossover.study.report import episode_noise_note, headlines, shared_machine_note, summary_table, write_report

    if acting not in ("planner", "prior"):
        raise CrossoverError(f"acting must be 'planner' or 'prior', not {acting!r}")
    out = Path(out)
    cfg = load_study_json(out)
    records = load_run_records(out)  # none is an error that says where it looked
    where, preface = out, []
    planned = len(_plan(cfg))
    if len(records) < planned:  # a study read part-way: say so before any figure
        preface.append(f"{len(records)} of the {planned} planned runs are finished, and every figure rests on those "
                       f"alone (`crossover status {out}` shows the others)")
    provenance = load_provenance(out, records)
    preface += [f"Warning: {line}" for line in provenance_warnings(records, provenance)]
    spread = machines_note(records, provenance)
    preface += [spread[0].upper() + spread[1:]] if spread else []
    if acting == "prior":
        records, left_out = with_prior_acting(records)
        if not records:
            raise CrossoverError(f"{out}: no finished run measured its policy prior at every evaluation")
        where = out / "prior_acting"
        where.mkdir(exist_ok=True)
        preface.append(f"Evaluated with the policy prior alone, without planning: {len(records)} runs"
                       + (f" ({len(left_out)} left out, begun before the prior was measured: {', '.join(left_out)})"
                          if left_out else ""))
    summary = summarise(records, cfg.threshold if threshold is None else threshold, cfg.budgets, cfg.eval_episodes)
    noise = episode_noise_note(summary, cfg.eval_episodes)
    preface += [noise] if noise else []
    path = write_report(where, summary, preface=preface, title=f"Crossover study: {out.name}"
                        + (", evaluated with the policy prior alone" if acting == "prior" else ""))
    shared = shared_machine_note(summary)
    text = (preface + [""] if preface else []) + headlines(summary) + ["", summary_table(summary)]
    return path, "\n".join(text + ([shared] if shared else []))


def load_study_json(out: str | Path) -> StudyConfig:
    """The config a study folder was started with (its study.json); errors name the folder or the file."""
    held = _read_study_json(Path(out))
    if held is None:
        raise CrossoverError(f"{out}: not a study folder (no study.json); run `crossover study` first")
    return study_config_from(held, Path(out) / "study.json")
