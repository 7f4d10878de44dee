"""KPI arithmetic on hand-computed curves, and the run-record loader's errors."""

import json
import math
from dataclasses import replace

import pytest

from crossover.errors import CrossoverError
from crossover.study.kpi import (
    CrossoverPoint,
    SeedStat,
    break_even,
    censored_mean,
    compare_mean_success,
    cpu_to_threshold,
    crossover_scale,
    mean_ci,
    mean_success,
    paired_lead,
    sample_efficiency_ratio,
    steps_to_threshold,
    success_at_budget,
    summarise,
    t_critical_95,
    wall_to_threshold,
    wilson_interval,
)
from crossover.study.records import (EvalPoint, PretrainScale, RunRecordError, load_run_record, load_run_records,
                                    parse_run_record)

S = {"source_tasks": 2, "episodes_per_task": 10, "label": "S"}
L = {"source_tasks": 10, "episodes_per_task": 50, "label": "L"}


def record(run_id, arm, seed, points, target="door-lock-v3", scale=None, demos=0, pretrain=None, adapt=None):
    """A result.json dict; points are (env_steps, success, wall_s, cpu_s) and the last one is the run's cost."""
    last = points[-1]
    return {
        "run_id": run_id, "target": target, "arm": arm, "pretrain_scale": scale, "demos": demos, "seed": seed,
        "curve": [{"env_steps": s, "success": p, "wall_s": w, "cpu_s": c} for s, p, w, c in points],
        "adapt_cost": adapt or {"env_steps": last[0], "wall_s": last[2], "cpu_s": last[3], "demos": demos},
        "pretrain_cost": pretrain,
    }


def door_lock_records():
    """Scratch (2 seeds), pretrained S (2 seeds), pretrained L (1 seed, zero-shot) on door-lock-v3."""
    s_cost = {"wall_s": 825.0, "cpu_s": 1000.0, "env_steps": 20000}
    l_cost = {"wall_s": 50000.0, "cpu_s": 100000.0, "env_steps": 500000}
    raw = [
        record("scratch-0", "scratch", 0, [(0, 0.0, 0, 0), (10000, 0.2, 100, 200), (20000, 0.5, 200, 400),
                                           (30000, 0.8, 300, 600), (40000, 0.9, 400, 800)]),
        record("scratch-1", "scratch", 1, [(0, 0.0, 0, 0), (10000, 0.4, 100, 200), (20000, 0.7, 200, 400),
                                           (30000, 0.7, 300, 600), (40000, 0.8, 400, 800)]),
        record("S-0", "pretrained", 0, [(0, 0.1, 0, 0), (10000, 0.8, 50, 100), (20000, 0.9, 100, 200)],
               scale=S, pretrain=s_cost),
        record("S-1", "pretrained", 1, [(0, 0.2, 0, 0), (10000, 0.6, 50, 100), (20000, 0.8, 100, 200)],
               scale=S, pretrain=s_cost),
        record("L-0", "pretrained", 0, [(0, 0.9, 0, 0), (10000, 1.0, 10, 20)], scale=L, pretrain=l_cost),
    ]
    return [parse_run_record(r, source=r["run_id"]) for r in raw]


CURVE = (EvalPoint(0, 0.0, 0.0, 0.0), EvalPoint(1000, 0.5, 10.0, 20.0), EvalPoint(2000, 0.9, 25.0, 50.0))


def test_success_at_budget_takes_last_point_within_budget():
    assert success_at_budget(CURVE, 1500) == 0.5
    assert success_at_budget(CURVE, 2000) == 0.9
    assert success_at_budget(CURVE, 99999) == 0.9
    assert success_at_budget(CURVE[1:], 999) is None


def test_threshold_kpis_use_first_point_the_next_confirms_and_none_when_censored():
    assert steps_to_threshold(CURVE, 0.5) == 1000  # (0.5 + 0.9) / 2 >= 0.5
    assert wall_to_threshold(CURVE, 0.8) == 25.0
    assert cpu_to_threshold(CURVE, 0.8) == 50.0
    assert steps_to_threshold(CURVE, 0.0) == 0  # zero-shot
    assert steps_to_threshold(CURVE, 0.95) is None
    assert cpu_to_threshold(CURVE, 0.95) is None


