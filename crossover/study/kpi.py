"""The KPIs computed from run records (crossover/study/records.py): success at a budget and mean success over it,
steps/time to a success threshold, seed aggregation, sample-efficiency ratio, crossover scale and break-even
number of new tasks. Pure Python + the standard library; no torch."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Sequence

from crossover.errors import CrossoverError
from crossover.study.records import AdaptCost, EvalPoint, PretrainCost, PretrainScale, RunRecord


# ------------------------------------------------------------------------------------------------ per-run KPIs


def with_prior_acting(records: Sequence[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """The records evaluated with the policy prior alone, without planning: every evaluation's success replaced
    by the prior's, measured on the same episodes. Training (planned) and its costs stay as they were. Runs that
    did not measure the prior at each of their evaluations (those begun before 2026-11-27) are left out; their ids
    are returned second."""
    kept, left_out = [], []
    for r in records:
        if any(p.prior_success is None for p in r.curve):
            left_out.append(r.run_id)
        else:
            kept.append(replace(r, curve=tuple(replace(p, success=p.prior_success, prior_success=None)
                                               for p in r.curve)))
    return kept, left_out


def success_at_budget(curve: Sequence[EvalPoint], budget: int, prior: bool = False) -> float | None:
    """Success of the last eval point with env_steps <= budget; None if the first eval came after the budget.
    prior: the policy prior's success instead of the planner's (None where it was not measured)."""
    last = _last_weight(curve, budget)
    if last is None:
        return None
    ((point, _),) = last
    return point.prior_success if prior else point.success


def mean_success(curve: Sequence[EvalPoint], budget: int) -> float | None:
    """Mean success over env steps 0..budget: the area under the success-vs-env-steps curve (straight between
    evaluations, flat from the last one up to the budget) divided by the budget; at budget 0, the success at 0.
    None if the run was not evaluated at step 0. Unlike success at one budget or steps to the threshold it weighs
    every evaluation, so it sees a run that reached the threshold and fell away, or hovered just under it. (Flat
    after the budget's last evaluation, as success_at_budget holds it: nothing measured after the budget counts.)"""
    measured = _measured(curve, budget, area=True)
    return None if measured is None else measured[0]


def _measured(curve: Sequence[EvalPoint], budget: int, area: bool) -> tuple[float, float] | None:
    """(success at the budget, or with area=True mean_success over 0..budget; its binomial spread times
    sqrt(episodes per evaluation)). The spread adds each evaluation's sqrt(p(1 - p)) by its weight, as if their
    errors were fully correlated: every evaluation plays the same fixed episodes (crossover/eval/rollout.py), so
    they are not independent draws, and the fully correlated sum bounds the spread either way. None if there is
    no evaluation to measure at (or, with area=True, none at step 0)."""
    weighted = (_area_weights if area else _last_weight)(curve, budget)
    if weighted is None:
        return None
    return (sum(w * p.success for p, w in weighted),
            sum(w * math.sqrt(p.success * (1 - p.success)) for p, w in weighted))


def _area_weights(curve: Sequence[EvalPoint], budget: int) -> list[tuple[EvalPoint, float]] | None:
    """Each evaluation's weight in mean_success (the weights add up to 1); None if none was made at step 0."""
    points = [p for p in curve if p.env_steps <= budget]
    if not points or points[0].env_steps != 0:
        return None
    if budget == 0:
        return [(points[0], 1.0)]
    weights = [0.0] * len(points)
    for i in range(len(points) - 1):  # trapezoids: half of each gap to either end
        gap = points[i + 1].env_steps - points[i].env_steps
        weights[i] += gap / 2
        weights[i + 1] += gap / 2
    weights[-1] += budget - points[-1].env_steps
    return [(p, w / budget) for p, w in zip(points, weights)]


def _last_weight(curve: Sequence[EvalPoint], budget: int) -> list[tuple[EvalPoint, float]] | None:
    """success_at_budget as a weighting: the last evaluation at or before the budget, alone."""
    points = [p for p in curve if p.env_steps <= budget]
    return [(points[-1], 1.0)] if points else None


def _first_reaching(curve: Sequence[EvalPoint], threshold: float) -> EvalPoint | None:
    # A run reaches the threshold at the first evaluation that the next one confirms: the two, averaged, are at or
    # above it (20 episodes when each evaluation has 10). The last evaluation has no successor and counts alone.
    # Why: a single 10-episode evaluation is noisy, and "first point above" picks the luckiest draw, so it moves
    # steps-to-threshold early for any arm that hovers near the threshold. A policy at 60% scores >= 8/10 with
    # probability 16.7%, but averages >= 80% over 20 episodes with 5.1%. Pairing with the *next* evaluation, not the
    # previous one, adds no lag when success jumps. Both arms are measured the same way.
    # (The small tolerance keeps rounding from missing an exact tie: mean(0.85, 0.95) is 0.8999... in floats.)
    for i, point in enumerate(curve):
        pair = curve[i : i + 2]
        if statistics.fmean(p.success for p in pair) >= threshold - 1e-9:
            return point
    return None


def steps_to_threshold(curve: Sequence[EvalPoint], threshold: float) -> int | None:
    """Env steps at the first eval point whose success, averaged with the next point's, reaches the threshold (the
    last point counts alone); None = never within the run (censored)."""
    point = _first_reaching(curve, threshold)
    return None if point is None else point.env_steps


def wall_to_threshold(curve: Sequence[EvalPoint], threshold: float) -> float | None:
    """Adaptation wall-clock seconds (evaluation left out where timed) at the point `steps_to_threshold` picks;
    None = never (censored)."""
    point = _first_reaching(curve, threshold)
    return None if point is None else point.train_wall_s


def cpu_to_threshold(curve: Sequence[EvalPoint], threshold: float) -> float | None:
    """Adaptation CPU seconds (evaluation left out where timed) at the point `steps_to_threshold` picks;
    None = never (censored)."""
    point = _first_reaching(curve, threshold)
    return None if point is None else point.train_cpu_s


# ------------------------------------------------------------------------------------------- seed aggregation

# Two-sided 95% Student t critical values by degrees of freedom; between rows we use the smaller df (wider CI).
_T95 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086,
    21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042,
    40: 2.021, 60: 2.000, 120: 1.980,
}


