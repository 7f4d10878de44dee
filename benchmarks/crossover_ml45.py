"""The long ML45 crossover study (or another study config), run in resumable pieces; prints the KPI table.

The study (benchmarks/configs/ml45.yaml): pretrain on ML45-train, adapt to each ML45-test task, 3 seeds, budgets
0..20k env steps, with and without 5 demos; the finished runs go to benchmarks/results/crossover_ml45.json.

Goal (issue 4): the pretrained agent reaches 80% success on ML45-test tasks with >= 10x fewer env steps than
scratch (anchors: TD-MPC2 reports ~2x the from-scratch score after 20k steps; WPT needs ~15-30% of the samples).

This is many CPU-hours on 2 cores: it runs in resumable pieces. Each invocation continues the study folder (finished
runs are skipped, a killed run resumes from its checkpoint); `--max-runs N` stops after N more adaptation runs so
a session can commit its piece. Two invocations on the same --out split the runs between them (1 torch thread
each gets more from 2 cores than one process on 2 threads).

A new work tree (a later session) starts from what earlier sessions committed:
- the finished runs in the JSON are put back into the study folder and not redone, and the JSON keeps them beside
  the new ones;
- each finished pretraining scale is kept in results/pretrained/<config name>/<scale>/ (checkpoint, configs,
  metrics, cost; ~18 MB for the 1m preset, weights and Adam moments) as soon as it finishes, and put back too, so
  no session collects or pretrains again and every run of a scale adapts from the same weights. Commit that folder
  with the JSON.
The JSON's "provenance" keeps, per run, the code version that made it, the SHA-256 of the pretrained weights it
started from, how it used its demos (online.DEMO_METHOD) and, for runs begun or resumed from 2026-11-27 on, which
learning code trained each stretch of it ("code") and, for runs finished from 2026-11-28 on (earlier ones: below),
the machine it finished on ("machine"; the JSON's top-level "machine" is only the one that last wrote it); a
restored run gets its provenance back in its result.json. The machine of each run finished before 2026-11-28 was
filled in afterwards from the JSON's history: the top-level "machine" of the first commit of this JSON that held
the run, written by the process that had just finished it ("source" in its machine names that commit). The KPI
table (crossover.study.provenance, as in `crossover report`) warns if the runs of one scale started from different
models, the runs with demos used different demo methods, or runs compared with one another (one target, demos and
seed) were trained by different learning code or ran on different CPUs, and notes how many runs ran on each
CPU when there is more than one. The JSON is rewritten from whatever runs are finished after each run this
process finishes (so a session that stops without warning loses only the runs in progress) and at the end;
`--max-runs 0` starts no run: it restores, then rewrites report.html and the JSON (if any run is finished).
`--config` runs another study the same way (e.g. configs/reach_pilot.yaml; its JSON is
results/crossover_reach_pilot.json).

`crossover status studies/ml45` shows which runs are finished, running or stopped part-way, and estimates the
cost of the rest from the finished runs.

`--pretrain-only` collects and pretrains (and keeps the models) without starting adaptation runs.

Usage: python benchmarks/crossover_ml45.py [--config FILE] [--out DIR] [--max-runs N] [--pretrain-only]
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import arg_parser, RESULTS, write_result, run_benchmark  # noqa: E402

from crossover.errors import CrossoverError  # noqa: E402
from crossover.locks import claim  # noqa: E402
from crossover.study.config import load_study_config, same_study  # noqa: E402
from crossover.study.kpi import comparison_rows, summarise  # noqa: E402
from crossover.study.provenance import load_provenance  # noqa: E402
from crossover.study.records import load_run_records  # noqa: E402
from crossover.study.run import (has_finished_runs, pretrain_scales, report_study, restore_pretrained,  # noqa: E402
                                 restore_run_records, run_study, save_pretrained)

CONFIGS = Path(__file__).resolve().parent / "configs"
GOAL_RATIO = 10.0  # issue 4: the pretrained agent reaches the threshold with >= 10x fewer env steps than scratch


def main() -> None:
    p = arg_parser(__doc__)
    p.add_argument("--config", default=str(CONFIGS / "ml45.yaml"), help="study config (default: configs/ml45.yaml)")
    p.add_argument("--out", default=None, help="study folder (default: studies/<config name>)")
    p.add_argument("--max-runs", type=int, default=None, help="stop after starting this many more adaptation runs")
    p.add_argument("--pretrain-only", action="store_true",
                   help="collect and pretrain every scale (and keep the models), but start no adaptation run")
    args = p.parse_args()
    try:
        cfg = load_study_config(args.config)
    except CrossoverError as e:
        sys.exit(f"error: {e}")
    name = Path(args.config).stem
    committed_file = RESULTS / f"crossover_{name}.json"
    committed = _read_committed(committed_file)
    if committed and not same_study(committed.get("config") or {}, cfg):
        sys.exit(f"error: {committed_file} holds runs of another version of {args.config}; move it away to start "
                 f"this config's study afresh")
    store = RESULTS / "pretrained" / name
    out = Path(args.out or f"studies/{name}")
    try:
        restored = restore_run_records(cfg, out, committed.get("runs", []), str(committed_file),
                                       committed.get("provenance"))
        models = restore_pretrained(cfg, out, store)
        if restored:
            print(f"restored {restored} finished runs from {committed_file}", flush=True)
        if models:
            print(f"restored the pretrained models of scales {', '.join(models)} from {store}", flush=True)
        if args.pretrain_only:
            done = pretrain_scales(cfg, out, progress=lambda line: print(line, flush=True))
            kept = save_pretrained(cfg, out, store)
            print(f"pretrained scales: {', '.join(done) or 'none'}; kept in {store}: {', '.join(kept) or 'nothing new'}")
            return
        # The JSON is rewritten as each run finishes, so a session that ends without warning loses no finished run.
        run_study(cfg, out, progress=lambda line: print(line, flush=True), max_runs=args.max_runs,
                  keep_pretrained=store, on_finished=lambda _: _write_json_or_warn(cfg, out, name))
        kept = save_pretrained(cfg, out, store)  # scales pretrained before the store existed
        if kept:
            print(f"kept the pretrained models of scales {', '.join(kept)} in {store}", flush=True)
        if not has_finished_runs(out):
            print("no finished runs yet")
            return
        _, text = report_study(out)  # report.html in the study folder, and the KPI table
        print(text)
        result = _write_json(cfg, out, name)
        print(_goal_table(result["comparisons"]))
    except CrossoverError as e:
        sys.exit(f"error: {e}")


def _write_json_or_warn(cfg, out: Path, name: str) -> None:
    """After each run: a damaged record of another run (which the study redoes when it reaches it) must not stop
    this process; the JSON then waits for the next rewrite."""
    try:
        _write_json(cfg, out, name)
    except CrossoverError as e:
        print(f"warning: {e}; {RESULTS / f'crossover_{name}.json'} not rewritten this time", flush=True)


def _write_json(cfg, out: Path, name: str) -> dict:
    """Rewrite results/crossover_<name>.json from the finished runs in the study folder, with their provenance.
    One process at a time: two finishing runs at once would otherwise each write the folder as it saw it, and
    the one read first could land last, without the other's run."""
    with claim(out / "locks" / "benchmark-json.lock", wait=True):
        records = load_run_records(out)
        # A verdict on fewer seeds than the study plans is provisional: one 10-episode evaluation pair can decide it.
        comparisons = [{**row, "goal": goal_verdict(row["ratio"]), "seeds_planned": len(cfg.seeds)}
                       for row in comparison_rows(summarise(records, cfg.threshold, cfg.budgets, cfg.eval_episodes))]
        result = {"config": cfg.to_dict(), "study": str(out), "finished_runs": len(records),
                  "goal": f">= {GOAL_RATIO:g}x fewer env steps than scratch to {cfg.threshold:.0%} success",
                  "comparisons": comparisons, "runs": [r.to_dict() for r in records],
                  "provenance": load_provenance(out, records)}
        write_result(f"crossover_{name}", result)
        return result