def test_a_lucky_evaluation_the_next_one_does_not_confirm_is_not_a_crossing():
    spiky = tuple(EvalPoint(1000 * i, s, 10.0 * i, 20.0 * i) for i, s in enumerate([0.0, 0.8, 0.4, 0.9, 0.7]))
    # 0.8 at 1000 averages 0.6 with the next point; 0.9 at 3000 averages 0.8 with 0.7 at 4000.
    assert steps_to_threshold(spiky, 0.8) == 3000
    assert wall_to_threshold(spiky, 0.8) == 30.0
    # The last point has no successor and counts on its own.
    assert steps_to_threshold(spiky[:4], 0.9) == 3000
    assert steps_to_threshold(spiky, 0.9) is None


def test_mean_ci_student_t_and_single_seed():
    stat = mean_ci([1.0, 2.0, 3.0])
    assert stat.mean == 2.0
    # sd = 1, t(df=2) = 4.303 -> half-width 4.303 / sqrt(3)
    assert stat.ci == pytest.approx((2.0 - 4.303 / math.sqrt(3), 2.0 + 4.303 / math.sqrt(3)))
    assert mean_ci([0.7]).ci is None
    assert t_critical_95(35) == 2.042  # between table rows the smaller df (wider interval) is used
    assert t_critical_95(1000) == 1.960


def test_wilson_interval_by_hand():
    # 5/10: centre (0.5 + 1.96^2/20) / (1 + 1.96^2/10) = 0.5; half 1.96 * sqrt(0.025 + 1.96^2/400) / 1.38416
    assert wilson_interval(5, 10) == pytest.approx((0.5 - 0.26341, 0.5 + 0.26341), abs=1e-4)
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)  # not empty at 0 of n
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_censored_mean_substitutes_the_budget_and_becomes_a_lower_bound():
    stat = censored_mean([30000, None], [40000, 40000])
    assert stat.mean == 35000 and stat.n_censored == 1 and stat.is_lower_bound and stat.ci is None
    assert censored_mean([None], [20000]).all_censored


def test_sample_efficiency_ratio_bounds():
    exact, censored = SeedStat(35000, 2, None), SeedStat(20000, 1, None, n_censored=1)
    adapted = SeedStat(15000, 2, None)
    assert sample_efficiency_ratio(exact, adapted) == (pytest.approx(35000 / 15000), "exact")
    assert sample_efficiency_ratio(censored, SeedStat(10000, 1, None)) == (2.0, "lower_bound")
    assert sample_efficiency_ratio(exact, SeedStat(50000, 1, None, 1)) == (0.7, "upper_bound")
    assert sample_efficiency_ratio(censored, SeedStat(50000, 1, None, 1)) == (None, "undetermined")
    assert sample_efficiency_ratio(exact, SeedStat(0, 1, None)) == (math.inf, "exact")


def test_break_even_exact_never_and_bounds():
    be = break_even(1000.0, SeedStat(700, 2, None), SeedStat(150, 2, None), "cpu_s")
    assert be.kind == "exact" and be.n_star == pytest.approx(1000 / 550)
    # The two cumulative-cost lines cross at N*.
    assert be.cumulative_cost(be.n_star)[0] == pytest.approx(be.cumulative_cost(be.n_star)[1])

    never = break_even(1000.0, SeedStat(100, 2, None), SeedStat(150, 2, None), "cpu_s")
    assert never.kind == "never" and never.n_star == math.inf

    scratch_censored = SeedStat(500, 1, None, n_censored=1)
    upper = break_even(1000.0, scratch_censored, SeedStat(100, 1, None), "cpu_s")
    assert upper.kind == "upper_bound" and upper.n_star == 2.5
    assert break_even(1000.0, scratch_censored, SeedStat(600, 1, None), "cpu_s").kind == "undetermined"

    adapt_censored = SeedStat(300, 1, None, n_censored=1)
    assert break_even(900.0, SeedStat(600, 1, None), adapt_censored, "wall_s").n_star == 3.0
    assert break_even(900.0, SeedStat(600, 1, None), adapt_censored, "wall_s").kind == "lower_bound"
    assert break_even(900.0, SeedStat(200, 1, None), adapt_censored, "wall_s").kind == "never"
    assert break_even(900.0, scratch_censored, adapt_censored, "wall_s").n_star is None