def t_critical_95(df: int) -> float:
    """Two-sided 95% Student t critical value for `df` degrees of freedom (1.96 beyond the table)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df > 120:
        return 1.960
    return _T95[max(k for k in _T95 if k <= df)]


@dataclass(frozen=True)
class SeedStat:
    """Mean over seeds with a 95% CI. n_censored > 0 means some seeds never reached the threshold: their run's
    full budget/cost was used in their place, so `mean` is a lower bound and no CI is given."""

    mean: float
    n: int
    ci: tuple[float, float] | None
    n_censored: int = 0

    @property
    def is_lower_bound(self) -> bool:
        return self.n_censored > 0

    @property
    def all_censored(self) -> bool:
        return self.n_censored == self.n


def mean_ci(values: Sequence[float], min_sd: float = 0.0) -> SeedStat:
    """Mean and 95% Student-t CI of values from independent seeds; n=1 gives ci=None. min_sd: a floor under the
    seeds' standard deviation, for values whose spread a few seeds can understate (see paired_lead)."""
    if not values:
        raise ValueError("mean_ci needs at least one value")
    n = len(values)
    mean = statistics.fmean(values)
    if n == 1:
        return SeedStat(mean=mean, n=1, ci=None)
    half = t_critical_95(n - 1) * max(statistics.stdev(values), min_sd) / math.sqrt(n)
    return SeedStat(mean=mean, n=n, ci=(mean - half, mean + half))


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate measured as `successes` out of `trials` episodes: the spread
    from evaluating on few episodes alone, which a single seed's success carries with no interval over seeds
    (Wilson 1927; unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n)."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes} of {trials}")
    p, z2 = successes / trials, z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def censored_mean(values: Sequence[float | None], bounds: Sequence[float]) -> SeedStat:
    """Mean over seeds where None (never reached) is replaced by that seed's bound (its full budget or cost)."""
    filled = [b if v is None else v for v, b in zip(values, bounds, strict=True)]
    n_censored = sum(v is None for v in values)
    stat = mean_ci(filled)
    if n_censored:
        return SeedStat(mean=stat.mean, n=stat.n, ci=None, n_censored=n_censored)
    return stat


