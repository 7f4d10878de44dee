"""The study report: files exist, the figures are referenced, and hand-computed KPIs appear in HTML and text."""

import json

import pytest

from crossover.errors import CrossoverError
from crossover.study.kpi import (comparison_rows, SampleEfficiency, SeedStat, sample_efficiency_ratio, summarise,
                                 with_prior_acting)
from crossover.study.records import PretrainScale, load_run_records
from crossover.study.report import (
    BREAK_EVEN_FIGURE,
    EFFICIENCY_FIGURE,
    SUCCESS_FIGURE,
    _ratio_phrase,
    episode_noise_note,
    headlines,
    shared_machine_note,
    summary_table,
    write_report,
)

S = {"source_tasks": 2, "episodes_per_task": 10, "label": "S"}


def write_run(study_dir, run_id, arm, seed, points, target, scale=None, demos=0, pretrain=None):
    """Write runs/<run_id>/result.json; points are (env_steps, success, wall_s, cpu_s), the last is the run cost."""
    last = points[-1]
    data = {
        "run_id": run_id, "target": target, "arm": arm, "pretrain_scale": scale, "demos": demos, "seed": seed,
        "curve": [{"env_steps": s, "success": p, "wall_s": w, "cpu_s": c} for s, p, w, c in points],
        "adapt_cost": {"env_steps": last[0], "wall_s": last[2], "cpu_s": last[3], "demos": demos},
        "pretrain_cost": pretrain,
    }
    path = study_dir / "runs" / run_id / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))


@pytest.fixture
def study_dir(tmp_path):
    cost = {"wall_s": 825.0, "cpu_s": 1000.0, "env_steps": 20000}
    lock, drawer = "door-lock-v3", "drawer-open-v3"
    write_run(tmp_path, "lock-scratch-0", "scratch", 0, [(0, 0.0, 0, 0), (10000, 0.2, 100, 200),
              (20000, 0.5, 200, 400), (30000, 0.8, 300, 600), (40000, 0.9, 400, 800)], lock)
    write_run(tmp_path, "lock-scratch-1", "scratch", 1, [(0, 0.0, 0, 0), (10000, 0.4, 100, 200),
              (20000, 0.7, 200, 400), (30000, 0.7, 300, 600), (40000, 0.8, 400, 800)], lock)
    write_run(tmp_path, "lock-S-0", "pretrained", 0, [(0, 0.1, 0, 0), (10000, 0.8, 50, 100), (20000, 0.9, 100, 200)],
              lock, scale=S, pretrain=cost)
    write_run(tmp_path, "lock-S-1", "pretrained", 1, [(0, 0.2, 0, 0), (10000, 0.6, 50, 100), (20000, 0.8, 100, 200)],
              lock, scale=S, pretrain=cost)
    write_run(tmp_path, "lock-scratch-demos-0", "scratch", 0, [(0, 0.0, 0, 0), (10000, 0.5, 200, 400),
              (20000, 0.85, 400, 800), (30000, 0.9, 600, 1200)], lock, demos=10)
    write_run(tmp_path, "lock-S-demos-0", "pretrained", 0, [(0, 0.3, 0, 0), (10000, 0.9, 40, 80)],
              lock, scale=S, demos=10, pretrain=cost)
    # drawer: scratch never reaches 0.8 within its 20k-step budget (censored)
    write_run(tmp_path, "drawer-scratch-0", "scratch", 0, [(0, 0.0, 0, 0), (10000, 0.1, 100, 200),
              (20000, 0.3, 250, 500)], drawer)
    write_run(tmp_path, "drawer-S-0", "pretrained", 0, [(0, 0.0, 0, 0), (10000, 0.9, 85, 100),
              (20000, 0.95, 170, 200)], drawer, scale=S, pretrain=cost)
    return tmp_path


