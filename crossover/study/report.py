"""The study report: a self-contained report.html (plain CSS, no JS) with KPI tables and PNG figures next to it,
and the plain-text summary table for the terminal. Every number comes from a `kpi.StudySummary`."""

from __future__ import annotations

import html
import io
import math
from pathlib import Path
from typing import Callable, Sequence

from matplotlib.figure import Figure

from crossover.atomic import write_bytes_atomic
from crossover.errors import CrossoverError
from crossover.study.kpi import (
    SHARED_MACHINE_FACTOR,
    BreakEven,
    BreakEvenResult,
    GroupKey,
    GroupSummary,
    SampleEfficiency,
    SeedStat,
    StudySummary,
    mean_ci,
    slowed_pretraining,
    slowed_runs,
    success_at_budget,
    summarise,
    wilson_interval,
)
from crossover.study.records import PretrainScale, RunRecord

SUCCESS_FIGURE = "success_curves.png"
EFFICIENCY_FIGURE = "sample_efficiency.png"
BREAK_EVEN_FIGURE = "break_even.png"
_LINESTYLES = ("-", "--", ":", "-.")


# ---------------------------------------------------------------------------------------------- number formats
# One formatter per quantity, shared by the HTML and the text table, so both show the same digits.


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


GROUP_COLUMNS = ("target", "arm", "scale", "demos", "seeds")  # what names a group of runs, in every table


def _fmt_success(stat: SeedStat | None) -> str:
    return "-" if stat is None else f"{stat.mean:.2f}"


def _fmt_prior(stat: SeedStat | None, seeds: int) -> str:
    """The prior's success, saying over how many seeds when fewer runs measured it than the row counts."""
    if stat is None or stat.n == seeds:
        return _fmt_success(stat)
    return f"{stat.mean:.2f} ({stat.n} seed{'s' if stat.n > 1 else ''})"


def _steps(x: float) -> str:
    return f"{x:,.0f}"


def _fmt_to_threshold(stat: SeedStat, fmt: Callable[[float], str] = _steps) -> str:
    # When censored, stat.mean is the mean of the runs' full budgets/costs: the bound the KPIs were computed with.
    if stat.all_censored:
        return f"> max budget ({fmt(stat.mean)})"
    if stat.is_lower_bound:
        return f">= {fmt(stat.mean)} ({stat.n_censored}/{stat.n} never)"
    return fmt(stat.mean)


def _fmt_ratio(eff: SampleEfficiency | None) -> str:
    if eff is None:
        return "-"
    if eff.ratio is None:
        return "n/a (both zero-shot)" if _both_zero_shot(eff) else "n/a (both censored)"
    value = "inf" if math.isinf(eff.ratio) else f"{eff.ratio:.2f}x"
    return {"exact": value, "lower_bound": f">= {value}", "upper_bound": f"<= {value}"}.get(eff.bound, value)


def _fmt_cost(stat: SeedStat) -> str:
    return (">= " if stat.is_lower_bound else "") + _fmt_seconds(stat.mean)


def _fmt_n_star(be: BreakEven | None) -> str:
    if be is None:
        return "-"
    if be.kind == "never":
        return "never (inf)"
    if be.kind == "undetermined" or be.n_star is None:
        return "n/a"
    value = _num(be.n_star)
    return {"exact": value, "upper_bound": f"<= {value}", "lower_bound": f">= {value}"}[be.kind]


def _fmt_scale(scale: PretrainScale | None) -> str:
    return "-" if scale is None else scale.label


def _scale_detail(scale: PretrainScale) -> str:
    return f"{scale.label} ({scale.source_tasks} tasks x {scale.episodes_per_task} episodes)"