def test_mean_success_is_the_area_under_the_success_curve_over_the_budget():
    curve = door_lock_records()[0].curve  # 0.0, 0.2, 0.5, 0.8, 0.9 at 0, 10k, 20k, 30k, 40k
    # trapezoids (0.1 + 0.35 + 0.65 + 0.85) x 10k over 40k
    assert mean_success(curve, 40000) == pytest.approx(0.4875)
    # up to 20k, then flat at 0.5 from 20k to 25k (as success_at_budget holds it): (4,500 + 2,500) / 25,000
    assert mean_success(curve, 25000) == pytest.approx(0.28)
    assert mean_success(curve, 0) == 0.0
    assert mean_success(curve[1:], 40000) is None  # not evaluated at step 0


def test_mean_success_compared_seed_against_seed_with_the_noise_of_every_evaluation():
    cost = {"wall_s": 1.0, "cpu_s": 1.0, "env_steps": 1}
    scratch = [parse_run_record(record(f"sc-{i}", "scratch", i, [(0, 0.5, 0, 0), (1000, 0.5, 1, 1)]), f"sc-{i}")
               for i in range(3)]
    # Seed 3's scratch run has no evaluation at step 0, so seed 3 counts for neither arm.
    scratch.append(parse_run_record(record("sc-3", "scratch", 3, [(1000, 0.5, 1, 1)]), "sc-3"))
    ahead = [parse_run_record(record(f"pt-{i}", "pretrained", i, [(0, 0.5, 0, 0), (1000, 1.0, 1, 1)], scale=S,
                                     pretrain=cost), f"pt-{i}") for i in range(4)]
    base, adapted, lead = compare_mean_success(scratch, ahead, 1000)
    assert (base.mean, adapted.mean, lead.mean) == pytest.approx((0.5, 0.75, 0.25))
    assert base.n == adapted.n == lead.n == 3 and lead.ci == pytest.approx((0.25, 0.25))
    # The evaluations replay the same episodes, so their spreads add as if fully correlated: scratch
    # 0.5 x 0.5 + 0.5 x 0.5 = 0.5, pretrained 0.5 x 0.5 + 0.5 x 0 = 0.25 per sqrt(episode); the sd floor is
    # sqrt((0.25 + 0.0625) / 10) = 0.17678 and the half-width 4.303 x 0.17678 / sqrt(3) = 0.4392.
    _, _, lead = compare_mean_success(scratch, ahead, 1000, eval_episodes=10)
    assert lead.ci == pytest.approx((0.25 - 0.4392, 0.25 + 0.4392), abs=1e-4)
    assert compare_mean_success(scratch[3:], ahead, 1000) is None


def test_seeds_that_agree_exactly_are_not_a_clear_lead_once_episode_noise_is_counted():
    # Three seeds each one episode in ten ahead: zero spread over seeds, so the seeds alone call it certain.
    scratch = [parse_run_record(record(f"sc-{i}", "scratch", i, [(0, 0.5, 0, 0)]), f"sc-{i}") for i in range(3)]
    ahead = [parse_run_record(record(f"pt-{i}", "pretrained", i, [(0, 0.6, 0, 0)], scale=S, pretrain={
        "wall_s": 1.0, "cpu_s": 1.0, "env_steps": 1}), f"pt-{i}") for i in range(3)]
    assert paired_lead(scratch, ahead, 0).ci == pytest.approx((0.1, 0.1))
    # 10 episodes: sd floor sqrt((0.24 + 0.25) / 10) = 0.2214, half-width 4.303 * 0.2214 / sqrt(3) = 0.55
    assert paired_lead(scratch, ahead, 0, eval_episodes=10).ci == pytest.approx((0.1 - 0.55, 0.1 + 0.55), abs=1e-3)