@dataclass(frozen=True)
class GroupKey:
    """Runs that differ only by seed."""

    target: str
    arm: str
    scale: PretrainScale | None
    demos: int

    @property
    def scale_label(self) -> str | None:
        return None if self.scale is None else self.scale.label


@dataclass(frozen=True)
class GroupSummary:
    """KPIs of one group, aggregated over its seeds; `success` maps each budget to a SeedStat (None if no run
    had evaluated by that budget)."""

    key: GroupKey
    run_ids: tuple[str, ...]
    seeds: tuple[int, ...]
    success: dict[int, SeedStat | None]
    steps_to_threshold: SeedStat
    wall_to_threshold: SeedStat
    cpu_to_threshold: SeedStat
    pretrain_cost: PretrainCost | None
    # The policy prior alone, over the runs that measured it (a probe of the planner, not a KPI): SeedStat.n says
    # how many. Empty when no run did.
    prior_success: dict[int, SeedStat | None] = field(default_factory=dict)
    # mean_success over 0..the largest budget (None if no run was evaluated at step 0)
    mean_success: SeedStat | None = None


def group_records(records: Sequence[RunRecord]) -> dict[GroupKey, list[RunRecord]]:
    """Runs grouped by (target, arm, scale, demos); a repeated seed in a group is an error (it would count twice)."""
    labels: dict[str, PretrainScale] = {}
    groups: dict[GroupKey, list[RunRecord]] = {}
    for record in records:
        scale = record.pretrain_scale
        if scale is not None:
            known = labels.setdefault(scale.label, scale)
            if known != scale:
                raise CrossoverError(
                    f"run {record.run_id}: pretrain_scale label {scale.label!r} is used for two different scales "
                    f"({known.source_tasks}x{known.episodes_per_task} and "
                    f"{scale.source_tasks}x{scale.episodes_per_task})"
                )
        key = GroupKey(record.target, record.arm, scale, record.demos)
        group = groups.setdefault(key, [])
        clash = next((r for r in group if r.seed == record.seed), None)
        if clash is not None:
            raise CrossoverError(
                f"runs {clash.run_id} and {record.run_id} are the same configuration and seed {record.seed}"
            )
        group.append(record)
    return groups


def _over_seeds(values: Sequence[float | None]) -> SeedStat | None:
    """mean_ci of the seeds that have a value; None if none has."""
    known = [v for v in values if v is not None]
    return mean_ci(known) if known else None


def summarise_group(key: GroupKey, runs: Sequence[RunRecord], threshold: float, budgets: Sequence[int]) -> GroupSummary:
    """Aggregate one group's runs over seeds."""
    def over_seeds(budget: int, prior: bool) -> SeedStat | None:
        return _over_seeds([success_at_budget(r.curve, budget, prior) for r in runs])

    success = {budget: over_seeds(budget, prior=False) for budget in budgets}
    prior_success = {budget: over_seeds(budget, prior=True) for budget in budgets}
    if all(v is None for v in prior_success.values()):
        prior_success = {}
    pretrain_cost = None
    if key.arm == "pretrained":
        # The runs of a scale normally share one checkpoint (the benchmark warns when they do not), so this
        # averages re-measurements of one cost.
        costs = [r.pretrain_cost for r in runs if r.pretrain_cost is not None]
        pretrain_cost = PretrainCost(
            wall_s=statistics.fmean(c.wall_s for c in costs),
            cpu_s=statistics.fmean(c.cpu_s for c in costs),
            env_steps=round(statistics.fmean(c.env_steps for c in costs)),
        )
    return GroupSummary(
        key=key,
        run_ids=tuple(r.run_id for r in runs),
        seeds=tuple(r.seed for r in runs),
        success=success,
        steps_to_threshold=censored_mean(
            [steps_to_threshold(r.curve, threshold) for r in runs], [r.adapt_cost.env_steps for r in runs]
        ),
        wall_to_threshold=censored_mean(
            [wall_to_threshold(r.curve, threshold) for r in runs], [r.adapt_cost.train_wall_s for r in runs]
        ),
        cpu_to_threshold=censored_mean(
            [cpu_to_threshold(r.curve, threshold) for r in runs], [r.adapt_cost.train_cpu_s for r in runs]
        ),
        pretrain_cost=pretrain_cost,
        prior_success=prior_success,
        mean_success=_over_seeds([mean_success(r.curve, max(budgets)) for r in runs]),
    )