def goal_verdict(ratio: dict) -> str:
    """Whether a comparison meets the goal ratio: 'met', 'missed' or 'undetermined', minding which side of the
    true ratio a censored figure lies on (a lower bound can only prove it met, an upper bound only missed)."""
    value, bound = ratio["value"], ratio["bound"]
    if value is None or bound == "undetermined":
        return "undetermined"
    value = math.inf if value == "inf" else value
    if bound == "exact":
        return "met" if value >= GOAL_RATIO else "missed"
    if bound == "lower_bound":
        return "met" if value >= GOAL_RATIO else "undetermined"
    return "missed" if value < GOAL_RATIO else "undetermined"


def _goal_table(comparisons: list[dict]) -> str:
    """The goal, task by task: one line per pretrained configuration against scratch at the same demos, with both
    arms' success at the largest budget (a threshold reached early need not hold), their mean success over the
    whole budget (every evaluation counts) and the seeds it rests on."""
    signs = {"exact": "", "lower_bound": ">= ", "upper_bound": "<= "}

    def pair(pretrained: float | None, scratch: float | None) -> str:
        return "/".join("-" if x is None else f"{x:.2f}" for x in (pretrained, scratch))

    lines = [f"goal: pretrained reaches the threshold with >= {GOAL_RATIO:g}x fewer env steps than scratch "
             f"(final: success at the largest budget; mean: mean success over the budget; pretrained / scratch)",
             f"{'target':<26} {'demos':>5} {'scale':>7} {'seeds':>5} {'ratio':>12} {'final':>11} {'mean':>11}  goal"]
    for c in comparisons:
        value = c["ratio"]["value"]
        shown = "n/a" if value is None else signs.get(c["ratio"]["bound"], "") + (
            "inf" if value == "inf" else f"{value:.2f}x")
        last = max(c["success_pretrained"], key=int, default=None)
        final = "-" if last is None else pair(c["success_pretrained"][last], c["success_scratch"][last])
        mean = pair(c["mean_success"]["pretrained"], c["mean_success"]["scratch"])
        planned = c.get("seeds_planned", c["seeds"])
        verdict = c["goal"] + (f" (provisional: {c['seeds']} of {planned} seeds)" if c["seeds"] < planned else "")
        lines.append(f"{c['target']:<26} {c['demos']:>5} {c['scale']:>7} {c['seeds']:>5} {shown:>12} {final:>11} "
                     f"{mean:>11}  {verdict}")
    return "\n".join(lines)


def _read_committed(path: Path) -> dict:
    """The benchmark's committed JSON, {} if there is none yet; a damaged one is a one-line error."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        sys.exit(f"error: {path}: not valid JSON ({e.msg} at line {e.lineno}); restore it from git")
    if (not isinstance(data, dict) or not isinstance(data.get("runs", []), list)
            or not all(isinstance(data.get(key, {}), dict) for key in ("config", "provenance"))):
        sys.exit(f"error: {path}: expected an object with a 'runs' list and 'config' and 'provenance' objects; "
                 f"restore it from git")
    return data


if __name__ == "__main__":
    run_benchmark(main)