def test_clear_scale_is_the_smallest_clear_one_whatever_the_order_of_leads():
    xs, m = PretrainScale(1, 10, "XS"), PretrainScale(2, 50, "M")
    clear = SeedStat(0.5, 3, (0.2, 0.8))
    point = CrossoverPoint("reach-v3", 0, 1000, 0.1, ((m, 0.6), (xs, 0.6)), xs, leads=((m, clear), (xs, clear)))
    assert point.clear_scale == xs
    assert replace(point, leads=((m, clear), (xs, SeedStat(0.5, 3, (-0.1, 1.0))))).clear_scale == m


def test_n_star_from_equal_steps_to_the_threshold_says_it_rests_on_time_per_step():
    assert break_even(1000.0, SeedStat(700, 1, None), SeedStat(690, 1, None), "cpu_s").reason == ""
    # Both reach 0.8 at step 0, after demo updates that took 362 and 340 CPU-s: N* = 4680 / 22, from timing alone.
    cost = {"wall_s": 5000.0, "cpu_s": 4680.0, "env_steps": 450000}
    raw = [record("sc", "scratch", 0, [(0, 0.8, 400, 362), (1000, 0.8, 500, 462)], demos=5),
           record("pt", "pretrained", 0, [(0, 0.8, 390, 340), (1000, 0.9, 480, 440)], scale=S, demos=5,
                  pretrain=cost)]
    (be,) = summarise([parse_run_record(r, r["run_id"]) for r in raw], threshold=0.8, budgets=[1000]).break_evens
    assert be.cpu.kind == "exact" and be.cpu.n_star == pytest.approx(4680 / 22)
    assert "same env steps" in be.cpu.reason and "same env steps" in be.wall.reason
    # The other way round the timing says "never", with the same caveat.
    never = break_even(4680.0, SeedStat(340, 1, None), SeedStat(362, 1, None), "cpu_s", same_steps=True)
    assert never.kind == "never" and never.reason.endswith("not on fewer steps")


def test_crossover_scale_is_smallest_scale_beating_scratch():
    xs, s, m = PretrainScale(1, 10, "XS"), PretrainScale(2, 10, "S"), PretrainScale(2, 50, "M")
    # Given out of order on purpose: ordering is by source_tasks, then episodes_per_task.
    assert crossover_scale(0.5, [(m, 0.8), (xs, 0.4), (s, 0.6)]) == s
    assert crossover_scale(0.5, [(xs, 0.5), (s, None)]) is None  # equal is not "exceeds"
    assert crossover_scale(None, [(xs, 0.9)]) is None