# --------------------------------------------------------------------------------- comparisons against scratch

Bound = Literal["exact", "lower_bound", "upper_bound", "never", "undetermined"]


@dataclass(frozen=True)
class SampleEfficiency:
    """Scratch steps-to-threshold / adapted steps-to-threshold for one (target, scale, demos), both arms with the
    same demos and over the seeds both finished. bound: 'exact'; 'lower_bound' (scratch censored: true ratio >=
    value); 'upper_bound' (adapted censored: true ratio <= value); 'undetermined' (both censored, value None).
    Beside it, each arm's mean_success over 0..the largest budget and the adapted arm's lead in it, seed against
    seed (compare_mean_success, over the same seeds unless one lacks an evaluation at step 0): the ratio rests on
    the first evaluation pair to reach the threshold, the mean success on every evaluation."""

    target: str
    scale: PretrainScale
    demos: int
    scratch_steps: SeedStat
    adapted_steps: SeedStat
    ratio: float | None
    bound: Bound
    scratch_mean_success: SeedStat | None = None
    adapted_mean_success: SeedStat | None = None
    mean_success_lead: SeedStat | None = None


def sample_efficiency_ratio(scratch_steps: SeedStat, adapted_steps: SeedStat) -> tuple[float | None, Bound]:
    """Ratio of per-group mean steps to threshold and which side of the truth it lies on."""
    if scratch_steps.is_lower_bound and adapted_steps.is_lower_bound:
        return None, "undetermined"
    if adapted_steps.mean == 0:
        # Every adapted seed solved the task zero-shot, so the ratio is unbounded (or 0/0 if scratch did too).
        if scratch_steps.mean == 0:
            return None, "undetermined"
        return math.inf, "lower_bound" if scratch_steps.is_lower_bound else "exact"
    ratio = scratch_steps.mean / adapted_steps.mean
    if scratch_steps.is_lower_bound:
        return ratio, "lower_bound"
    if adapted_steps.is_lower_bound:
        return ratio, "upper_bound"
    return ratio, "exact"


@dataclass(frozen=True)
class CrossoverPoint:
    """Smallest pretraining scale whose mean success at `budget` exceeds scratch's (None: no scale does, or no
    scratch/pretrained data at that budget). `by_scale` lists every scale's mean success, smallest scale first;
    `leads` each scale's success minus scratch's, seed against seed (paired_lead), in the same order."""

    target: str
    demos: int
    budget: int
    scratch_success: float | None
    by_scale: tuple[tuple[PretrainScale, float | None], ...]
    scale: PretrainScale | None
    leads: tuple[tuple[PretrainScale, SeedStat | None], ...] = ()

    @property
    def clear_scale(self) -> PretrainScale | None:
        """The smallest scale whose lead over scratch is clear: the 95% interval of its per-seed lead lies above
        zero (see paired_lead). A mean above scratch's alone can be the noise of a few evaluation episodes; one
        seed gives no interval, so with one seed no scale is clear. Each scale is tested at 95% on its own, so with
        many scales one of them is more likely to pass by chance."""
        ordered = sorted(self.leads, key=lambda item: item[0].order)
        return next((scale for scale, lead in ordered if lead is not None and lead.ci and lead.ci[0] > 0), None)


