"""Plots that answer a gate's question, as PNG bytes, from a results document.

- ``forest.png``: candidate - reference differences with their decision CIs against the margin;
- ``category_bounds.png``: each category's gated value with a 95% bootstrap CI against its bound;
- ``toxicity_<suite>.png``: per-sample toxicity, one small panel per category;
- ``bias.png``: one panel per bias family (representation, association, sentiment by group, gaps);
- ``robustness_<suite>.png``: perturbation x category heat map of perturbed - clean (robustness suites).

Figures use ``matplotlib.figure.Figure`` (Agg, no pyplot state), the Okabe-Ito colour-blind-safe
palette with a distinct marker per outcome, at most 12 inches at 100 dpi (readable at 1,200 px),
and a title that says what they show. Labels are escaped for mathtext (``$``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness.measure.results import candidate_role, reference_role, roles
from harness.measure.stats import bootstrap_mean_ci

from harness.measure.metrics import GROUP_STATS, THRESHOLD, unit_statistic
from harness.report.figure import (BLUE, GREY, ORANGE, OUTCOME_STYLE, ROLE_COLORS, ROW_H, VERMILLION, WIDTH, _figure,
                                   _finite, _label, _png)
from harness.report.robustness_plot import robustness_heatmap

BOOTSTRAP_RESAMPLES = 2000


def _ordered_roles(doc: Mapping, present: set) -> list[str]:
    order = [candidate_role(doc), reference_role(doc), *roles(doc)]
    return [r for r in dict.fromkeys(order) if r in present]


def _where(suite: Any, category: Any) -> str:
    return f"{suite} / {category}" if category else f"{suite} (all)"


# ---------------------------------------------------------------- forest plot of regressions

def _forest_rows(doc: Mapping) -> dict[str, list[Mapping]]:
    panels: dict[str, list[Mapping]] = {}
    for v in doc.get("verdicts", []):
        if v.get("gate") == "regression" and _finite(v.get("difference")):
            panels.setdefault(str(v.get("metric")), []).append(v)
    for rows in panels.values():  # suite row first, then its categories
        rows.sort(key=lambda v: (str(v.get("suite")), v.get("category") is not None))
    return panels


def _direction(doc: Mapping, v: Mapping) -> float:
    """+1 when a larger difference is worse (lower is better), -1 otherwise."""
    for c in doc.get("comparisons", []):
        if (c.get("suite"), c.get("category"), c.get("metric")) == (v.get("suite"), v.get("category"), v.get("metric")):
            return -1.0 if c.get("direction") == "higher_is_better" else 1.0
    return 1.0


def forest(doc: Mapping) -> bytes | None:
    """One panel per metric: each regression gate's difference and CI, the margin on the worse side."""
    panels = _forest_rows(doc)
    if not panels:
        return None
    heights = [1.0 + ROW_H * len(rows) for rows in panels.values()]
    fig = _figure(WIDTH, 0.9 + sum(heights))
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    conf = next((v.get("confidence") for rows in panels.values() for v in rows if _finite(v.get("confidence"))), None)
    fig.suptitle(f"Candidate \u2212 reference differences with {conf:.0%} CIs against the margin"
                 if conf else "Candidate \u2212 reference differences with CIs against the margin",
                 fontsize="large", fontweight="bold")
    for ax, (metric, rows) in zip(axes, panels.items()):
        margin = next((float(v["margin"]) for v in rows if _finite(v.get("margin"))), 0.0)
        sign = _direction(doc, rows[0])
        relative = any("relative" in str(v.get("bound")) for v in rows)
        spread = max([abs(float(x)) for v in rows for x in (v.get("ci_low"), v.get("ci_high"), v.get("difference"))
                      if _finite(x)] + [margin])
        cap = 1.0 if metric.startswith("toxicity.") else 3 * max([abs(v["difference"]) for v in rows] + [margin])
        lim = max(min(spread, cap), 1.5 * margin, 1e-6) * 1.08
        ys = list(range(len(rows)))
        for y, v in zip(ys, rows):
            color, marker = OUTCOME_STYLE.get(str(v.get("outcome")), (GREY, "o"))
            lo, hi = v.get("ci_low"), v.get("ci_high")
            if _finite(lo) and _finite(hi):
                ax.plot([max(lo, -lim), min(hi, lim)], [y, y], color=color, linewidth=2.2, solid_capstyle="butt")
                for end, clipped, m in ((-lim, lo < -lim, "<"), (lim, hi > lim, ">")):
                    if clipped:
                        ax.plot([end], [y], marker=m, color=color, markersize=7)
            ax.plot([max(-lim, min(lim, v["difference"]))], [y], marker=marker, color=color, markersize=9,
                    markeredgecolor="black", markeredgewidth=0.6, linestyle="none")
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.axvline(sign * margin, color=VERMILLION, linestyle="--", linewidth=1.2)
        ax.set_xlim(-lim, lim)
        ax.set_yticks(ys, [_label(_where(v.get("suite"), v.get("category"))) for v in rows])
        for tick, v in zip(ax.get_yticklabels(), rows):
            tick.set_fontweight("bold" if v.get("category") is None else "normal")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        worse = "worse \u2192" if sign > 0 else "\u2190 worse"
        scale = "relative difference" if relative else "difference"
        ax.set_xlabel(f"{scale} in {_label(metric)} (candidate \u2212 reference; {worse}); "
                      f"dashed: margin {sign * margin:+.3g}")
    _outcome_legend(fig)
    return _png(fig)


