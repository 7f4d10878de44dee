"""A tiny crossover study end to end, for real: two source tasks, one target, minutes on 2 cores."""
import dataclasses
import fcntl
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from crossover.cli import main
from crossover.errors import CrossoverError
from crossover.version import CODE_VERSION, LEARNING_CODE, machine
from crossover.study.config import StudyConfig, load_study_config, same_study
from crossover.study.kpi import mean_success
from crossover.study.provenance import load_provenance, machines_note, provenance_warnings
from crossover.study.records import load_run_records
from crossover.study.run import (pretrain_scales, pretrained_weights_sha256, report_study, restore_pretrained,
                                 restore_run_records, run_study, save_pretrained)

TINY = dict(sources="reach-v3,drawer-close-v3", targets="button-press-topdown-v3",
            scales=[{"source_tasks": 2, "episodes_per_task": 3}], budgets=[0, 40], seeds=[0], demos=[0],
            threshold=0.5, collect_mix="expert:0.7,random:0.3", collect_workers=1, episode_length=20,
            pretrain_steps=10, eval_every=40, eval_episodes=1, seed_steps=20)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "tiny"
    run_study(StudyConfig(**TINY), out, progress=lambda _: None)
    return out


def test_runs_go_seed_by_seed_every_target_before_more_demos_scratch_next_to_pretrained():
    from crossover.study.run import _plan

    cfg = StudyConfig(**{**TINY, "targets": "button-press-topdown-v3,push-v3", "seeds": [0, 1], "demos": [0, 5]})
    order = [(seed, demos, target, "scratch" if scale is None else "pre") for seed, target, demos, scale
             in _plan(cfg).values()]
    assert order[:4] == [(0, 0, "button-press-topdown-v3", "scratch"), (0, 0, "button-press-topdown-v3", "pre"),
                         (0, 0, "push-v3", "scratch"), (0, 0, "push-v3", "pre")]
    assert order == sorted(order, key=lambda r: (r[0], r[1])) and len(set(order)) == 16


def test_study_runs_every_arm_and_records_costs(study_dir):
    records = {r.run_id: r for r in load_run_records(study_dir)}
    assert len(records) == 2
    pre = next(r for r in records.values() if r.arm == "pretrained")
    scratch = next(r for r in records.values() if r.arm == "scratch")
    assert [p.env_steps for p in pre.curve] == [0, 40] and [p.env_steps for p in scratch.curve] == [0, 40]
    assert pre.pretrain_cost.cpu_s > 0 and pre.pretrain_cost.env_steps == 2 * 3 * 20
    assert scratch.pretrain_cost is None and scratch.adapt_cost.env_steps == 40
    for r in (pre, scratch):  # evaluation time is kept apart, so the KPIs can leave it out of the cost
        assert 0 < r.adapt_cost.eval_cpu_s < r.adapt_cost.cpu_s and r.curve[-1].eval_wall_s > r.curve[0].eval_wall_s > 0
    cost = json.loads((study_dir / "pretrain/2x3/cost.json").read_text())
    assert cost["pretrain_cpu_s"] > 0 and cost["cpu_s"] > cost["pretrain_cpu_s"]  # collection is charged too
    made = {r: json.loads((study_dir / "runs" / r / "result.json").read_text())["provenance"] for r in records}
    assert made[pre.run_id]["pretrained_weights_sha256"] == pretrained_weights_sha256(study_dir)["2x3"]
    started = json.loads((study_dir / "runs" / pre.run_id / "summary.json").read_text())["init_weights_sha256"]
    assert started == made[pre.run_id]["pretrained_weights_sha256"]  # the digest the run recorded when it began
    assert made[scratch.run_id]["pretrained_weights_sha256"] is None
    assert made[pre.run_id]["code_version"] == made[scratch.run_id]["code_version"] == CODE_VERSION
    assert made[pre.run_id]["machine"] == made[scratch.run_id]["machine"] == machine()  # where each finished