def paired_lead(scratch: Sequence[RunRecord], adapted: Sequence[RunRecord], budget: int,
                eval_episodes: int | None = None) -> SeedStat | None:
    """Adapted success minus scratch's at `budget`, seed against the same seed, over the seeds both arms have
    evaluated by then; None if there is no such seed. With eval_episodes (per evaluation), the seeds' spread is
    floored at the binomial spread of that many episodes per arm: successes come in steps of 1/eval_episodes, so a
    few seeds often agree exactly (+0.1, +0.1, +0.1), and their zero spread must not pass for certainty."""
    pairs = _paired(scratch, adapted, budget, area=False)
    return _lead_of(pairs, eval_episodes) if pairs else None


def compare_mean_success(scratch: Sequence[RunRecord], adapted: Sequence[RunRecord], budget: int,
                         eval_episodes: int | None = None) -> tuple[SeedStat, SeedStat, SeedStat] | None:
    """(scratch's, the adapted arm's) mean_success over 0..budget and the adapted arm's lead in it, seed against
    seed (its spread floored as paired_lead's), all three over the seeds both arms evaluated at step 0; None if
    there is no such seed."""
    pairs = _paired(scratch, adapted, budget, area=True)
    if not pairs:
        return None
    return (mean_ci([s[0] for _, s in pairs]), mean_ci([a[0] for a, _ in pairs]), _lead_of(pairs, eval_episodes))


def _paired(scratch: Sequence[RunRecord], adapted: Sequence[RunRecord], budget: int, area: bool
            ) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """(adapted, scratch) _measured pairs of the same seed, over the seeds where both arms have a measure."""
    base = {r.seed: _measured(r.curve, budget, area) for r in scratch}
    pairs = [(_measured(run.curve, budget, area), base.get(run.seed)) for run in adapted]
    return [(a, s) for a, s in pairs if a is not None and s is not None]


def _lead_of(pairs: Sequence[tuple[tuple[float, float], tuple[float, float]]], eval_episodes: int | None) -> SeedStat:
    """Mean and interval of adapted minus scratch over the pairs, the seeds' spread floored at the episodes'."""
    variances = [a[1] ** 2 + s[1] ** 2 for a, s in pairs]
    floor = math.sqrt(statistics.fmean(variances) / eval_episodes) if eval_episodes else 0.0
    return mean_ci([a[0] - s[0] for a, s in pairs], min_sd=floor)


def crossover_scale(
    scratch_success: float | None, by_scale: Sequence[tuple[PretrainScale, float | None]]
) -> PretrainScale | None:
    """The smallest scale (by source_tasks, then episodes_per_task) whose success exceeds scratch's."""
    if scratch_success is None:
        return None
    for scale, success in sorted(by_scale, key=lambda item: item[0].order):
        if success is not None and success > scratch_success:
            return scale
    return None


@dataclass(frozen=True)
class BreakEven:
    """N* = pretrain_cost / (scratch cost per task - adaptation cost per task), in one unit (cpu_s or wall_s).
    n_star is math.inf when kind == 'never' and None when 'undetermined'. kind 'upper_bound': scratch never reached
    the threshold, its full run cost stood in, so the true N* <= n_star; 'lower_bound': the adapted arm was censored,
    so the true N* >= n_star."""

    unit: Literal["cpu_s", "wall_s"]
    pretrain_cost: float
    scratch_per_task: SeedStat
    adapt_per_task: SeedStat
    n_star: float | None
    kind: Bound
    reason: str

    def cumulative_cost(self, n_tasks: float) -> tuple[float, float]:
        """(scratch, pretrain+adapt) total cost of solving n_tasks new tasks, from the per-task means."""
        return (n_tasks * self.scratch_per_task.mean, self.pretrain_cost + n_tasks * self.adapt_per_task.mean)