def test_a_crossover_is_clear_only_when_the_per_seed_lead_interval_is_above_zero():
    cost = {"wall_s": 100.0, "cpu_s": 100.0, "env_steps": 2000}
    raw = []
    # At 10k: scratch 0.2/0.3/0.4; S 0.3/0.2/0.6 (leads +0.1, -0.1, +0.2); L 0.8/0.9/0.9 (leads +0.6, +0.6, +0.5).
    for seed, (base, s, l) in enumerate([(0.2, 0.3, 0.8), (0.3, 0.2, 0.9), (0.4, 0.6, 0.9)]):
        raw += [record(f"scratch-{seed}", "scratch", seed, [(0, 0.0, 0, 0), (10000, base, 100, 100)]),
                record(f"S-{seed}", "pretrained", seed, [(0, 0.0, 0, 0), (10000, s, 100, 100)], scale=S, pretrain=cost),
                record(f"L-{seed}", "pretrained", seed, [(0, 0.0, 0, 0), (10000, l, 100, 100)], scale=L, pretrain=cost)]
    records = [parse_run_record(r, source=r["run_id"]) for r in raw]
    at_10k = next(c for c in summarise(records, 0.8, [10000]).crossovers if c.budget == 10000)
    assert at_10k.scale.label == "S" and at_10k.clear_scale.label == "L"  # S leads on the mean only
    (_, s_lead), (_, l_lead) = at_10k.leads
    # S: mean 0.0667, sd 0.1528, t(2) = 4.303 -> half-width 0.3795; L: mean 0.5667, sd 0.0577 -> half-width 0.1434
    assert s_lead.mean == pytest.approx(0.2 / 3) and s_lead.ci[0] == pytest.approx(0.2 / 3 - 0.3795, abs=1e-4)
    assert l_lead.ci == pytest.approx((0.5667 - 0.1434, 0.5667 + 0.1434), abs=1e-4)
    # With 10 evaluation episodes the spread is floored at the episodes' binomial spread: L stays clear. Its
    # per-seed variances 0.8*0.2+0.2*0.8, 0.9*0.1+0.3*0.7, 0.9*0.1+0.4*0.6 average 0.3167 -> sd floor 0.178.
    at_10k = next(c for c in summarise(records, 0.8, [10000], eval_episodes=10).crossovers if c.budget == 10000)
    l_lead = dict(at_10k.leads)[at_10k.clear_scale]
    assert at_10k.clear_scale.label == "L" and l_lead.ci[0] == pytest.approx(0.5667 - 0.4422, abs=1e-3)
    # A scale that trails in some seed keeps the leads to the seeds every scale finished: L at seed 0 alone.
    partial = [r for r in records if not (r.run_id.startswith("L-") and r.seed > 0)]
    at_10k = next(c for c in summarise(partial, 0.8, [10000]).crossovers if c.budget == 10000)
    assert {lead.n for _, lead in at_10k.leads} == {1} and at_10k.clear_scale is None
    # One seed: a lead but no interval, so no scale is clear however large the lead.
    one_seed = [r for r in records if r.seed == 0]
    at_10k = next(c for c in summarise(one_seed, 0.8, [10000]).crossovers if c.budget == 10000)
    assert at_10k.scale.label == "S" and at_10k.clear_scale is None and dict(at_10k.leads)[at_10k.scale].n == 1
    # Seeds pair up: a scratch seed with no pretrained counterpart is left out.
    scratch = [r for r in records if r.arm == "scratch"]
    assert paired_lead(scratch, [r for r in records if r.run_id == "L-2"], 10000).mean == pytest.approx(0.5)
    assert paired_lead(scratch, [r for r in records if r.run_id == "L-2"], 5000).mean == 0.0  # both at step 0
    assert paired_lead(scratch[:2], [r for r in records if r.run_id == "L-2"], 10000) is None  # no common seed


def test_summarise_door_lock_by_hand():
    summary = summarise(door_lock_records(), threshold=0.8, budgets=[20000, 10000])
    assert summary.budgets == (10000, 20000)
    scratch, s_group, l_group = summary.groups
    assert (scratch.key.arm, s_group.key.scale_label, l_group.key.scale_label) == ("scratch", "S", "L")
    assert scratch.success[10000].mean == pytest.approx(0.3)
    # values 0.2, 0.4: sd = 0.1414, t(1) = 12.706 -> half-width 12.706 * 0.1
    assert scratch.success[10000].ci == pytest.approx((0.3 - 1.2706, 0.3 + 1.2706))
    assert scratch.steps_to_threshold.mean == 35000 and scratch.cpu_to_threshold.mean == 700
    assert s_group.steps_to_threshold.mean == 15000 and s_group.wall_to_threshold.mean == 75
    assert l_group.success[20000].mean == 1.0 and l_group.success[20000].ci is None  # n = 1

    s_eff, l_eff = summary.efficiency
    assert s_eff.ratio == pytest.approx(35000 / 15000) and s_eff.bound == "exact"
    assert l_eff.ratio == math.inf  # zero-shot
    s_be = summary.break_evens[0]
    assert s_be.cpu.n_star == pytest.approx(1000 / (700 - 150))
    assert s_be.wall.n_star == pytest.approx(825 / (350 - 75))
    # L has only seed 0, so its ratio and the crossover (all scales against scratch) use seed 0 alone.
    assert (l_eff.scratch_steps.mean, l_eff.scratch_steps.n) == (30000, 1)
    at_10k = next(c for c in summary.crossovers if c.budget == 10000)
    assert at_10k.scratch_success == pytest.approx(0.2) and at_10k.scale.label == "S"
    # Mean success over 0-20k: scratch 0.225 and 0.375, S 0.65 and 0.55 (leads 0.425, 0.175); L (seed 0 alone)
    # 0.9 x 0.25 + 1.0 x 0.75 = 0.975, held flat at 1.0 from 10k, against scratch's 0.225.
    assert scratch.mean_success.mean == pytest.approx(0.3) and s_group.mean_success.mean == pytest.approx(0.6)
    assert s_eff.mean_success_lead.mean == pytest.approx(0.3) and s_eff.mean_success_lead.n == 2
    assert (l_eff.scratch_mean_success.mean, l_eff.adapted_mean_success.mean) == pytest.approx((0.225, 0.975))
    assert l_eff.mean_success_lead.mean == pytest.approx(0.75) and l_eff.mean_success_lead.ci is None