def test_report_holds_the_figures_of_the_runs(study_dir):
    path, text = report_study(study_dir)
    html = path.read_text()
    for png in ("success_curves.png", "sample_efficiency.png", "break_even.png"):
        assert (study_dir / png).stat().st_size > 1000 and png in html
    assert "button-press-topdown-v3" in html and "button-press-topdown-v3" in text
    records = load_run_records(study_dir)
    final = {r.arm: r.curve[-1].success for r in records}
    assert f"{final['scratch']:.2f}" in text
    assert "Time spent evaluating is left out" in html
    assert "(best of 1 pretrained configuration; 1 seed)." in text and "planned runs" not in text


def test_a_report_of_a_study_part_way_says_how_many_runs_it_rests_on(study_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(study_dir, copy)
    (copy / "runs" / "button-press-topdown-v3__pre-2x3__demos0__seed0" / "result.json").unlink()
    path, text = report_study(copy)
    said = "1 of the 2 planned runs are finished, and every figure rests on those alone"
    assert text.startswith(said) and said in path.read_text()


def test_report_takes_another_threshold_without_rerunning(study_dir, capsys):
    path, text = report_study(study_dir, threshold=0.3)
    assert "steps to 0.30" in text and "success threshold 0.30" in path.read_text()
    assert main(["report", str(study_dir), "--threshold", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "threshold" in err and "1.5" in err


def test_report_can_take_the_kpis_from_the_prior_alone(study_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(study_dir, copy)
    for result in copy.glob("runs/*/result.json"):  # the prior's last evaluation made unlike the planner's
        data = json.loads(result.read_text())
        assert all(p["prior_success"] is not None for p in data["curve"])  # the runs measured it
        data["curve"][-1]["prior_success"] = 0.7
        result.write_text(json.dumps(data))
    planner_report = report_study(copy)[0].read_bytes()
    assert main(["report", str(copy), "--acting", "prior"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Evaluated with the policy prior alone, without planning: 2 runs\n")
    page = (copy / "prior_acting" / "report.html").read_text()
    assert "<h1>Crossover study: copy, evaluated with the policy prior alone</h1>" in page
    assert "without planning: 2 runs</p>" in page
    assert (copy / "report.html").read_bytes() == planner_report

    def success_at_largest_budget(text):  # the KPI table's row of each arm: success at 0 and 40 env steps
        rows = [line.split() for line in text.splitlines() if line.startswith("button-press-topdown-v3 ")]
        return {row[1]: float(row[6]) for row in rows}

    assert success_at_largest_budget(out) == {"scratch": 0.7, "pretrained": 0.7}, out
    planner = success_at_largest_budget(report_study(copy)[1])
    assert planner == {r.arm: r.curve[-1].success for r in load_run_records(copy)}
    assert planner != {"scratch": 0.7, "pretrained": 0.7}
    for result in copy.glob("runs/*/result.json"):  # runs from before the prior was measured: nothing to report
        result.write_text(result.read_text().replace('"prior_success"', '"unused"'))
    assert main(["report", str(copy), "--acting", "prior"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no finished run measured its policy prior" in err and str(copy) in err


def test_restart_skips_finished_runs_and_redoes_damaged_ones(study_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(study_dir, copy)
    damaged = next(iter(copy.glob("runs/*/result.json")))
    damaged.write_text("{broken")
    before = {p: p.stat().st_mtime_ns for p in copy.glob("runs/*/result.json")}
    said = []
    run_study(StudyConfig(**TINY), copy, progress=said.append)
    after = {p: p.stat().st_mtime_ns for p in copy.glob("runs/*/result.json")}
    redone = [p for p in before if after[p] != before[p]]
    assert redone == [damaged], "only the damaged run is redone"
    assert load_run_records(copy), "and its record is whole again"
    assert any(str(damaged) in line for line in said), "the damaged file is named"
    assert not any("pretraining scale" in line for line in said), "finished pretraining is not redone"


def test_damaged_checkpoints_are_named_and_redone_pretrained_ones_included(study_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(study_dir, copy)
    for r in copy.glob("runs/*/result.json"):
        r.unlink()  # unfinished again, each with its checkpoint
    scratch, pretrained = (next(copy.glob(f"runs/*__{arm}__*")) for arm in ("scratch", "pre-2x3"))
    (scratch / "checkpoint" / "model.safetensors").write_bytes(b"garbage")
    shutil.rmtree(pretrained)  # this run starts afresh, from the pretrained checkpoint...
    weights = copy / "pretrain" / "2x3" / "checkpoint" / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    weights.write_bytes(b"garbage")  # ...which is damaged: pretrained again (it is seeded: the same weights)
    said = []
    run_study(StudyConfig(**TINY), copy, progress=said.append)
    assert any(f"{scratch}/checkpoint/model.safetensors: damaged" in line and "rerunning" in line for line in said)
    assert any(f"{weights}: damaged" in line and "pretraining scale 2x3 again" in line for line in said)
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == digest
    assert len(list(copy.glob("runs/*/result.json"))) == len(list(study_dir.glob("runs/*/result.json")))
    # A damaged cost record of a finished scale: pretraining resumes from its (sound) checkpoint and records it.
    cost_file = copy / "pretrain" / "2x3" / "cost.json"
    cost = json.loads(cost_file.read_text())
    cost_file.write_text("{broken")
    shutil.rmtree(pretrained)
    said = []
    run_study(StudyConfig(**TINY), copy, progress=said.append)
    assert any(f"{cost_file}: damaged; pretraining scale 2x3 again" in line for line in said)
    assert json.loads(cost_file.read_text())["pretrain_cpu_s"] == pytest.approx(cost["pretrain_cpu_s"], rel=0.05)
    assert (pretrained / "result.json").exists()


def test_runs_held_by_another_process_are_left_to_it_and_max_runs_stops(study_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(study_dir, copy)
    results = sorted(copy.glob("runs/*/result.json"))
    for r in results:
        r.unlink()  # both runs unfinished again (their checkpoints are at the end, so redoing them is quick)
    held = results[0].parent.name
    said = []
    with open(copy / "locks" / f"run-{held}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another process running this run would
        finished = []
        done = run_study(StudyConfig(**TINY), copy, progress=said.append, on_finished=finished.append)
    assert [p.parent.name for p in done] == [results[1].parent.name] and finished == done
    assert "held by another process" in said[-1] and ": 1;" in said[-1]
    said.clear()
    assert run_study(StudyConfig(**TINY), copy, progress=said.append, max_runs=0) == [done[0]]
    assert "--max-runs" in said[-1] and not (copy / "runs" / held / "result.json").exists()


def test_status_tells_finished_running_stopped_and_unstarted_runs_apart(study_dir, tmp_path, capsys):
    from crossover.study.status import format_status, study_status

    done = study_status(study_dir)
    assert [r.state for r in done.runs] == ["finished", "finished"] and done.steps_left == 0
    assert "2 finished" in format_status(done) and "nothing left to run" in format_status(done)
    copy = tmp_path / "copy"
    shutil.copytree(study_dir, copy)
    scratch, pretrained = (next(copy.glob(f"runs/*__{arm}__*")) for arm in ("scratch", "pre-2x3"))
    for run in (scratch, pretrained):
        (run / "result.json").unlink()  # unfinished again, each with its checkpoint at env step 40
    with open(copy / "locks" / f"run-{pretrained.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another process running this run would
        runs = {r.run_id: r for r in study_status(copy).runs}
    assert runs[scratch.name].state == "stopped" and runs[pretrained.name].state == "running"
    assert runs[scratch.name].env_steps == 40 and runs[scratch.name].cpu_s > 0
    shutil.rmtree(scratch)
    status = study_status(copy)
    assert [r.state for r in status.runs] == ["not started", "stopped"] and status.steps_left == 40
    text = format_status(status)
    assert "1 stopped" in text and "1 not started" in text and pretrained.name in text and scratch.name not in text
    assert "no run has finished yet" in text
    (pretrained / "checkpoint" / "state.json").write_text('{"env_steps": null, "curve": []}')
    status = study_status(copy)
    assert [r.state for r in status.runs] == ["not started", "not started"]  # damaged: no progress, named
    assert "1 run with a damaged file" in format_status(status)
    assert f"  {pretrained / 'checkpoint' / 'state.json'}: field 'env_steps' must be int, got None" in format_status(status)
    (pretrained / "result.json").write_text("{damaged")
    (damage,) = [r.damaged for r in study_status(copy).runs if r.damaged]
    assert damage.startswith(f"{pretrained / 'result.json'}: ")
    held = json.loads((study_dir / "study.json").read_text())
    (copy / "study.json").write_text(json.dumps({**held, "budget": [0]}))  # from a newer Crossover, say
    with pytest.raises(CrossoverError, match=r"copy/study.json: unknown field 'budget'; known fields: budgets, "):
        study_status(copy)
    (copy / "study.json").write_text("{broken")
    for argv in (["status", str(copy)], ["status", str(tmp_path / "nowhere")], ["status", str(study_dir),
                                                                                  "--processes", "0"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
    assert main(["status", str(study_dir)]) == 0 and "2 finished" in capsys.readouterr().out


def test_records_restored_into_a_new_folder_are_not_redone(study_dir, tmp_path):
    # What a later session does with a benchmark's committed JSON: a new work tree, the finished runs put back.
    records = [r.to_dict() for r in load_run_records(study_dir)]
    fresh = tmp_path / "fresh"
    assert restore_run_records(StudyConfig(**TINY), fresh, records, "committed.json") == 2
    said = []
    done = run_study(StudyConfig(**TINY), fresh, progress=said.append)
    assert len(done) == 2 and all("finished earlier" in line for line in said)
    assert not (fresh / "data").exists() and not (fresh / "pretrain").exists()  # nothing collected or pretrained

    local = done[0]
    edited = json.loads(local.read_text())
    edited["adapt_cost"]["wall_s"] = 12345.0
    local.write_text(json.dumps(edited))
    done[1].write_text("{damaged")
    assert restore_run_records(StudyConfig(**TINY), fresh, records, "committed.json") == 1
    assert json.loads(local.read_text())["adapt_cost"]["wall_s"] == 12345.0, "a valid local record is kept"
    assert json.loads(done[1].read_text()) in records, "a damaged local record is replaced"

    # The committed JSON keeps provenance beside the runs: it goes back with them, also into a run restored before
    # it did, and a run finished here keeps its own.
    kept = {r["run_id"]: {"code_version": "abc123"} for r in records}
    again = tmp_path / "again"
    assert restore_run_records(StudyConfig(**TINY), again, records, "committed.json", kept) == 2
    assert load_provenance(again, load_run_records(again)) == kept
    for record in again.glob("runs/*/result.json"):
        record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "provenance"}))
    assert restore_run_records(StudyConfig(**TINY), again, records, "committed.json", kept) == 0
    assert load_provenance(again, load_run_records(again)) == kept
    restore_run_records(StudyConfig(**TINY), fresh, records, "committed.json", kept)
    assert "provenance" not in json.loads(local.read_text()), "a local record unlike the committed one is kept"
    own = tmp_path / "own"
    shutil.copytree(study_dir / "runs", own / "runs")
    shutil.copy(study_dir / "study.json", own)
    assert restore_run_records(StudyConfig(**TINY), own, records, "committed.json", kept) == 0
    assert {p["code_version"] for p in load_provenance(own, load_run_records(own)).values()} == {CODE_VERSION}
    with pytest.raises(CrossoverError, match="committed.json: provenance of run .* must be an object"):
        restore_run_records(StudyConfig(**TINY), tmp_path / "other", records, "committed.json",
                            {records[0]["run_id"]: "damaged"})

    bad = dict(records[0], curve=[{"env_steps": 0, "success": 2.0, "wall_s": 0, "cpu_s": 0}])
    with pytest.raises(CrossoverError, match=r"committed.json: runs\[0\].*curve\[0\]\.success"):
        restore_run_records(StudyConfig(**TINY), tmp_path / "other", [bad], "committed.json")
    stray = dict(records[0], run_id="../outside")
    with pytest.raises(CrossoverError, match="not a run of this study"):
        restore_run_records(StudyConfig(**TINY), tmp_path / "other", [stray], "committed.json")
    with pytest.raises(CrossoverError, match="another config"):
        restore_run_records(StudyConfig(**dict(TINY, threshold=0.9)), fresh, records, "committed.json")


def test_pretraining_again_gives_the_same_weights(study_dir, tmp_path):
    # A new work tree collects and pretrains again; seeded, they must give the model the committed runs started from.
    copy = tmp_path / "copy"
    shutil.copytree(study_dir, copy)
    for folder in ("data", "pretrain", "runs/button-press-topdown-v3__pre-2x3__demos0__seed0"):
        shutil.rmtree(copy / folder)
    run_study(StudyConfig(**TINY), copy, progress=lambda _: None)
    assert pretrained_weights_sha256(copy) == pretrained_weights_sha256(study_dir)
    assert list(pretrained_weights_sha256(copy)) == ["2x3"]


def test_pretraining_alone_makes_the_model_the_runs_use(study_dir, tmp_path):
    fresh = tmp_path / "fresh"
    assert pretrain_scales(StudyConfig(**TINY), fresh, progress=lambda _: None) == ["2x3"]
    assert pretrained_weights_sha256(fresh) == pretrained_weights_sha256(study_dir)
    assert not (fresh / "runs").exists()


def test_a_kept_pretrained_model_is_adapted_from_without_collecting_or_pretraining(study_dir, tmp_path):
    # What a later session does with a benchmark's committed pretrained models: adapt from the same weights.
    store = tmp_path / "store"
    assert save_pretrained(StudyConfig(**TINY), study_dir, store) == ["2x3"]
    assert save_pretrained(StudyConfig(**TINY), study_dir, store) == []  # kept once
    fresh = tmp_path / "fresh"
    (fresh / "pretrain" / "2x3").mkdir(parents=True)  # an unfinished pretraining, replaced by the kept one
    assert restore_pretrained(StudyConfig(**TINY), fresh, store) == ["2x3"]
    said = []
    run_study(StudyConfig(**TINY), fresh, progress=said.append, max_runs=2, keep_pretrained=tmp_path / "store2")
    assert len(load_run_records(fresh)) == 2
    assert any("kept the pretrained model of scale 2x3" in line for line in said)
    assert (tmp_path / "store2" / "2x3" / "checkpoint").is_dir()
    assert not (fresh / "data").exists() and not any("pretraining scale" in line for line in said)
    assert pretrained_weights_sha256(fresh) == pretrained_weights_sha256(study_dir)
    assert restore_pretrained(StudyConfig(**TINY), fresh, store) == []  # finished scales are left alone
    assert restore_pretrained(StudyConfig(**TINY), tmp_path / "other", tmp_path / "no-store") == []
    with pytest.raises(CrossoverError, match="another study config"):
        restore_pretrained(StudyConfig(**dict(TINY, threshold=0.9)), tmp_path / "other", store)
    (store / "study.json").write_text("{damaged")
    with pytest.raises(CrossoverError, match=r"store/study.json: not valid JSON"):
        restore_pretrained(StudyConfig(**TINY), tmp_path / "other", store)


def test_benchmark_json_holds_the_kpis_and_each_runs_provenance(study_dir, monkeypatch, benchmark_script):
    module = benchmark_script("crossover_ml45")
    written = {}
    monkeypatch.setattr(module, "write_result", lambda name, payload: written.update(payload))
    module._write_json(StudyConfig(**TINY), study_dir, "tiny")
    assert written["finished_runs"] == 2
    assert written["provenance"] == load_provenance(study_dir, load_run_records(study_dir))
    (row,) = written["comparisons"]  # the KPIs of the runs, with the goal judged from them
    records = {r.arm: r for r in load_run_records(study_dir)}
    assert row["target"] == "button-press-topdown-v3" and row["scale"] == "2x3" and row["seeds"] == 1
    assert row["success_scratch"]["40"] == records["scratch"].curve[-1].success
    assert row["success_pretrained"]["40"] == records["pretrained"].curve[-1].success
    assert row["goal"] in ("met", "missed", "undetermined") and json.dumps(written, allow_nan=False)
    line = module._goal_table(written["comparisons"]).splitlines()[2]
    assert line.startswith("button-press-topdown-v3") and line.endswith(row["goal"]) and "2x3" in line
    assert row["seeds_planned"] == 1 and "provisional" not in line
    final = f"{row['success_pretrained']['40']:.2f}/{row['success_scratch']['40']:.2f}"
    mean = "/".join(f"{mean_success(records[arm].curve, 40):.2f}" for arm in ("pretrained", "scratch"))
    assert final in line and f"{final} {mean:>11}" in line
    part_way = dict(row, seeds_planned=3, goal="met")  # the same comparison in a study that plans 3 seeds
    assert module._goal_table([part_way]).splitlines()[2].endswith("met (provisional: 1 of 3 seeds)")


def test_unlike_runs_are_named_in_the_report(study_dir, tmp_path):
    # Runs compared with one another trained by different learning code or ran on different CPUs, runs of one
    # scale started from different weights: the provenance each result.json keeps says so (a run that recorded
    # nothing is not checked on it).
    copy = tmp_path / "copy"
    shutil.copytree(study_dir, copy)
    records = load_run_records(copy)
    provenance = load_provenance(copy, records)
    pre_record = next(r for r in records if r.arm == "pretrained")
    pre, scratch = pre_record.run_id, next(r.run_id for r in records if r.arm == "scratch")
    assert [s["learning_code"] for s in provenance[pre]["code"]] == [LEARNING_CODE]
    assert provenance_warnings(records, provenance) == [] and machines_note(records, provenance) is None
    text = report_study(copy)[1]
    assert "Warning" not in text and "more than one CPU" not in text

    provenance[scratch]["code"] = [{"code_version": "abc123", "learning_code": "0" * 16, "from_env_step": 0}]
    (warning,) = provenance_warnings(records, provenance)
    assert pre in warning and scratch in warning and "different learning code" in warning
    del provenance[scratch]["machine"]
    assert machines_note(records, provenance) == f"the runs ran on more than one CPU: {machine()['cpu']} (1), " \
        "not recorded (1)"
    assert len(provenance_warnings(records, provenance)) == 1
    provenance[scratch]["machine"] = {"cpu": "Another CPU"}
    _, cpus = provenance_warnings(records, provenance)
    assert pre in cpus and scratch in cpus and "ran on different CPUs" in cpus
    both = dict(provenance[pre], pretrained_weights_sha256="0" * 64)
    assert "started from 2 different pretrained models" in provenance_warnings(
        [pre_record, dataclasses.replace(pre_record, run_id="other")], {pre: provenance[pre], "other": both})[0]

    result = copy / "runs" / scratch / "result.json"
    result.write_text(json.dumps(dict(json.loads(result.read_text()), provenance=provenance[scratch])))
    path, text = report_study(copy)
    assert "Warning: " + cpus in text and "ran on different CPUs" in path.read_text()
    assert f"The runs ran on more than one CPU: {machine()['cpu']} (1), Another CPU (1)" in text


@pytest.mark.parametrize("value, bound, verdict", [
    (12.0, "exact", "met"), (9.9, "exact", "missed"), (10.0, "exact", "met"), ("inf", "exact", "met"),
    (4.0, "lower_bound", "undetermined"), (11.0, "lower_bound", "met"), ("inf", "lower_bound", "met"),
    (4.0, "upper_bound", "missed"), (11.0, "upper_bound", "undetermined"), (None, "undetermined", "undetermined"),
])
def test_benchmark_judges_the_10x_goal_from_the_side_a_bound_lies_on(value, bound, verdict, benchmark_script):
    assert benchmark_script("crossover_ml45").goal_verdict({"value": value, "bound": bound}) == verdict


def test_damaged_committed_benchmark_json_is_a_one_line_error(tmp_path, benchmark_script):
    module = benchmark_script("crossover_ml45")
    assert module._read_committed(tmp_path / "absent.json") == {}
    for text, expected in (("{broken", "not valid JSON"), ('{"runs": 3}', "'runs' list"),
                           ('{"config": "x"}', "'config' and 'provenance' objects"),
                           ('{"provenance": []}', "'config' and 'provenance' objects")):
        committed = tmp_path / "crossover_x.json"
        committed.write_text(text)
        with pytest.raises(SystemExit) as exit_info:
            module._read_committed(committed)
        message = str(exit_info.value.code)
        assert len(message.splitlines()) == 1 and str(committed) in message and expected in message


def test_study_with_other_config_in_same_folder_is_refused(study_dir, capsys):
    cfg = dict(TINY, threshold=0.9)
    path = study_dir.parent / "other.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    assert main(["study", "--config", str(path), "--out", str(study_dir)]) == 2
    assert "another config" in capsys.readouterr().err


def test_a_study_begun_before_a_config_field_existed_is_the_study_it_was(tmp_path):
    # Studies saved before `pretrain_bc_coef` existed pretrained without behaviour cloning: they match a config
    # with 0.0, not today's default of 2.5.
    old_behaviour, today = StudyConfig(**TINY, pretrain_bc_coef=0.0), StudyConfig(**TINY)
    held = old_behaviour.to_dict()
    del held["pretrain_bc_coef"]
    assert same_study(held, old_behaviour) and not same_study(held, today)
    assert not same_study({k: v for k, v in held.items() if k != "threads"}, old_behaviour)  # not an added field
    assert not same_study({**held, "unknown_field": 1}, old_behaviour)
    (tmp_path / "study.json").write_text(json.dumps(held))
    with pytest.raises(CrossoverError, match="another config"):
        restore_run_records(today, tmp_path, [], "none")
    assert restore_run_records(old_behaviour, tmp_path, [], "none") == 0  # bound without complaint
    assert json.loads((tmp_path / "study.json").read_text())["pretrain_bc_coef"] == 0.0


def test_a_damaged_collection_cost_is_named(tmp_path):
    cost_file = tmp_path / "data" / "cost.json"
    cost_file.parent.mkdir(parents=True)
    cost_file.write_text("{broken")
    with pytest.raises(CrossoverError, match=r"data/cost.json: damaged, so the collection's cost is unknown"):
        pretrain_scales(StudyConfig(**TINY), tmp_path, progress=lambda _: None)


def test_bad_study_configs_are_one_line_errors(tmp_path, capsys):
    cases = {
        "unknown.yaml": "sources: ML45-train\ntargets: ML45-test\nscalez: 1\n",
        "overlap.yaml": "sources: ML45-train\ntargets: reach-v3\nscales: [{source_tasks: 2, episodes_per_task: 3}]\nbudgets: [0]\n",
        "broken.yaml": "sources: [unclosed\n",
        "badtask.yaml": "sources: reach-v9\ntargets: ML45-test\nscales: []\nbudgets: [0]\n",
        "offgrid.yaml": "sources: ML45-train\ntargets: ML45-test\nscales: [{source_tasks: 2, episodes_per_task: 3}]\n"
                        "budgets: [0, 2500]\neval_every: 1000\n",
        "oddeval.yaml": "sources: ML45-train\ntargets: ML45-test\nscales: [{source_tasks: 2, episodes_per_task: 3}]\n"
                        "budgets: [0, 2500]\neval_every: 2500\n",
        "twice.yaml": "sources: ML45-train\ntargets: ML45-test\nscales: [{source_tasks: 2, episodes_per_task: 3}]\n"
                      "budgets: [0]\nseeds: [0, 1, 0]\n",
        "negbc.yaml": "sources: ML45-train\ntargets: ML45-test\nscales: [{source_tasks: 2, episodes_per_task: 3}]\n"
                      "budgets: [0]\npretrain_bc_coef: -1\n",
        "listed.yaml": "sources: [reach-v3, push-v3]\ntargets: ML45-test\nscales: []\nbudgets: [0]\n",
        "halfscale.yaml": "sources: ML45-train\ntargets: ML45-test\nscales: [{source_tasks: 2.5, episodes_per_task: 3}]\n"
                          "budgets: [0]\n",
        "negseed.yaml": "sources: ML45-train\ntargets: ML45-test\nscales: [{source_tasks: 2, episodes_per_task: 3}]\n"
                        "budgets: [0]\nseed_steps: -5\n",
        "minusseed.yaml": "sources: ML45-train\ntargets: ML45-test\nscales: [{source_tasks: 2, episodes_per_task: 3}]\n"
                          "budgets: [0]\nseeds: [-1]\n",
        "preset.yaml": "sources: ML45-train\ntargets: ML45-test\nscales: [{source_tasks: 2, episodes_per_task: 3}]\n"
                       "budgets: [0]\npreset: 10m\n",
        "mix.yaml": "sources: ML45-train\ntargets: ML45-test\nscales: [{source_tasks: 2, episodes_per_task: 3}]\n"
                    "budgets: [0]\ncollect_mix: bogus:1\n",
        "nanbc.yaml": "sources: ML45-train\ntargets: ML45-test\nscales: [{source_tasks: 2, episodes_per_task: 3}]\n"
                      "budgets: [0]\npretrain_bc_coef: .nan\n",
        "binary.yaml": "\udcff",
    }
    expected = {"unknown.yaml": "scalez", "overlap.yaml": "reach-v3", "broken.yaml": "not valid YAML",
                "badtask.yaml": "reach-v3", "offgrid.yaml": "budgets [2500] are not multiples of eval_every (1000)",
                "oddeval.yaml": "eval_every (2500) must be a multiple of episode_length (200)",
                "twice.yaml": "seeds: [0, 1, 0] repeats a value", "negbc.yaml": "pretrain_bc_coef must be a finite number >= 0",
                "listed.yaml": "sources: give one comma-separated string", "halfscale.yaml": "must be integers",
                "negseed.yaml": "seed_steps must be an integer >= 0", "minusseed.yaml": "seeds: -1 is not an integer >= 0",
                "preset.yaml": "preset: '10m' is not a world-model size", "mix.yaml": "collect_mix: unknown policy",
                "nanbc.yaml": "pretrain_bc_coef must be a finite number", "binary.yaml": "cannot be read as a YAML",
                "folder.yaml": "cannot be read as a YAML"}
    (tmp_path / "folder.yaml").mkdir()
    for name, text in [*cases.items(), ("folder.yaml", None)]:
        if text is not None:
            (tmp_path / name).write_bytes(text.encode("utf-8", "surrogateescape"))
        assert main(["study", "--config", str(tmp_path / name), "--out", str(tmp_path / "s")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and name in err and expected[name] in err, err
    assert main(["study", "--config", "demo", "--out", str(tmp_path / "s"), "--max-runs", "-1"]) == 2
    assert "--max-runs" in capsys.readouterr().err
    assert main(["study", "--config", "demo", "--out", str(tmp_path / "new"), "--max-runs", "0"]) == 0
    assert "no run of" in capsys.readouterr().out and not (tmp_path / "new" / "data").exists()  # nothing collected
    assert main(["study", "--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "s")]) == 2
    assert "demo" in capsys.readouterr().err  # the error lists the built-in presets


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("benchmarks/configs/*.yaml")), ids=lambda p: p.name)
def test_shipped_study_configs_load(path):
    cfg = load_study_config(str(path))
    assert cfg.target_names and not set(cfg.target_names) & set(cfg.source_names)


def test_a_run_resumed_on_another_cpu_is_counted_as_both(study_dir):
    records = load_run_records(study_dir)
    provenance = load_provenance(study_dir, records)
    pre, scratch = (next(r.run_id for r in records if r.arm == arm) for arm in ("pretrained", "scratch"))
    cpu, (first,) = machine()["cpu"], provenance[pre]["code"]
    assert (first["cpu"], first["from_env_step"], first["from_cpu_s"]) == (cpu, 0, 0.0)
    # Its first stretch on another CPU, the rest here: the stretches say so, and the note counts it apart.
    resumed = dict(provenance[scratch], code=[dict(first, cpu="Another CPU"), dict(first, from_env_step=40)])
    note = machines_note(records, {pre: provenance[pre], scratch: resumed})
    assert note.startswith("the runs ran on more than one CPU: ") and f"Another CPU + {cpu} (1)" in note
    assert f"{cpu} (1)" in note.replace(f"Another CPU + {cpu} (1)", "")
    assert "ran on different CPUs" in provenance_warnings(records, {pre: provenance[pre], scratch: resumed})[0]