def break_even(
    pretrain_cost: float, scratch_per_task: SeedStat, adapt_per_task: SeedStat, unit: Literal["cpu_s", "wall_s"],
    same_steps: bool = False,
) -> BreakEven:
    """Number of new tasks after which pretraining has paid for itself, with the direction of any bound.
    same_steps: both arms need the same env steps to the threshold (mean over seeds), so an exact or never N*
    rests on their compute time alone, not on fewer steps (demo updates and timing at step 0); the reason says so."""
    s, a = scratch_per_task.mean, adapt_per_task.mean
    s_censored, a_censored = scratch_per_task.is_lower_bound, adapt_per_task.is_lower_bound

    def result(n_star: float | None, kind: Bound, reason: str) -> BreakEven:
        return BreakEven(unit, pretrain_cost, scratch_per_task, adapt_per_task, n_star, kind, reason)

    if s_censored and a_censored:
        return result(None, "undetermined", "neither arm reached the threshold in every seed")
    if s_censored:
        if s > a:
            return result(pretrain_cost / (s - a), "upper_bound",
                          "scratch did not reach the threshold in every seed; its full run cost stood in")
        return result(None, "undetermined", "scratch did not reach the threshold in every seed and its full run "
                                            "cost is not above the adaptation cost")
    if a_censored:
        if s > a:
            return result(pretrain_cost / (s - a), "lower_bound",
                          "the adapted arm did not reach the threshold in every seed")
        return result(math.inf, "never", "adapting costs at least as much per task as training from scratch")
    if s > a:
        return result(pretrain_cost / (s - a), "exact", SAME_STEPS if same_steps else "")
    return result(math.inf, "never", "adapting is not cheaper per task than training from scratch"
                  + (f"; {SAME_STEPS}" if same_steps else ""))


SAME_STEPS = ("both arms need the same env steps to the threshold (mean over seeds): N* rests on their compute time "
              "alone, not on fewer steps")


@dataclass(frozen=True)
class BreakEvenResult:
    """Break-even of one (target, scale, demos) against scratch, in CPU seconds and in wall-clock seconds."""

    target: str
    scale: PretrainScale
    demos: int
    cpu: BreakEven
    wall: BreakEven


# -------------------------------------------------------------------------------------------------- the study


@dataclass(frozen=True)
class StudySummary:
    """Every KPI of a study at one success threshold and a set of env-step budgets."""

    threshold: float
    budgets: tuple[int, ...]
    groups: tuple[GroupSummary, ...]
    efficiency: tuple[SampleEfficiency, ...]
    crossovers: tuple[CrossoverPoint, ...]
    break_evens: tuple[BreakEvenResult, ...]
    records: tuple[RunRecord, ...] = field(repr=False)
    eval_time_left_out: bool = True  # False: some run did not time evaluation apart, so all costs include it

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(sorted({g.key.target for g in self.groups}))


def _with_eval_time_kept_in(record: RunRecord) -> RunRecord:
    """The record as if its evaluation time had not been timed apart (costs then include evaluation)."""
    curve = tuple(replace(p, eval_wall_s=None, eval_cpu_s=None) for p in record.curve)
    return replace(record, curve=curve, adapt_cost=replace(record.adapt_cost, eval_wall_s=None, eval_cpu_s=None))