def _fmt_seconds(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


# ------------------------------------------------------------------------------------------ lookups by group


def _efficiency_for(summary: StudySummary, target: str, scale: PretrainScale | None, demos: int
                    ) -> SampleEfficiency | None:
    return next((e for e in summary.efficiency if (e.target, e.scale, e.demos) == (target, scale, demos)), None)


def _break_even_for(summary: StudySummary, group: GroupSummary) -> BreakEvenResult | None:
    return next(
        (b for b in summary.break_evens
         if (b.target, b.scale, b.demos) == (group.key.target, group.key.scale, group.key.demos)),
        None,
    )


# ------------------------------------------------------------------------------------------------- text forms


def summary_table(summary: StudySummary) -> str:
    """Plain-text KPI table, one row per (target, arm, scale, demos) group."""
    header = list(GROUP_COLUMNS)
    last = summary.budgets[-1]
    header += [f"success@{b:,}" for b in summary.budgets]
    header += [f"mean 0-{last:,}", f"steps to {summary.threshold:.2f}", "ratio", "N* cpu", "N* wall"]
    probed = any(g.prior_success for g in summary.groups)
    if probed:  # the policy prior alone, at the largest budget: is planning adding anything to it?
        header.append(f"prior alone@{last:,}")
    rows = [header]
    footnotes: dict[str, str] = {}  # caveat of an exact or never N* -> its mark
    seeds = {g.key: len(g.seeds) for g in summary.groups}
    for g in summary.groups:
        be = _break_even_for(summary, g)
        eff = _efficiency_for(summary, g.key.target, g.key.scale, g.key.demos)
        ratio = _fmt_ratio(eff)
        # The ratio and N* compare the seeds both arms finished; say so when the rows' own seed counts differ.
        scratch = GroupKey(g.key.target, "scratch", None, g.key.demos)
        if eff is not None and eff.adapted_steps.n < max(seeds[g.key], seeds.get(scratch, 0)):
            ratio += f" ({eff.adapted_steps.n} seed{'s' if eff.adapted_steps.n > 1 else ''} both finished)"
        rows.append(
            [g.key.target, g.key.arm, _fmt_scale(g.key.scale), str(g.key.demos), str(len(g.seeds))]
            + [_fmt_success(g.success[b]) for b in summary.budgets]
            + [
                _fmt_success(g.mean_success),
                _fmt_to_threshold(g.steps_to_threshold),
                ratio,
                *(_fmt_n_star(x) + _footnote(x, footnotes) for x in ((be.cpu, be.wall) if be else (None, None))),
            ]
            + ([_fmt_prior(g.prior_success.get(last), len(g.seeds))] if probed else [])
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"{mark} {reason}" for reason, mark in footnotes.items()]
    return "\n".join(lines) + "\n"


def _footnote(be: BreakEven | None, footnotes: dict[str, str]) -> str:
    """A mark (" *", " **", ...) for an exact or never N* with a caveat, the same mark for the same caveat; ""
    otherwise. footnotes collects caveat -> mark. (A bound's reason is what its <= or >= already says.)"""
    if be is None or be.kind not in ("exact", "never") or not be.reason:
        return ""
    mark = footnotes.setdefault(be.reason, "*" * (len(footnotes) + 1))
    return f" {mark}"


def _break_even_phrase(cpu: BreakEven, wall: BreakEven) -> str:
    """What pretraining's break-even is, in CPU and in wall-clock time, as the verb phrase of a sentence."""
    if cpu.kind == wall.kind == "never":
        return "never breaks even, in CPU or in wall-clock time (N* = infinity)"
    if cpu.kind == wall.kind == "undetermined":
        return "has a break-even point that is undetermined in CPU and in wall-clock time"
    return f"{_n_star_phrase(cpu, 'CPU time')} and {_n_star_phrase(wall, 'wall-clock time')}"


def _n_star_phrase(be: BreakEven, what: str) -> str:
    if be.kind == "never":
        return f"never breaks even in {what} (N* = infinity)"
    if be.kind == "undetermined":
        return f"has a break-even point that is undetermined in {what}"
    # _fmt_n_star already carries the bound's direction ("<= 2.50"); an exact value needs its "=".
    value = _fmt_n_star(be) if be.kind != "exact" else f"= {_fmt_n_star(be)}"
    return f"breaks even after N* {value} new tasks in {what}"


def _both_zero_shot(eff: SampleEfficiency) -> bool:
    return eff.scratch_steps.mean == 0 and eff.adapted_steps.mean == 0


def _ratio_phrase(eff: SampleEfficiency | None, threshold: float) -> str:
    goal = f"{threshold:.0%} success"
    if eff is None:
        return f"no comparison of env steps to {goal}"
    scratch = f"training from scratch with the same {eff.demos} demos" if eff.demos else "training from scratch"
    if eff.ratio is None:
        if _both_zero_shot(eff):
            return f"both arms reach {goal} before any training (0 env steps), so there is no ratio"
        every = " in every seed" if eff.scratch_steps.n > 1 else ""
        return f"the sample-efficiency ratio at {goal} is undetermined (neither arm reached it{every})"
    if math.isinf(eff.ratio):
        return f"it reaches {goal} zero-shot, where {scratch} needs " \
               f"{'at least ' if eff.bound == 'lower_bound' else ''}{_steps(eff.scratch_steps.mean)} env steps"
    if eff.ratio == 0:
        return f"{scratch} reaches {goal} before any training (0 env steps), where it needs " \
               f"{'at least ' if eff.adapted_steps.is_lower_bound else ''}{_steps(eff.adapted_steps.mean)} env steps"
    qualifier = {"lower_bound": "at least ", "upper_bound": "at most "}.get(eff.bound, "")
    if math.isclose(eff.ratio, 1.0) and eff.bound == "exact":
        return f"it reaches {goal} with as many env steps as {scratch}"
    if eff.ratio >= 1:
        return f"it reaches {goal} with {qualifier}{eff.ratio:.2f}x fewer env steps than {scratch}"
    # Below 1 the pretrained agent is the slower one; say it that way round (bounds flip with the inverse).
    qualifier = {"lower_bound": "at most ", "upper_bound": "at least "}.get(eff.bound, "")
    return f"it needs {qualifier}{1 / eff.ratio:.2f}x more env steps than {scratch} to reach {goal}"


def headlines(summary: StudySummary) -> list[str]:
    """One sentence per target: the best pretrained configuration's N* (CPU and wall-clock), step ratio, success
    at the largest budget and mean success over the whole budget against scratch's, and how many seeds that rests
    on."""
    # Best = the configuration that pays off soonest in CPU time: definite or bounded-above values first, then
    # bounded-below, then never, then undetermined; ties go to the larger scale. The tables show all the others.
    rank = {"exact": 0, "upper_bound": 0, "lower_bound": 1, "never": 2, "undetermined": 3}
    sentences = []
    for target in summary.targets:
        results = [b for b in summary.break_evens if b.target == target]
        if not results:
            sentences.append(f"{target}: {_why_no_comparison(summary, target)}, so there is no break-even or ratio "
                             f"to report.")
            continue
        # Among configurations that tie on N* (all undetermined, say), the one with the higher success at the
        # largest budget is the better.
        best = min(
            results,
            key=lambda b: (rank[b.cpu.kind], b.cpu.n_star if b.cpu.n_star is not None else math.inf,
                           -_final_success(summary, b)[1], tuple(-x for x in b.scale.order[:2]), b.demos),
        )
        eff = _efficiency_for(summary, target, best.scale, best.demos)
        reasons = "; ".join(dict.fromkeys(r for r in (best.cpu.reason, best.wall.reason) if r))
        seeds = best.cpu.scratch_per_task.n
        sentences.append(
            f"{target}: pretraining on {_scale_detail(best.scale)} and adapting with {best.demos} demos "
            f"{_break_even_phrase(best.cpu, best.wall)}"
            f"{f' ({reasons})' if reasons else ''}; {_ratio_phrase(eff, summary.threshold)}"
            f"{_final_success_phrase(summary, best)}{_mean_success_phrase(eff, summary.budgets[-1])} "
            f"(best of {len(results)} pretrained configuration{'s' if len(results) > 1 else ''}; "
            f"{seeds} seed{'s' if seeds > 1 else ''})."
        )
    return sentences


def _why_no_comparison(summary: StudySummary, target: str) -> str:
    groups = [g for g in summary.groups if g.key.target == target]
    arms = {g.key.arm for g in groups}
    if arms != {"scratch", "pretrained"}:
        return f"no {'scratch' if 'scratch' not in arms else 'pretrained'} runs"
    demos = {arm: {g.key.demos for g in groups if g.key.arm == arm} for arm in arms}
    if not demos["scratch"] & demos["pretrained"]:
        return "no scratch and pretrained runs with the same number of demos"
    return "no seed that both scratch and pretrained runs have finished"


def _final_success(summary: StudySummary, be: BreakEvenResult) -> tuple[float, float]:
    """(scratch, pretrained) mean success at the largest budget, over the seeds that scratch and every pretrained
    configuration with these demos finished, as the crossover table has it (-1 if unknown). With one scale, or all
    scales at the same seeds, these are the seeds of the ratio beside it."""
    point = next((c for c in summary.crossovers
                  if (c.target, c.demos, c.budget) == (be.target, be.demos, summary.budgets[-1])), None)
    if point is None:
        return -1.0, -1.0
    adapted = dict(point.by_scale).get(be.scale)
    return (-1.0 if point.scratch_success is None else point.scratch_success,
            -1.0 if adapted is None else adapted)


def _final_success_phrase(summary: StudySummary, be: BreakEvenResult) -> str:
    """When neither arm reaches the threshold the ratio says nothing; success at the largest budget still does."""
    scratch, adapted = _final_success(summary, be)
    if scratch < 0 or adapted < 0:
        return ""
    return (f"; at the largest budget ({summary.budgets[-1]:,} env steps) it succeeds {adapted:.0%} of the time "
            f"against {scratch:.0%} from scratch")


def _mean_success_phrase(eff: SampleEfficiency | None, budget: int) -> str:
    """Mean success over the whole budget, which weighs every evaluation (see kpi.mean_success)."""
    if eff is None or eff.adapted_mean_success is None or eff.scratch_mean_success is None:
        return ""
    return (f"; over 0-{budget:,} env steps its success averages {eff.adapted_mean_success.mean:.0%} against "
            f"{eff.scratch_mean_success.mean:.0%} from scratch")


def shared_machine_note(summary: StudySummary) -> str | None:
    """A warning naming the runs and pretraining scales that waited for a core (see kpi.slowed_runs and
    slowed_pretraining), or None if none did."""
    slowed, pretrained = slowed_runs(summary.records), slowed_pretraining(summary.records)
    if not slowed and not pretrained:
        return None
    what = [f"{len(slowed)} run{'s' if len(slowed) > 1 else ''}"] if slowed else []
    what += [f"the pretraining of {len(pretrained)} scale{'s' if len(pretrained) > 1 else ''}"] if pretrained else []
    named = ", ".join([f"{run_id} ({ratio:.2f}x)" for run_id, ratio in slowed]
                      + [f"pretraining {label} ({ratio:.2f}x)" for label, ratio in pretrained])
    return (f"note: {' and '.join(what)} took more than {SHARED_MACHINE_FACTOR:g}x their CPU time in wall-clock, so "
            f"the machine was shared: their wall-clock costs are overstated (CPU costs are not), and an N* in "
            f"wall-clock time built on them may lean either way: {named}")


def episode_noise_note(summary: StudySummary, eval_episodes: int) -> str | None:
    """For a study where some configuration has a single seed (so no interval over seeds): how uncertain a success
    measured on `eval_episodes` episodes is by itself, as Wilson intervals at a few rates; None if every
    configuration has two seeds or more."""
    single = [g for g in summary.groups if len(g.seeds) == 1]
    if not single:
        return None
    rates = sorted({0.2, 0.5, summary.threshold})
    spans = []
    for k in dict.fromkeys(round(r * eval_episodes) for r in rates):
        lo, hi = wilson_interval(k, eval_episodes)
        spans.append(f"{k}/{eval_episodes} is {lo:.2f} to {hi:.2f}")
    return (f"{len(single)} of the {len(summary.groups)} configurations rest on a single seed, so they have no "
            f"interval over seeds, and each success there is measured on {eval_episodes} evaluation episodes, which "
            f"is uncertain by itself: the 95% Wilson interval of {'; of '.join(spans)}")


# ---------------------------------------------------------------------------------------------------- figures


def _records_of(summary: StudySummary, group: GroupSummary) -> list[RunRecord]:
    ids = set(group.run_ids)
    return [r for r in summary.records if r.run_id in ids]


def _style_maps(summary: StudySummary) -> tuple[dict[PretrainScale, str], dict[int, str]]:
    scales = sorted({g.key.scale for g in summary.groups if g.key.scale is not None}, key=lambda s: s.order)
    palette = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
    colors = {s: palette[i % len(palette)] for i, s in enumerate(scales)}
    demos = sorted({g.key.demos for g in summary.groups})
    styles = {d: _LINESTYLES[i % len(_LINESTYLES)] for i, d in enumerate(demos)}
    return colors, styles


def _figure_grid(n_panels: int, n_cols: int, panel_size: tuple[float, float]) -> tuple[Figure, list]:
    n_rows = max(1, math.ceil(n_panels / n_cols))
    fig = Figure(figsize=(panel_size[0] * n_cols, panel_size[1] * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def _plot_success_curves(summary: StudySummary) -> Figure:
    colors, styles = _style_maps(summary)
    targets = summary.targets
    fig, axes = _figure_grid(len(targets), min(2, len(targets)), (6.0, 4.0))
    for ax, target in zip(axes, targets):
        for g in (g for g in summary.groups if g.key.target == target):
            runs = _records_of(summary, g)
            # Evaluate at every step any seed was evaluated, so the curve keeps the runs' own resolution.
            xs = sorted({p.env_steps for r in runs for p in r.curve})
            points = []
            for x in xs:
                values = [v for v in (success_at_budget(r.curve, x) for r in runs) if v is not None]
                if values:
                    points.append((x, mean_ci(values)))
            color = "black" if g.key.scale is None else colors[g.key.scale]
            label = f"{g.key.arm if g.key.scale is None else g.key.scale.label}, {g.key.demos} demos (n={len(runs)})"
            # Open squares for scratch, dots for pretrained: where the lines coincide (at 0, often) both still show.
            marker = dict(marker="s", markerfacecolor="none", markersize=6) if g.key.scale is None else \
                dict(marker="o", markersize=3)
            ax.plot([x for x, _ in points], [s.mean for _, s in points], color=color,
                    linestyle=styles[g.key.demos], label=label, **marker)
            banded = [(x, s.ci) for x, s in points if s.ci is not None]
            if banded:
                # A success rate lives in [0, 1]; the t interval can overshoot with few seeds.
                ax.fill_between([x for x, _ in banded], [max(0.0, ci[0]) for _, ci in banded],
                                [min(1.0, ci[1]) for _, ci in banded], color=color, alpha=0.15, linewidth=0)
        ax.axhline(summary.threshold, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"threshold {summary.threshold:.0%}", (0, summary.threshold), xycoords=("axes fraction", "data"),
                    xytext=(2, 2), textcoords="offset points", fontsize="x-small", color="grey")
        for b in summary.budgets:
            ax.axvline(b, color="lightgrey", linewidth=0.8, zorder=0)
        ax.set_title(f"{target} (grey verticals: budgets)")
        ax.set_xlabel("env steps (adaptation budget)")
        ax.set_ylabel("success rate")
        ax.set_ylim(-0.02, 1.02)
        # Below the panel, not on it: a study's curves cross the whole plot area.
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    return fig


def _plot_efficiency(summary: StudySummary) -> Figure:
    colors, _ = _style_maps(summary)
    targets = summary.targets
    fig, axes = _figure_grid(len(targets), min(2, len(targets)), (6.0, 4.0))
    for ax, target in zip(axes, targets):
        effs = [e for e in summary.efficiency if e.target == target]
        if not effs:
            ax.text(0.5, 0.5, "no scratch / pretrained pair", ha="center", va="center", transform=ax.transAxes)
        finite = [e.ratio for e in effs if e.ratio is not None and math.isfinite(e.ratio)]
        # Infinite ratios (zero-shot success) are drawn at the top of the axis and labelled, not dropped.
        top = max(finite + [1.0]) * 1.25
        for i, e in enumerate(effs):
            if e.ratio is None:  # no bar: a zero-height one would read as a ratio of 0
                ax.text(i, 0.5 * top, _fmt_ratio(e).replace(" (", "\n("), ha="center", va="center")
                continue
            height = top if math.isinf(e.ratio) else e.ratio
            ax.bar(i, height, color=colors[e.scale], hatch="//" if e.bound != "exact" else None, edgecolor="black")
            # A bound points the way the true ratio lies: up from a lower bound, down from an upper one.
            arrow = {"lower_bound": "^", "upper_bound": "v"}.get(e.bound)
            if arrow:
                ax.plot([i], [height], marker=arrow, color="black", markersize=9)
            ax.annotate(_fmt_ratio(e), (i, height), xytext=(0, 7 if arrow else 1), textcoords="offset points",
                        ha="center", va="bottom", fontsize="small")
        ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(range(len(effs)), [f"{e.scale.label}\n{e.demos} demos, n={e.scratch_steps.n}" for e in effs],
                      fontsize="small")
        ax.set_xlim(-0.6, max(len(effs), 1) - 0.4)
        ax.set_ylim(0, top * 1.15)
        ax.set_ylabel(f"scratch / adapted steps to {summary.threshold:.0%}")
        ax.set_title(f"{target} (hatched, arrow: bound from censored runs)")
    return fig


def _plot_break_even(summary: StudySummary) -> Figure:
    colors, styles = _style_maps(summary)
    targets = summary.targets
    fig, axes = _figure_grid(2 * len(targets), 2, (6.0, 4.0))
    for row, target in enumerate(targets):
        results = [b for b in summary.break_evens if b.target == target]
        for col, unit in enumerate(("cpu", "wall")):
            ax = axes[2 * row + col]
            items: list[BreakEven] = [getattr(b, unit) for b in results]
            finite = [be.n_star for be in items if be.n_star is not None and math.isfinite(be.n_star)]
            n_max = max([5.0] + [1.5 * n for n in finite])
            xs = [n_max * i / 100 for i in range(101)]
            scratch_done: set[int] = set()  # one scratch line per number of demos
            unknowns: list[str] = []
            peak = max([1.0] + [max(be.cumulative_cost(n_max)) for be in items])
            unit_name, per = (
                ("hours", 3600.0) if peak >= 7200 else ("minutes", 60.0) if peak >= 120 else ("seconds", 1.0)
            )
            for b, be in zip(results, items):
                if b.demos not in scratch_done:
                    scratch_done.add(b.demos)
                    bound = " (lower bound)" if be.scratch_per_task.is_lower_bound else ""
                    ax.plot(xs, [be.cumulative_cost(x)[0] / per for x in xs], color="black",
                            linestyle=styles[b.demos], label=f"scratch, {b.demos} demos{bound}")
                bound = " (lower bound)" if be.adapt_per_task.is_lower_bound else ""
                ax.plot(xs, [be.cumulative_cost(x)[1] / per for x in xs], color=colors[b.scale],
                        linestyle=styles[b.demos], label=f"pretrain {b.scale.label} + adapt, {b.demos} demos{bound}")
                if be.n_star is not None and math.isfinite(be.n_star):
                    ax.plot([be.n_star], [be.cumulative_cost(be.n_star)[0] / per], "o", color=colors[b.scale])
                    ax.annotate(f"N* {_fmt_n_star(be)}", (be.n_star, be.cumulative_cost(be.n_star)[0] / per),
                                textcoords="offset points", xytext=(4, -12), fontsize="small")
                else:  # where lines drawn from bounds cross, or never do, the crossing is not N*: say what N* is
                    unknowns.append(f"{b.scale.label}, {b.demos} demos: N* "
                                    + ("undetermined" if be.kind == "undetermined" else _fmt_n_star(be)))
            what = "CPU" if unit == "cpu" else "wall-clock"
            if not results:
                ax.text(0.5, 0.5, "no scratch / pretrained pair", ha="center", va="center", transform=ax.transAxes)
            else:
                ax.legend(fontsize="x-small")
            ax.set_title(f"{target}: cumulative {what} cost")
            ax.set_xlabel("\n".join(["number of new tasks", *unknowns]))
            ax.set_ylabel(f"{what} {unit_name}")
    return fig


# --------------------------------------------------------------------------------------------- atomic writing


def _save_figure(fig: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    write_bytes_atomic(path, buffer.getvalue())


# --------------------------------------------------------------------------------------------------- the HTML

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
.headline { background: #f3f6fa; border-left: 4px solid #3a6ea5; padding: 0.6em 1em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
.ci { color: #777; font-size: 0.85em; }
img { max-width: 100%; } .note { color: #555; font-size: 0.9em; }
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int]) -> str:
    """An HTML table; cells are already-escaped HTML; columns in `left` are left-aligned (text), others numbers."""

    def cell(tag: str, i: int, text: str) -> str:
        cls = ' class="l"' if i in left else ""
        return f"<{tag}{cls}>{text}</{tag}>"

    head = "".join(cell("th", i, html.escape(h)) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>\n" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>\n"


def _ci_span(stat: SeedStat, fmt: Callable[[float], str], low: float, high: float = math.inf) -> str:
    """The 95% interval as a small grey span, clipped to the values the quantity can take."""
    if stat.ci is None:
        return ""
    lo, hi = max(stat.ci[0], low), min(stat.ci[1], high)
    return f' <span class="ci">[{html.escape(fmt(lo))}, {html.escape(fmt(hi))}]</span>'


def _lead_cell(stat: SeedStat | None) -> str:
    """A scale's lead over scratch with its 95% interval over seeds, or the count of its single seed."""
    if stat is None:
        return "-"
    interval = _ci_span(stat, lambda x: f"{x:+.2f}", -1.0, 1.0) if stat.ci else " (1 seed)"
    return f"{stat.mean:+.2f}{interval}"


def _success_cell(stat: SeedStat | None) -> str:
    if stat is None:
        return "-"
    return f"{stat.mean:.2f}" + _ci_span(stat, lambda x: f"{x:.2f}", 0.0, 1.0)


def _to_threshold_cell(stat: SeedStat, fmt: Callable[[float], str] = _steps) -> str:
    return html.escape(_fmt_to_threshold(stat, fmt)) + _ci_span(stat, fmt, 0.0)  # censored stats have no ci


def _group_cells(g: GroupSummary, seeds: int) -> list[str]:
    """The GROUP_COLUMNS cells of an HTML row, escaped."""
    return [html.escape(g.key.target), html.escape(g.key.arm), html.escape(_fmt_scale(g.key.scale)), str(g.key.demos),
            str(seeds)]


def _render_html(summary: StudySummary, title: str, preface: Sequence[str] = ()) -> str:
    e = html.escape
    thr = summary.threshold
    parts = [
        f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{e(title)}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{e(title)}</h1>\n"
    ]
    parts += [f'<p class="note">{e(s)}</p>\n' for s in preface]
    parts += [f'<p class="headline">{e(s)}</p>\n' for s in headlines(summary)]
    parts.append(
        f'<p class="note">{len(summary.records)} runs; success threshold {thr:.2f}; budgets '
        f"{', '.join(f'{b:,}' for b in summary.budgets)} env steps. Means over seeds with 95% Student-t "
        "intervals (none for a single seed; clipped to the range a quantity can take). A run that never reached "
        "the threshold is censored: it is shown as &gt; max budget, and any mean that includes it is a lower bound "
        "(&gt;=).</p>\n"
    )

    parts.append("<h2>KPIs per configuration</h2>\n")
    last = summary.budgets[-1]
    header = [*GROUP_COLUMNS, *(f"success @ {b:,}" for b in summary.budgets)]
    header += [f"mean success 0-{last:,}", f"steps to {thr:.2f}", f"CPU to {thr:.2f}", f"wall to {thr:.2f}"]
    rows = []
    for g in summary.groups:
        rows.append(
            _group_cells(g, len(g.seeds))
            + [_success_cell(g.success[b]) for b in summary.budgets]
            + [
                _success_cell(g.mean_success),
                _to_threshold_cell(g.steps_to_threshold),
                _to_threshold_cell(g.cpu_to_threshold, _fmt_seconds),
                _to_threshold_cell(g.wall_to_threshold, _fmt_seconds),
            ]
        )
    parts.append(_table(header, rows, left=(0, 1, 2)))
    parts.append(f'<img src="{SUCCESS_FIGURE}" alt="success versus env-step budget per target">\n')
    probed = [g for g in summary.groups if g.prior_success]
    if probed:
        parts.append("<h2>The policy prior alone</h2>\n<p class=\"note\">Success of the policy prior's mean action "
                     "without planning, on the same evaluation episodes: a probe of the planner (<code>crossover "
                     "report --acting prior</code> takes the KPIs from it). Where planning scores below the prior, "
                     "the world model's reward and value are not yet telling good actions from bad. Seeds: the runs "
                     "that measured it (from 2026-11-27).</p>\n")
        header = [*GROUP_COLUMNS, *(f"prior @ {b:,}" for b in summary.budgets)]
        rows = [_group_cells(g, max((s.n for s in g.prior_success.values() if s), default=0))
                + [_success_cell(g.prior_success.get(b)) for b in summary.budgets] for g in probed]
        parts.append(_table(header, rows, left=(0, 1, 2)))

    parts.append(f"<h2>Sample efficiency (steps to {thr:.0%} success, scratch / adapted)</h2>\n")
    parts.append(f'<p class="note">Mean success 0-{last:,}: the area under the success curve over the budget, '
                 "divided by it. The ratio rests on the first evaluation pair to reach the threshold; the mean "
                 "success weighs every evaluation, so it also sees an arm that fell away after reaching the threshold "
                 "or hovered just under it. Its lead is pretrained minus scratch, seed against seed.</p>\n")
    rows = [
        [e(x.target), e(x.scale.label), str(x.demos), str(x.scratch_steps.n),
         _to_threshold_cell(x.scratch_steps), _to_threshold_cell(x.adapted_steps), e(_fmt_ratio(x)),
         _success_cell(x.scratch_mean_success), _success_cell(x.adapted_mean_success), _lead_cell(x.mean_success_lead)]
        for x in summary.efficiency
    ]
    # Both arms have the same demos, and only the seeds both finished are compared.
    header = ["target", "scale", "demos", "seeds compared", "scratch steps", "adapted steps", "ratio",
              f"scratch mean success 0-{last:,}", f"adapted mean success 0-{last:,}", "lead in mean success"]
    parts.append(_table(header, rows, left=(0, 1)))
    parts.append(f'<img src="{EFFICIENCY_FIGURE}" alt="sample-efficiency ratio per target">\n')

    parts.append("<h2>Crossover along pretraining scale</h2>\n")
    parts.append('<p class="note">The smallest scale (by source tasks, then episodes per task) whose mean success at '
                 "the budget exceeds scratch's, and the smallest whose lead is clear: the 95% interval of its "
                 "success minus scratch's, seed against seed, lies above zero. The interval is never narrower than "
                 "the noise of the evaluation episodes, since a lead on the mean alone can be that noise; one seed "
                 "gives no interval, so no lead is clear.</p>\n")
    rows = [
        [e(c.target), str(c.demos), f"{c.budget:,}", "-" if c.scratch_success is None else f"{c.scratch_success:.2f}",
         e(", ".join(f"{s.label}: {'-' if v is None else f'{v:.2f}'}" for s, v in c.by_scale)),
         ", ".join(f"{e(s.label)}: {_lead_cell(lead)}" for s, lead in c.leads),
         e(c.scale.label if c.scale else "none"), e(c.clear_scale.label if c.clear_scale else "none")]
        for c in summary.crossovers
    ]
    header = ["target", "demos", "budget", "scratch success", "pretrained success by scale",
              "lead over scratch by scale", "crossover scale (mean)", "clear crossover scale"]
    parts.append(_table(header, rows, left=(0, 4, 5, 6, 7)))

    parts.append("<h2>Break-even number of new tasks N*</h2>\n")
    parts.append('<p class="note">N* = pretraining cost / (scratch cost per task &minus; adaptation cost per task), '
                 "where a task's cost is the CPU or wall-clock time to reach the threshold: the first evaluation "
                 "that, averaged with the next one, is at or above it. "
                 + ("Time spent evaluating is left out, so the evaluation schedule favours neither arm. "
                    if summary.eval_time_left_out else
                    "Time spent evaluating is included: some runs were made before it was timed apart. ")
                 + "Each pretrained configuration is compared with scratch at the same number of demos, over the "
                 "seeds both finished.</p>\n")
    shared = shared_machine_note(summary)
    if shared:
        parts.append(f'<p class="note">{e(shared[0].upper() + shared[1:])}.</p>\n')
    rows = []
    for b in summary.break_evens:
        notes = "; ".join(dict.fromkeys(r for r in (b.cpu.reason, b.wall.reason) if r))
        rows.append(
            [e(b.target), e(b.scale.label), str(b.demos),
             e(f"{_fmt_seconds(b.cpu.pretrain_cost)} / {_fmt_seconds(b.wall.pretrain_cost)}"),
             e(f"{_fmt_cost(b.cpu.scratch_per_task)} / {_fmt_cost(b.wall.scratch_per_task)}"),
             e(f"{_fmt_cost(b.cpu.adapt_per_task)} / {_fmt_cost(b.wall.adapt_per_task)}"),
             e(_fmt_n_star(b.cpu)), e(_fmt_n_star(b.wall)), e(notes)]
        )
    parts.append(_table(["target", "scale", "demos", "pretrain cost (CPU / wall)", "scratch per task (CPU / wall)",
                         "adapt per task (CPU / wall)", "N* CPU", "N* wall", "note"], rows, left=(0, 1, 8)))
    parts.append(f'<img src="{BREAK_EVEN_FIGURE}" alt="cumulative cost versus number of new tasks">\n')

    parts.append("<h2>Terminal summary</h2>\n<pre>" + e(summary_table(summary)) + "</pre>\n</body>\n</html>\n")
    return "".join(parts)


def write_report(
    study_dir: str | Path,
    summary_or_records: StudySummary | Sequence[RunRecord],
    threshold: float | None = None,
    budgets: Sequence[int] | None = None,
    title: str | None = None,
    preface: Sequence[str] = (),
) -> Path:
    """Write report.html and its PNG figures into study_dir; returns the path of report.html. Pass a
    StudySummary, or run records together with threshold and budgets (then they are summarised here). Each line
    of `preface` is a note under the title."""
    study_dir = Path(study_dir)
    if isinstance(summary_or_records, StudySummary):
        if threshold is not None or budgets is not None:
            raise CrossoverError(
                "write_report: threshold and budgets come from the StudySummary; pass them only with records"
            )
        summary = summary_or_records
    else:
        if threshold is None or budgets is None:
            raise CrossoverError(
                "write_report: pass threshold and budgets when giving run records instead of a StudySummary"
            )
        summary = summarise(list(summary_or_records), threshold, budgets)
    if not study_dir.is_dir():
        raise CrossoverError(f"{study_dir}: study directory does not exist")

    _save_figure(_plot_success_curves(summary), study_dir / SUCCESS_FIGURE)
    _save_figure(_plot_efficiency(summary), study_dir / EFFICIENCY_FIGURE)
    _save_figure(_plot_break_even(summary), study_dir / BREAK_EVEN_FIGURE)
    report = study_dir / "report.html"
    page = _render_html(summary, title or f"Crossover study: {study_dir.name}", preface)
    write_bytes_atomic(report, page.encode("utf-8"))
    return report