def test_summarise_censored_scratch_gives_bounds():
    cost = {"wall_s": 825.0, "cpu_s": 1000.0, "env_steps": 20000}
    raw = [
        record("sc", "scratch", 0, [(0, 0.0, 0, 0), (10000, 0.1, 100, 200), (20000, 0.3, 250, 500)]),
        record("pt", "pretrained", 0, [(0, 0.0, 0, 0), (10000, 0.9, 85, 100), (20000, 0.95, 170, 200)],
               scale=S, pretrain=cost),
    ]
    summary = summarise([parse_run_record(r, r["run_id"]) for r in raw], threshold=0.8, budgets=[20000])
    eff, be = summary.efficiency[0], summary.break_evens[0]
    assert eff.scratch_steps.all_censored and eff.ratio == 2.0 and eff.bound == "lower_bound"
    assert be.cpu.kind == "upper_bound" and be.cpu.n_star == 2.5
    assert be.wall.kind == "upper_bound" and be.wall.n_star == 5.0


def test_summarise_rejects_repeated_seed_and_bad_threshold():
    records = door_lock_records()
    with pytest.raises(CrossoverError, match="scratch-0 and scratch-0"):
        summarise(records + records[:1], threshold=0.8, budgets=[10000])
    with pytest.raises(CrossoverError, match="threshold"):
        summarise(records, threshold=80, budgets=[10000])


def test_record_round_trips_through_json(tmp_path):
    original = door_lock_records()[2]
    path = tmp_path / "result.json"
    path.write_text(json.dumps(original.to_dict()))
    assert load_run_record(path) == original


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d["adapt_cost"].pop("cpu_s"), "adapt_cost.cpu_s"),
        (lambda d: d.pop("seed"), "seed"),
        (lambda d: d["curve"][1].pop("success"), "curve[1].success"),
        (lambda d: d["curve"][1].update(success=1.5), "curve[1].success"),
        (lambda d: d["curve"][1].update(prior_success="0.5"), "curve[1].prior_success"),
        (lambda d: d["curve"][2].update(env_steps=5), "curve[2].env_steps"),
        (lambda d: d.update(arm="finetuned"), "arm"),
        (lambda d: d.update(demos=True), "demos"),
        (lambda d: d.update(pretrain_scale=S), "pretrain_scale"),
        (lambda d: d["adapt_cost"].update(env_steps=10), "adapt_cost.env_steps"),
    ],
)
def test_loader_error_names_file_and_field(tmp_path, mutate, field):
    data = record("scratch-0", "scratch", 0, [(0, 0.0, 0, 0), (10000, 0.2, 100, 200), (20000, 0.5, 200, 400)])
    mutate(data)
    path = tmp_path / "runs" / "scratch-0" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    with pytest.raises(RunRecordError) as err:
        load_run_record(path)
    assert str(path) in str(err.value) and f"'{field}'" in str(err.value)