def summarise(records: Sequence[RunRecord], threshold: float, budgets: Sequence[int],
              eval_episodes: int | None = None) -> StudySummary:
    """All KPIs of a study. threshold: success rate (0, 1] a task counts as solved at; budgets: env-step budgets
    at which success is reported and the crossover scale is sought; eval_episodes: episodes per evaluation, which
    floors the spread of the crossover leads (paired_lead; None: the seeds' spread alone)."""
    if not records:
        raise CrossoverError("summarise: no run records given")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise CrossoverError(f"threshold must be a success rate in (0, 1], got {threshold!r}")
    if not budgets or any(isinstance(b, bool) or not isinstance(b, int) or b < 0 for b in budgets):
        raise CrossoverError(f"budgets must be a non-empty list of env-step counts >= 0, got {list(budgets)!r}")
    budgets = tuple(sorted(set(budgets)))
    # Costs leave evaluation out only if every run timed it apart; one older run that could not puts it back in
    # for all, so that no comparison sets a cost with evaluation against one without.
    eval_left_out = all(r.adapt_cost.eval_wall_s is not None for r in records)
    if not eval_left_out:
        records = [_with_eval_time_kept_in(r) for r in records]

    grouped = group_records(records)
    order = sorted(grouped, key=lambda k: (k.target, k.arm != "scratch", k.scale.order if k.scale else (), k.demos))
    groups = tuple(summarise_group(k, grouped[k], threshold, budgets) for k in order)

    def on_seeds(keys: Sequence[GroupKey]) -> list[GroupSummary] | None:
        # Comparisons use only the seeds every compared group has finished (a study stopped part-way may have
        # scratch at 3 seeds and a pretrained arm at 1; seed-to-seed spread must not pass for an effect).
        seeds = set.intersection(*({r.seed for r in grouped[k]} for k in keys))
        if not seeds:
            return None
        return [summarise_group(k, [r for r in grouped[k] if r.seed in seeds], threshold, budgets) for k in keys]

    efficiency: list[SampleEfficiency] = []
    crossovers: list[CrossoverPoint] = []
    break_evens: list[BreakEvenResult] = []
    for target in sorted({g.key.target for g in groups}):
        pretrained = [g.key for g in groups if g.key.target == target and g.key.arm == "pretrained"]
        for demos in sorted({k.demos for k in pretrained}):
            # Like with like: pretrained runs with K demos against scratch runs with the same K demos.
            scratch = GroupKey(target, "scratch", None, demos)
            at_demos = [k for k in pretrained if k.demos == demos]
            if scratch not in grouped:
                continue
            for key in at_demos:
                pair = on_seeds([scratch, key])
                if pair is None:
                    continue
                base, g = pair
                assert key.scale is not None and g.pretrain_cost is not None
                ratio, bound = sample_efficiency_ratio(base.steps_to_threshold, g.steps_to_threshold)
                same_steps = (not base.steps_to_threshold.is_lower_bound and not g.steps_to_threshold.is_lower_bound
                              and base.steps_to_threshold.mean == g.steps_to_threshold.mean)
                # Pairing by seed holds both arms to the seeds both finished, as `pair` is.
                means = compare_mean_success(grouped[scratch], grouped[key], budgets[-1], eval_episodes)
                efficiency.append(
                    SampleEfficiency(target, key.scale, demos, base.steps_to_threshold, g.steps_to_threshold,
                                     ratio, bound, *(means or (None, None, None)))
                )
                break_evens.append(
                    BreakEvenResult(
                        target, key.scale, demos,
                        cpu=break_even(g.pretrain_cost.cpu_s, base.cpu_to_threshold, g.cpu_to_threshold, "cpu_s",
                                       same_steps),
                        wall=break_even(g.pretrain_cost.wall_s, base.wall_to_threshold, g.wall_to_threshold,
                                        "wall_s", same_steps),
                    )
                )
            compared = on_seeds([scratch, *at_demos])
            if compared is None:
                continue
            base, *by_group = compared
            seeds = set(base.seeds)
            for budget in budgets:
                scratch_stat = base.success[budget]
                by_scale = tuple(
                    (g.key.scale, None if g.success[budget] is None else g.success[budget].mean) for g in by_group
                )
                scratch_success = None if scratch_stat is None else scratch_stat.mean
                # paired_lead pairs by seed, so holding the scales to the shared seeds holds scratch to them too.
                leads = tuple(
                    (g.key.scale, paired_lead(grouped[scratch], [r for r in grouped[g.key] if r.seed in seeds],
                                              budget, eval_episodes))
                    for g in by_group)
                crossovers.append(CrossoverPoint(target, demos, budget, scratch_success, by_scale,
                                                 crossover_scale(scratch_success, by_scale), leads))
    return StudySummary(
        threshold=float(threshold),
        budgets=budgets,
        groups=groups,
        efficiency=tuple(efficiency),
        crossovers=tuple(crossovers),
        break_evens=tuple(break_evens),
        records=tuple(records),
        eval_time_left_out=eval_left_out,
    )


# A run with a core to itself spends about as much wall-clock as CPU time (less on 2 threads); well above that, it
# waited for a core other work was using.
SHARED_MACHINE_FACTOR = 1.25