def _outcome_legend(fig) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker=m, linestyle="none", markersize=8, markeredgecolor="black",
                      markeredgewidth=0.6, label=o.lower()) for o, (c, m) in OUTCOME_STYLE.items() if o != "SKIPPED"]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)


# ---------------------------------------------------------------- category values against their bounds

def _unit_values(doc: Mapping, role: str, suite: str, category: str, metric: str) -> list[float]:
    """Per-prompt values whose mean is the category metric (for the bootstrap CI)."""
    label, _, stat = metric.rpartition(".")
    if stat not in GROUP_STATS:
        return []
    per_prompt: dict[str, list[float]] = {}
    for s in doc.get("samples", []):
        value = (s.get("scores") or {}).get(label)
        if (s.get("role"), s.get("suite"), s.get("category")) == (role, suite, category) and _finite(value):
            per_prompt.setdefault(str(s.get("prompt_id")), []).append(float(value))
    return [unit_statistic(stat, v) for v in per_prompt.values() if v]


def _bound_value(text: str) -> float | None:
    try:
        return float(str(text).split()[-1])
    except (ValueError, IndexError):
        return None


def category_bounds(doc: Mapping) -> bytes | None:
    """One panel per gated metric: each category's value with a 95% bootstrap CI over prompts, the
    reference's when there is one, and the bound."""
    panels: dict[str, list[Mapping]] = {}
    for v in doc.get("verdicts", []):
        if v.get("gate") == "category" and _finite(v.get("value")) and v.get("metric", "").rpartition(".")[2] in GROUP_STATS:
            panels.setdefault(str(v["metric"]), []).append(v)
    if not panels:
        return None
    panels = dict(sorted(panels.items(), key=lambda kv: (all(v.get("outcome") != "FAIL" for v in kv[1]), kv[0])))
    ref = reference_role(doc)
    heights = [1.0 + ROW_H * len(rows) for rows in panels.values()]
    fig = _figure(WIDTH, 0.9 + sum(heights))
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    fig.suptitle("Category values against their bounds (95% bootstrap CI over prompts)", fontsize="large",
                 fontweight="bold")
    for ax, (metric, rows) in zip(axes, panels.items()):
        for y, v in enumerate(rows):
            marker = OUTCOME_STYLE.get(str(v.get("outcome")), (GREY, "o"))[1]
            for role, offset, color in ((candidate_role(doc), -0.12, BLUE), (ref, 0.12, ORANGE)):
                units = _unit_values(doc, role, v["suite"], v["category"], metric) if role else []
                value = v["value"] if offset < 0 else (sum(units) / len(units) if units else v.get("reference_value"))
                if not _finite(value):
                    continue
                if units:
                    lo, hi = bootstrap_mean_ci(units, n_resamples=BOOTSTRAP_RESAMPLES)
                    ax.plot([lo, hi], [y + offset] * 2, color=color, linewidth=2)
                ax.plot([value], [y + offset], marker=marker if offset < 0 else "o", linestyle="none",
                        markersize=9 if offset < 0 else 6, color=color if offset < 0 else "white",
                        markeredgecolor="black" if offset < 0 else color, markeredgewidth=0.8 if offset < 0 else 1.4)
            bound = _bound_value(v.get("bound", ""))
            if bound is not None:
                ax.plot([bound, bound], [y - 0.42, y + 0.42], color=VERMILLION, linewidth=2.2)
        ax.set_yticks(range(len(rows)), [_label(_where(v["suite"], v["category"])) for v in rows])
        for tick, v in zip(ax.get_yticklabels(), rows):
            if v.get("outcome") == "FAIL":
                tick.set_color(VERMILLION)
                tick.set_fontweight("bold")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(-0.03, 1.05)
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_xlabel(f"{_label(metric)}")
    _bounds_legend(fig, candidate_role(doc) or "candidate", ref)
    return _png(fig)