def test_loader_errors_on_bad_json_and_empty_study(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("{not json")
    with pytest.raises(RunRecordError, match="not valid JSON"):
        load_run_record(path)
    with pytest.raises(RunRecordError, match="no run records found"):
        load_run_records(tmp_path)


def test_comparisons_are_like_for_like_in_demos():
    # A pretrained group with 5 demos has no scratch group with 5 demos yet: it is not compared with 0-demo scratch.
    records = door_lock_records()
    raw = record("S5-0", "pretrained", 0, [(0, 0.9, 0, 0), (10000, 1.0, 10, 20)], scale=S, demos=5,
                 pretrain={"wall_s": 825.0, "cpu_s": 1000.0, "env_steps": 20000})
    summary = summarise(records + [parse_run_record(raw, "S5-0")], threshold=0.8, budgets=[10000])
    assert {e.demos for e in summary.efficiency} == {0}
    assert {b.demos for b in summary.break_evens} == {0} and {c.demos for c in summary.crossovers} == {0}


def test_an_exact_tie_at_the_threshold_counts_despite_float_rounding():
    curve = (EvalPoint(0, 0.85, 0.0, 0.0), EvalPoint(1000, 0.95, 1.0, 1.0))
    assert steps_to_threshold(curve, 0.9) == 0  # fmean(0.85, 0.95) is 0.8999999999999999


def timed(run_id, arm, seed, points, **kw):
    """A record whose points also carry eval time: points are (env_steps, success, wall_s, cpu_s, eval_wall, eval_cpu)."""
    raw = record(run_id, arm, seed, [p[:4] for p in points], **kw)
    for point, p in zip(raw["curve"], points):
        point.update(eval_wall_s=p[4], eval_cpu_s=p[5])
    raw["adapt_cost"].update(eval_wall_s=points[-1][4], eval_cpu_s=points[-1][5])
    return raw


def test_time_spent_evaluating_is_left_out_of_the_costs():
    cost = {"wall_s": 1000.0, "cpu_s": 2000.0, "env_steps": 20000}
    # Scratch needs three evaluations (30 s each) before it crosses, the pretrained arm one.
    raw = [
        timed("sc", "scratch", 0, [(0, 0.0, 30, 30, 30, 30), (1000, 0.2, 160, 160, 60, 60),
                                   (2000, 0.9, 290, 290, 90, 90), (3000, 0.9, 420, 420, 120, 120)]),
        timed("pt", "pretrained", 0, [(0, 0.9, 30, 30, 30, 30), (1000, 0.9, 160, 160, 60, 60)],
              scale=S, pretrain=cost),
    ]
    summary = summarise([parse_run_record(r, r["run_id"]) for r in raw], threshold=0.8, budgets=[1000])
    scratch = summary.groups[0]
    assert scratch.cpu_to_threshold.mean == 200 and scratch.wall_to_threshold.mean == 200  # 290 - 90
    be = summary.break_evens[0]
    assert be.cpu.adapt_per_task.mean == 0 and be.cpu.n_star == pytest.approx(2000 / 200)
    # A never-reaching run's bound is its training time too.
    never = parse_run_record(timed("nv", "scratch", 1, [(0, 0.0, 30, 30, 30, 30), (1000, 0.1, 160, 170, 60, 65)]),
                             "nv")
    assert never.adapt_cost.train_cpu_s == 105


def test_eval_time_must_be_given_throughout_a_record_and_a_study():
    raw = timed("sc", "scratch", 0, [(0, 0.0, 30, 30, 30, 30), (1000, 0.2, 160, 160, 60, 60)])
    del raw["curve"][1]["eval_wall_s"], raw["curve"][1]["eval_cpu_s"]
    with pytest.raises(RunRecordError, match="sc: 'eval_wall_s' and 'eval_cpu_s' must be in every curve point"):
        parse_run_record(raw, "sc")
    raw = timed("sc", "scratch", 0, [(0, 0.0, 30, 30, 30, 30), (1000, 0.2, 160, 160, 200, 60)])
    with pytest.raises(RunRecordError, match=r"sc: field 'curve\[1\].eval_wall_s' must be in \[0.0, 160.01\]"):
        parse_run_record(raw, "sc")
    # A study with one run made before evaluation was timed apart counts evaluation in every run's cost.
    old = parse_run_record(record("old", "scratch", 1, [(0, 0.0, 30, 30), (1000, 0.9, 150, 150)]), "old")
    new = parse_run_record(timed("new", "scratch", 0, [(0, 0.0, 30, 30, 30, 30), (1000, 0.9, 160, 160, 60, 60)]),
                           "new")
    assert summarise([new], threshold=0.8, budgets=[0]).groups[0].cpu_to_threshold.mean == 100
    mixed = summarise([old, new], threshold=0.8, budgets=[0])
    assert not mixed.eval_time_left_out and mixed.groups[0].cpu_to_threshold.mean == 155  # (150 + 160) / 2