def slowed_runs(records: Sequence[RunRecord], factor: float = SHARED_MACHINE_FACTOR) -> list[tuple[str, float]]:
    """(run_id, wall / CPU time) of the runs whose wall-clock time exceeds `factor` times their CPU time: the
    machine was shared while they ran, so their wall-clock costs overstate what they needed (CPU costs do not)."""
    return [(r.run_id, r.adapt_cost.wall_s / r.adapt_cost.cpu_s) for r in records if _waited(r.adapt_cost, factor)]


def slowed_pretraining(records: Sequence[RunRecord], factor: float = SHARED_MACHINE_FACTOR) -> list[tuple[str, float]]:
    """(scale label, wall / CPU time) of the pretraining scales whose collection and pretraining took more than
    `factor` times their CPU time in wall-clock, as slowed_runs for runs. (Collection with several workers spends
    more CPU than wall-clock time, so a slowed pretraining can also pass unseen.)"""
    costs = {r.pretrain_scale.label: r.pretrain_cost for r in records if r.pretrain_scale and r.pretrain_cost}
    return [(label, c.wall_s / c.cpu_s) for label, c in sorted(costs.items()) if _waited(c, factor)]


def _waited(cost: AdaptCost | PretrainCost, factor: float) -> bool:
    """Whether `cost` spent more than `factor` times its CPU time in wall-clock."""
    return cost.cpu_s > 0 and cost.wall_s > factor * cost.cpu_s


# ---------------------------------------------------------------------------------------------- as plain data


def comparison_rows(summary: StudySummary) -> list[dict[str, Any]]:
    """Each pretrained configuration against scratch at the same demos, as JSON-ready data: success at each budget
    (over the seeds every arm at those demos finished), steps to the threshold (over the seeds both finished), the
    sample-efficiency ratio and N* in CPU and wall-clock time, each with the direction of its bound (see
    SampleEfficiency and BreakEven), and each arm's mean success over 0..the largest budget with the lead in it
    (over the seeds both finished). An infinite value is written "inf"."""
    rows = []
    for eff in summary.efficiency:
        be = next(b for b in summary.break_evens if (b.target, b.scale, b.demos) == (eff.target, eff.scale, eff.demos))
        points = [c for c in summary.crossovers if (c.target, c.demos) == (eff.target, eff.demos)]
        rows.append({
            "target": eff.target, "scale": eff.scale.label, "demos": eff.demos, "seeds": eff.scratch_steps.n,
            "threshold": summary.threshold,
            "success_scratch": {str(c.budget): c.scratch_success for c in points},
            "success_pretrained": {str(c.budget): dict(c.by_scale).get(eff.scale) for c in points},
            "lead_over_scratch": {str(c.budget): _lead(dict(c.leads).get(eff.scale)) for c in points},
            "steps_to_threshold": {
                arm: {"mean": stat.mean, "censored_seeds": stat.n_censored}
                for arm, stat in (("scratch", eff.scratch_steps), ("pretrained", eff.adapted_steps))},
            "ratio": {"value": _plain(eff.ratio), "bound": eff.bound},
            "mean_success": {"budget": summary.budgets[-1], "scratch": _mean(eff.scratch_mean_success),
                             "pretrained": _mean(eff.adapted_mean_success), "lead": _lead(eff.mean_success_lead)},
            "n_star_cpu": {"value": _plain(be.cpu.n_star), "bound": be.cpu.kind, "reason": be.cpu.reason},
            "n_star_wall": {"value": _plain(be.wall.n_star), "bound": be.wall.kind, "reason": be.wall.reason},
        })
    return rows


def _lead(stat: SeedStat | None) -> dict[str, Any] | None:
    """A paired lead as plain data: mean, 95% interval over seeds (None with one seed; not clipped to [-1, 1], as
    the HTML shows it) and seed count."""
    return None if stat is None else {"mean": stat.mean, "ci": None if stat.ci is None else list(stat.ci),
                                      "seeds": stat.n}


def _mean(stat: SeedStat | None) -> float | None:
    return None if stat is None else stat.mean


def _plain(x: float | None) -> float | str | None:
    return "inf" if x is not None and math.isinf(x) else x