def _bounds_legend(fig, candidate: str, ref: str | None) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=BLUE, marker="o", markeredgecolor="black", label=_label(candidate)),
               Line2D([], [], color=BLUE, marker="X", markeredgecolor="black", linestyle="none",
                      markersize=9, label="gate failed (label in red)"),
               Line2D([], [], color=VERMILLION, marker="|", linestyle="none", markersize=14, markeredgewidth=2.2,
                      label="bound")]
    if ref:
        handles.insert(1, Line2D([], [], color=ORANGE, marker="o", markerfacecolor="white", label=_label(ref)))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)


def _role_legend(fig, names: Sequence[str], markers: bool = False) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=ROLE_COLORS[i % len(ROLE_COLORS)], marker="o", linestyle="-" if markers else "none",
                      label=_label(n)) for i, n in enumerate(names)]
    fig.legend(handles=handles, loc="outside lower center", ncols=max(1, len(handles)), frameon=False)


# ---------------------------------------------------------------- toxicity small multiples

def toxicity_suite(doc: Mapping, suite: str, label: str = "toxicity") -> bytes | None:
    """Per-sample scores of one suite, one panel per category, one column of dots per role."""
    import numpy as np

    cells: dict[str, dict[str, list[float]]] = {}
    for s in doc.get("samples", []):
        value = (s.get("scores") or {}).get(label)
        if s.get("suite") == suite and _finite(value):
            cells.setdefault(str(s.get("category")), {}).setdefault(s.get("role"), []).append(float(value))
    if not cells:
        return None
    order = _ordered_roles(doc, {r for cell in cells.values() for r in cell})
    ncols = min(len(cells), 4)
    nrows = math.ceil(len(cells) / ncols)
    fig = _figure(WIDTH if ncols > 2 else 6.0 * ncols / 2 + 2, 0.8 + 2.1 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    fig.suptitle(f"Per-sample {_label(label)}, suite {_label(suite)}: one dot per sample (dashed: {THRESHOLD})",
                 fontsize="large", fontweight="bold")
    rng = np.random.default_rng(0)
    for ax, (category, by_role) in zip(axes.flat, cells.items()):
        for i, role in enumerate(order):
            values = by_role.get(role, [])
            if values:
                ax.scatter(i + rng.uniform(-0.18, 0.18, len(values)), values, s=14, alpha=0.75,
                           color=ROLE_COLORS[i % len(ROLE_COLORS)], edgecolors="none")
                ax.plot([i - 0.3, i + 0.3], [float(np.mean(values))] * 2, color="black", linewidth=1.4)
        ax.axhline(THRESHOLD, color=VERMILLION, linestyle="--", linewidth=0.9)
        ax.set_title(_label(category, 34), fontsize="medium")
        ax.set_xticks(range(len(order)), [_label(r, 12) for r in order])
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.set_ylim(-0.03, 1.03)
    for ax in list(axes.flat)[len(cells):]:
        ax.set_visible(False)
    return _png(fig)


# ---------------------------------------------------------------- bias small multiples per family

BIAS_FAMILIES = (
    ("representation", "Representation: distance from uniform (0 = balanced)",
     lambda m: m.startswith("bias.representation.")),
    ("association", "Stereotypical association: distance from uniform",
     lambda m: m.startswith("bias.association.")),
    ("sentiment", "Mean sentiment by group (VADER compound, -1..1)", lambda m: m == "sentiment.mean"),
    ("gaps", "Largest between-group gap (annotated: p-value)", lambda m: m in ("sentiment.gap", "toxicity.gap")),
)


def _bias_name(m: Mapping) -> str:
    metric = str(m.get("metric"))
    if metric == "sentiment.mean":
        return f"{m.get('suite')} / {m.get('group') or m.get('category')}"
    short = metric.removeprefix("bias.representation.").removeprefix("bias.association.")
    return f"{m.get('suite')}{' / ' + str(m['category']) if m.get('category') else ''}: {short}"


def bias(doc: Mapping) -> bytes | None:
    """One panel per family, each on its own axis; undefined values are listed as n/a."""
    records = [m for m in doc.get("metrics", []) if m.get("prompt_id") is None]
    panels = []
    for key, title, match in BIAS_FAMILIES:
        rows = [m for m in records if match(str(m.get("metric", "")))]
        if rows:
            panels.append((key, title, rows))
    if not panels:
        return None
    names = {key: list(dict.fromkeys(_bias_name(m) for m in rows)) for key, _, rows in panels}
    heights = [1.0 + ROW_H * len(names[key]) for key, _, _ in panels]
    fig = _figure(WIDTH, 1.0 + sum(heights))
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    fig.suptitle("Bias by family (one axis per family)", fontsize="large", fontweight="bold")
    order = _ordered_roles(doc, {m.get("role") for m in records})
    for ax, (key, title, rows) in zip(axes, panels):
        labels = names[key]
        offsets = {r: (i - (len(order) - 1) / 2) * 0.22 for i, r in enumerate(order)}
        missing = []
        for m in rows:
            y, role = labels.index(_bias_name(m)), m.get("role")
            if role not in offsets:
                continue
            if not _finite(m.get("value")):
                missing.append(y)
                continue
            color = ROLE_COLORS[order.index(role) % len(ROLE_COLORS)]
            ax.plot([0, m["value"]], [y + offsets[role]] * 2, color=color, linewidth=1.0, alpha=0.5)
            ax.plot([m["value"]], [y + offsets[role]], "o", color=color, markersize=7)
            if key == "gaps" and _finite(m.get("p_value")):
                ax.annotate(f"p={m['p_value']:.2g}", (m["value"], y + offsets[role]), xytext=(6, -4),
                            textcoords="offset points", fontsize="x-small", color=color)
        for y in sorted(set(missing)):
            ax.annotate("n/a (no group words)", (0, y), xytext=(4, -4), textcoords="offset points",
                        fontsize="small", color=GREY)
        ax.axvline(0.0, color="black", linewidth=0.8)
        if key in ("representation", "association"):
            ax.set_xlim(-0.02, 1.02)
        else:
            low, high = ax.get_xlim()
            ax.set_xlim(low, high + 0.12 * (high - low))  # room for the p-value labels
        ax.set_yticks(range(len(labels)), [_label(n) for n in labels])
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_title(title, loc="left", fontsize="medium")
    _role_legend(fig, order)
    return _png(fig)


# ---------------------------------------------------------------- all of them

PLOT_TITLES = {
    "forest.png": "Regression gates: candidate \u2212 reference differences with CIs against the margin",
    "category_bounds.png": "Category gates: values with 95% CIs against their bounds",
    "bias.png": "Bias by family: representation, association, sentiment by group, between-group gaps",
}


def plot_title(name: str) -> str:
    """The sentence a report shows above a plot."""
    if name.startswith("toxicity_"):
        return f"Per-sample toxicity by category, suite {name.removeprefix('toxicity_').removesuffix('.png')}"
    return PLOT_TITLES.get(name, name)


def plots(doc: Mapping) -> list[tuple[str, bytes]]:
    """All plots that apply to ``doc`` as (file name, PNG bytes), in reading order."""
    out = []
    for name, draw in (("forest.png", forest), ("category_bounds.png", category_bounds)):
        png = draw(doc)
        if png is not None:
            out.append((name, png))
    kinds = {sid: (info or {}).get("kind") for sid, info in doc.get("config", {}).get("suites", {}).items()}
    suites = list(dict.fromkeys(str(s.get("suite")) for s in doc.get("samples", [])))
    for suite in (s for s in suites if kinds.get(s) != "perturbed"):   # perturbed: the heat map below
        png = toxicity_suite(doc, suite)
        if png is not None:
            out.append((f"toxicity_{suite}.png", png))
    png = bias(doc)
    if png is not None:
        out.append(("bias.png", png))
    for sid, entry in sorted((doc.get("extras") or {}).get("robustness", {}).items()):
        png = robustness_heatmap(entry)
        if png is not None:
            out.append((f"robustness_{sid}.png", png))
    return out