def test_report_files_and_hand_computed_numbers(study_dir):
    records = load_run_records(study_dir)
    summary = summarise(records, threshold=0.8, budgets=[10000, 20000])
    report = write_report(study_dir, summary)

    assert report == study_dir / "report.html"
    for name in (SUCCESS_FIGURE, EFFICIENCY_FIGURE, BREAK_EVEN_FIGURE):
        assert (study_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(study_dir.glob(".*.tmp"))  # atomic writes leave no temp files
    page = report.read_text()
    for name in (SUCCESS_FIGURE, EFFICIENCY_FIGURE, BREAK_EVEN_FIGURE):
        assert f'src="{name}"' in page
    assert "<script" not in page

    table = summary_table(summary)
    # door-lock: scratch 35000 steps vs S 15000 -> 2.33x; N* cpu = 1000 / (700 - 150) = 1.82; wall 825 / (350 - 75) = 3
    # drawer: scratch censored at 20000 -> ratio >= 20000 / 10000; N* cpu <= 1000 / (500 - 100) = 2.5
    for text in ("2.33x", "35,000", "15,000", "1.82", "3.00", "> max budget (20,000)", ">= 2.00x", "<= 2.50",
                 "0.30", "0.60"):
        assert text in table, text
        assert text.replace(">", "&gt;").replace("<", "&lt;") in page, text
    # scratch success at 10k over seeds 0.2, 0.4: CI half-width 12.706 * 0.1, [-0.97, 1.57] clipped to [0, 1];
    # its steps to 0.8 over 30,000 and 40,000: 35,000 +- 12.706 * 5,000, clipped below at 0
    assert "0.30 <span class=\"ci\">[0.00, 1.00]</span>" in page
    assert "35,000 <span class=\"ci\">[0, 98,530]</span>" in page
    # door-lock's lead over scratch at 10k, seed by seed: 0.8 - 0.2, 0.6 - 0.4 -> +0.40, 12.706 * 0.2 either side;
    # drawer's rests on one seed. Neither is a clear crossover.
    crossover = page.split("<h2>Crossover along pretraining scale</h2>")[1].split("<h2>")[0]
    assert 'S: +0.40 <span class="ci">[-1.00, +1.00]</span>' in crossover and "S: +0.80 (1 seed)" in crossover
    assert '<td class="l">S</td><td class="l">none</td></tr>' in crossover and '">S</td></tr>' not in crossover
    # Mean success over 0-20,000 (trapezoids): drawer scratch (0.05 + 0.2) / 2 = 0.125, S (0.45 + 0.925) / 2 =
    # 0.6875, a lead of +0.56 on one seed.
    efficiency = page.split("<h2>Sample efficiency")[1].split("<h2>")[0]
    assert "<td>0.69</td><td>+0.56 (1 seed)</td>" in efficiency
    assert "mean 0-20,000" in table.splitlines()[0]


def test_headline_states_n_star_and_ratio_from_data(study_dir):
    summary = summarise(load_run_records(study_dir), threshold=0.8, budgets=[10000, 20000])
    lock, drawer = headlines(summary)
    # S with 10 demos against scratch with 10 demos: 800 cpu / 400 wall per task vs 80 / 40 -> N* = 1000/720 =
    # 1.39 and 825/360 = 2.29, ahead of S with 0 demos (1.82); steps 20000 / 10000.
    assert "door-lock-v3" in lock and "adapting with 10 demos" in lock and "N* = 1.39 new tasks in CPU time" in lock
    # mean success over 0-20,000: S with demos 0.3 x 0.25 + 0.9 x 0.75 (flat from 10k); scratch with demos
    # (0.25 + 0.675) / 2
    assert "over 0-20,000 env steps its success averages 75% against 46% from scratch" in lock
    assert "N* = 2.29 new tasks in wall-clock time" in lock and "2.00x fewer env steps" in lock
    assert "N* <= 2.50 new tasks in CPU time" in drawer and "at least 2.00x fewer" in drawer
    page = write_report(study_dir, summary).read_text()
    assert "N* = 1.39 new tasks in CPU time" in page.split("<h2>")[0]  # at the top, before the first section


def test_headline_says_final_success_when_neither_arm_reaches_the_threshold(tmp_path):
    # Both arms censored: no ratio and no N*, but the success at the largest budget still tells them apart; the
    # better of two scales at that budget is the one named, although the larger scale would win a tie.
    big = {"source_tasks": 4, "episodes_per_task": 10, "label": "B"}
    cost = {"wall_s": 100.0, "cpu_s": 100.0, "env_steps": 2000}
    write_run(tmp_path, "scratch", "scratch", 0, [(0, 0.0, 0, 0), (1000, 0.0, 10, 10), (2000, 0.1, 20, 20)], "reach-v3")
    write_run(tmp_path, "small", "pretrained", 0, [(0, 0.0, 0, 0), (1000, 0.2, 10, 10), (2000, 0.4, 20, 20)],
              "reach-v3", scale=S, pretrain=cost)
    write_run(tmp_path, "big", "pretrained", 0, [(0, 0.0, 0, 0), (1000, 0.3, 10, 10), (2000, 0.3, 20, 20)],
              "reach-v3", scale=big, pretrain=cost)
    (line,) = headlines(summarise(load_run_records(tmp_path), threshold=0.8, budgets=[1000, 2000]))
    assert "undetermined" in line and "pretraining on S (2 tasks x 10 episodes)" in line, line
    assert "at the largest budget (2,000 env steps) it succeeds 40% of the time against 10% from scratch" in line


def test_the_policy_prior_alone_is_shown_beside_the_planner_over_the_runs_that_measured_it(tmp_path):
    cost = {"wall_s": 100.0, "cpu_s": 100.0, "env_steps": 2000}
    write_run(tmp_path, "scratch", "scratch", 0, [(0, 0.0, 0, 0), (2000, 0.1, 20, 20)], "reach-v3")  # before probes
    write_run(tmp_path, "pre0", "pretrained", 0, [(0, 0.0, 0, 0), (2000, 0.2, 20, 20)], "reach-v3", scale=S,
              pretrain=cost)
    write_run(tmp_path, "pre1", "pretrained", 1, [(0, 0.0, 0, 0), (2000, 0.4, 20, 20)], "reach-v3", scale=S,
              pretrain=cost)
    for run, priors in (("pre0", [0.5, 0.9]), ("pre1", [0.3, 0.7])):  # the prior above the planner: 0.8 vs 0.3
        f = tmp_path / "runs" / run / "result.json"
        data = json.loads(f.read_text())
        for point, prior in zip(data["curve"], priors):
            point["prior_success"] = prior
        f.write_text(json.dumps(data))
    summary = summarise(load_run_records(tmp_path), threshold=0.8, budgets=[0, 2000])
    header, _, scratch_row, pre_row = summary_table(summary).splitlines()
    assert header.split()[-1] == "alone@2,000" and scratch_row.split()[-1] == "-" and pre_row.split()[-1] == "0.80"
    assert pre_row.split()[5:7] == ["0.00", "0.30"]  # the planner's success is still the KPI
    page = write_report(tmp_path, summary).read_text()
    prior_table = page.split("The policy prior alone")[1].split("</table>")[0]
    assert "0.40" in prior_table and "0.80" in prior_table
    # A run that did not measure it is left out, and the table says over how many seeds.
    (tmp_path / "runs" / "pre1" / "result.json").write_text(
        (tmp_path / "runs" / "pre1" / "result.json").read_text().replace('"prior_success"', '"unused"'))
    summary = summarise(load_run_records(tmp_path), threshold=0.8, budgets=[0, 2000])
    assert summary_table(summary).splitlines()[3].endswith("0.90 (1 seed)")
    # Evaluated with the prior alone: its success in place of the planner's, over the runs that measured it.
    kept, left_out = with_prior_acting(load_run_records(tmp_path))
    assert [r.run_id for r in kept] == ["pre0"] and sorted(left_out) == ["pre1", "scratch"]
    assert [(p.success, p.prior_success) for p in kept[0].curve] == [(0.5, None), (0.9, None)]


@pytest.mark.parametrize("pretrained_seed, pretrained_demos, reason", [
    (1, 0, "no seed that both scratch and pretrained runs have finished"),
    (0, 5, "no scratch and pretrained runs with the same number of demos"),
])
def test_headline_names_what_keeps_two_arms_from_a_comparison(tmp_path, pretrained_seed, pretrained_demos, reason):
    points = [(0, 0.0, 0, 0), (1000, 0.5, 10, 10)]
    write_run(tmp_path, "sc", "scratch", 0, points, "reach-v3")
    write_run(tmp_path, "pt", "pretrained", pretrained_seed, points, "reach-v3", scale=S, demos=pretrained_demos,
              pretrain={"wall_s": 100.0, "cpu_s": 100.0, "env_steps": 2000})
    (line,) = headlines(summarise(load_run_records(tmp_path), threshold=0.5, budgets=[1000]))
    assert line == f"reach-v3: {reason}, so there is no break-even or ratio to report."


def test_table_says_when_the_ratio_compares_fewer_seeds_than_a_row_shows(tmp_path):
    # Scratch reaches 50% at 1,000 steps with seed 0 and 2,000 with seed 1; pretrained has seed 0 only.
    for seed, first in ((0, 0.9), (1, 0.0)):
        write_run(tmp_path, f"sc{seed}", "scratch", seed, [(0, 0.0, 0, 0), (1000, first, 10, 10),
                                                            (2000, 0.9, 20, 20), (3000, 0.9, 30, 30)], "reach-v3")
    write_run(tmp_path, "pt0", "pretrained", 0, [(0, 0.0, 0, 0), (1000, 0.9, 10, 10), (2000, 0.9, 20, 20),
                                                 (3000, 0.9, 30, 30)],
              "reach-v3", scale=S, pretrain={"wall_s": 100.0, "cpu_s": 100.0, "env_steps": 2000})
    table = summary_table(summarise(load_run_records(tmp_path), threshold=0.5, budgets=[1000, 2000, 3000]))
    pretrained_row = next(line for line in table.splitlines() if "pretrained" in line)
    assert "1.00x (1 seed both finished)" in pretrained_row, table


def test_headline_says_when_pretraining_never_pays(tmp_path):
    cost = {"wall_s": 100.0, "cpu_s": 100.0, "env_steps": 2000}
    write_run(tmp_path, "scratch", "scratch", 0, [(0, 0.0, 0, 0), (1000, 0.9, 10, 10), (2000, 0.9, 20, 20)],
              "reach-v3")
    write_run(tmp_path, "pre", "pretrained", 0, [(0, 0.0, 0, 0), (1000, 0.1, 10, 10), (2000, 0.9, 20, 20),
              (3000, 0.9, 30, 30)], "reach-v3", scale=S, pretrain=cost)
    (line,) = headlines(summarise(load_run_records(tmp_path), threshold=0.8, budgets=[1000, 2000]))
    assert "demos never breaks even, in CPU or in wall-clock time (N* = infinity)" in line, line
    assert "it needs 2.00x more env steps than training from scratch" in line


def test_an_infinite_ratio_is_written_as_inf(tmp_path):
    cost = {"wall_s": 100.0, "cpu_s": 100.0, "env_steps": 2000}
    write_run(tmp_path, "scratch", "scratch", 0, [(0, 0.0, 0, 0), (1000, 0.1, 10, 10), (2000, 0.2, 20, 20)], "reach-v3")
    write_run(tmp_path, "pre", "pretrained", 0, [(0, 0.9, 0, 0), (1000, 0.9, 10, 10), (2000, 1.0, 20, 20)],
              "reach-v3", scale=S, pretrain=cost)  # solved zero-shot: 0 steps against scratch's censored 2,000
    (row,) = comparison_rows(summarise(load_run_records(tmp_path), threshold=0.8, budgets=[2000]))
    assert row["ratio"] == {"value": "inf", "bound": "lower_bound"} and json.dumps(row, allow_nan=False)


def test_an_n_star_from_equal_steps_is_footnoted_in_the_terminal_table(tmp_path):
    cost = {"wall_s": 5000.0, "cpu_s": 4680.0, "env_steps": 450000}
    write_run(tmp_path, "sc", "scratch", 0, [(0, 0.8, 400, 362), (1000, 0.8, 500, 462)], "door-lock-v3", demos=5)
    write_run(tmp_path, "pt", "pretrained", 0, [(0, 0.8, 390, 340), (1000, 0.9, 480, 440)], "door-lock-v3",
              scale=S, pretrain=cost, demos=5)
    table = summary_table(summarise(load_run_records(tmp_path), threshold=0.8, budgets=[1000]))
    assert "213 *" in table and "500 *" in table  # 4680 / 22 and 5000 / 10: one caveat, so one mark
    assert table.splitlines()[-1] == "* both arms need the same env steps to the threshold (mean over seeds): N* " \
                                     "rests on their compute time alone, not on fewer steps"


def test_runs_that_waited_for_a_core_are_named(study_dir, tmp_path):
    assert shared_machine_note(summarise(load_run_records(study_dir), 0.8, [20000])) is None  # wall <= CPU there
    cost = {"wall_s": 100.0, "cpu_s": 100.0, "env_steps": 2000}
    write_run(tmp_path, "alone", "scratch", 0, [(0, 0.0, 0, 0), (2000, 0.1, 120, 100)], "reach-v3")
    write_run(tmp_path, "shared", "pretrained", 0, [(0, 0.0, 0, 0), (2000, 0.4, 150, 100)], "reach-v3",
              scale=S, pretrain=cost)
    summary = summarise(load_run_records(tmp_path), threshold=0.8, budgets=[2000])
    note = shared_machine_note(summary)
    assert "1 run took more than 1.25x" in note and "shared (1.50x)" in note and "alone" not in note
    assert "pretraining" not in note
    assert "Note: 1 run took more than 1.25x" in write_report(tmp_path, summary).read_text()
    slow = {"wall_s": 140.0, "cpu_s": 100.0, "env_steps": 2000}  # a pretraining that waited for a core
    other = tmp_path / "other"
    write_run(other, "alone", "scratch", 0, [(0, 0.0, 0, 0), (2000, 0.1, 120, 100)], "reach-v3")
    write_run(other, "shared", "pretrained", 0, [(0, 0.0, 0, 0), (2000, 0.4, 150, 100)], "reach-v3",
              scale=S, pretrain=slow)
    note = shared_machine_note(summarise(load_run_records(other), threshold=0.8, budgets=[2000]))
    assert "1 run and the pretraining of 1 scale took more than 1.25x" in note
    assert note.endswith("shared (1.50x), pretraining S (1.40x)")


def test_comparisons_as_plain_data_hold_the_hand_computed_kpis(study_dir):
    rows = comparison_rows(summarise(load_run_records(study_dir), threshold=0.8, budgets=[10000, 20000]))
    by = {(r["target"], r["demos"]): r for r in rows}
    lock, drawer = by[("door-lock-v3", 0)], by[("drawer-open-v3", 0)]
    assert lock["ratio"] == {"value": pytest.approx(35000 / 15000), "bound": "exact"}
    assert lock["n_star_cpu"] == {"value": pytest.approx(1000 / 550), "bound": "exact", "reason": ""}
    assert lock["success_scratch"] == {"10000": pytest.approx(0.3), "20000": pytest.approx(0.6)}
    assert lock["success_pretrained"]["10000"] == pytest.approx(0.7) and lock["seeds"] == 2
    lead = lock["lead_over_scratch"]["10000"]  # 0.8 - 0.2 and 0.6 - 0.4, 12.706 * 0.2 either side
    assert lead["mean"] == pytest.approx(0.4) and lead["ci"] == pytest.approx([0.4 - 2.5412, 0.4 + 2.5412])
    assert lead["seeds"] == 2 and drawer["lead_over_scratch"]["10000"]["ci"] is None
    assert drawer["ratio"] == {"value": 2.0, "bound": "lower_bound"}
    assert drawer["n_star_cpu"]["value"] == 2.5 and drawer["n_star_cpu"]["bound"] == "upper_bound"
    assert drawer["n_star_cpu"]["reason"].startswith("scratch did not reach the threshold in every seed")
    assert drawer["steps_to_threshold"]["scratch"] == {"mean": 20000, "censored_seeds": 1}
    # mean success over 0-20k: scratch 0.225 and 0.375, S 0.65 and 0.55; leads 0.425 and 0.175: 12.706 * 0.125 either side
    assert lock["mean_success"] == {"budget": 20000, "scratch": pytest.approx(0.3), "pretrained": pytest.approx(0.6),
                                    "lead": {"mean": pytest.approx(0.3), "seeds": 2,
                                             "ci": pytest.approx([0.3 - 1.58825, 0.3 + 1.58825], abs=1e-4)}}
    assert len(rows) == 3 and json.dumps(rows, allow_nan=False)


def test_write_report_from_records_needs_threshold_and_budgets(study_dir):
    records = load_run_records(study_dir)
    with pytest.raises(CrossoverError, match="threshold and budgets"):
        write_report(study_dir, records)
    assert write_report(study_dir, records, threshold=0.8, budgets=[20000]).exists()


@pytest.mark.parametrize("scratch, adapted, phrase", [
    (SeedStat(5000, 1, None), SeedStat(10000, 1, None), "it needs 2.00x more env steps than training from scratch"),
    (SeedStat(5000, 1, None), SeedStat(20000, 1, None, 1), "it needs at least 4.00x more env steps"),
    (SeedStat(0, 1, None), SeedStat(0, 1, None), "both arms reach 80% success before any training"),
    (SeedStat(7000, 1, None), SeedStat(7000, 1, None), "with as many env steps as training from scratch"),
    (SeedStat(0, 1, None), SeedStat(3000, 1, None), "training from scratch reaches 80% success before any "
                                                     "training (0 env steps), where it needs 3,000 env steps"),
    (SeedStat(20000, 1, None, 1), SeedStat(0, 1, None), "it reaches 80% success zero-shot, where training from "
                                                         "scratch needs at least 20,000 env steps"),
])
def test_ratio_wording_follows_the_numbers(scratch, adapted, phrase):
    ratio, bound = sample_efficiency_ratio(scratch, adapted)
    eff = SampleEfficiency("reach-v3", PretrainScale(2, 10, "S"), 0, scratch, adapted, ratio, bound)
    assert phrase in _ratio_phrase(eff, 0.8)


def test_single_seed_configurations_get_the_episode_noise_note(study_dir, tmp_path):
    summary = summarise(load_run_records(study_dir), threshold=0.8, budgets=[10000, 20000])
    note = episode_noise_note(summary, eval_episodes=10)
    # the demo configurations and both drawer ones have one seed; lock scratch and lock S have two
    assert note.startswith("4 of the 6 configurations rest on a single seed")
    assert note.endswith("of 2/10 is 0.06 to 0.51; of 5/10 is 0.24 to 0.76; of 8/10 is 0.49 to 0.94")
    two_seeds = tmp_path / "two"
    for seed in (0, 1):
        write_run(two_seeds, f"s{seed}", "scratch", seed, [(0, 0.0, 0, 0), (2000, 0.5, 20, 20)], "reach-v3")
    assert episode_noise_note(summarise(load_run_records(two_seeds), 0.8, [2000]), eval_episodes=10) is None
