"""Matplotlib plots of a results document, returned as PNG bytes.

Figures are drawn on ``matplotlib.figure.Figure`` (Agg canvas): no pyplot, no global backend
state, safe inside pytest. Labels are escaped for mathtext (``$``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

from harness.reports import candidate_role, reference_role, roles
from harness.stats import bootstrap_mean_ci

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
THRESHOLD = 0.5
BOOTSTRAP_RESAMPLES = 2000


def _label(text: object, width: int = 40) -> str:
    text = str(text)
    text = text if len(text) <= width else text[: width - 1] + "\u2026"
    return text.replace("$", r"\$")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _ordered_roles(doc: Mapping, present: set) -> list[str]:
    order = [candidate_role(doc), reference_role(doc), *roles(doc)]
    return [r for r in dict.fromkeys(order) if r in present]


def toxicity_distribution(doc: Mapping, label: str = "toxicity") -> bytes | None:
    """Box + strip plot of per-sample scores per category, one box per role."""
    import numpy as np

    data: dict[tuple, dict[str, list[float]]] = {}
    for sample in doc.get("samples", []):
        value = (sample.get("scores") or {}).get(label)
        if isinstance(value, (int, float)):
            cell = data.setdefault((sample.get("suite"), sample.get("category")), {})
            cell.setdefault(sample.get("role"), []).append(float(value))
    if not data:
        return None
    order = _ordered_roles(doc, {r for cell in data.values() for r in cell})
    width = 0.8 / len(order)
    fig = _figure(max(5.0, 1.2 * len(data) * len(order) ** 0.5 + 2), 4.0)
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    for ri, role in enumerate(order):
        color = COLORS[ri % len(COLORS)]
        for ci, cell in enumerate(data.values()):
            values = cell.get(role)
            if not values:
                continue
            pos = ci - 0.4 + width * (ri + 0.5)
            ax.boxplot([values], positions=[pos], widths=width * 0.7, showfliers=False,
                       patch_artist=True, boxprops={"facecolor": color, "alpha": 0.3},
                       medianprops={"color": color})
            jitter = rng.uniform(-width * 0.25, width * 0.25, size=len(values))
            ax.scatter(pos + jitter, values, s=12, color=color, alpha=0.8, zorder=3,
                       label=_label(role) if ci == 0 else None)
    ax.axhline(THRESHOLD, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(data)), [_label(f"{s}/{c}") for s, c in data], rotation=30, ha="right")
    ax.set_xlim(-0.6, len(data) - 0.4)
    ax.set_ylabel(_label(f"{label} per sample"))
    ax.set_title("Per-sample toxicity by category")
    ax.legend(loc="upper right", fontsize="small")
    return _png(fig)


def _per_prompt_max(doc: Mapping, role: str, suite: str, category: str, label: str) -> list[float]:
    records = [m.get("value") for m in doc.get("metrics", [])
               if m.get("role") == role and m.get("suite") == suite and m.get("category") == category
               and m.get("prompt_id") is not None and m.get("metric") == f"{label}.max"]
    if records:
        return [float(v) for v in records if isinstance(v, (int, float))]
    per_prompt: dict[str, float] = {}
    for s in doc.get("samples", []):
        value = (s.get("scores") or {}).get(label)
        if (s.get("role"), s.get("suite"), s.get("category")) == (role, suite, category) \
                and isinstance(value, (int, float)):
            key = str(s.get("prompt_id"))
            per_prompt[key] = max(per_prompt.get(key, -math.inf), float(value))
    return list(per_prompt.values())


def category_metrics(doc: Mapping, label: str = "toxicity") -> bytes | None:
    """Expected maximum toxicity per category and role with 95% bootstrap CIs over prompts.

    A reference known only from comparisons (a baseline file, no samples here) is drawn as a
    marker without a CI.
    """
    metric = f"{label}.expected_max"
    cats = list(dict.fromkeys(
        (m.get("suite"), m.get("category")) for m in doc.get("metrics", [])
        if m.get("category") is not None and m.get("prompt_id") is None and m.get("metric") == metric))
    if not cats:
        return None
    values: dict[str, dict[tuple, tuple[float, float, float]]] = {}
    for m in doc.get("metrics", []):
        key = (m.get("suite"), m.get("category"))
        if key in cats and m.get("prompt_id") is None and m.get("metric") == metric:
            maxes = _per_prompt_max(doc, m.get("role"), key[0], key[1], label)
            low, high = bootstrap_mean_ci(maxes, n_resamples=BOOTSTRAP_RESAMPLES)
            values.setdefault(m.get("role"), {})[key] = (float(m.get("value")), low, high)
    ref = reference_role(doc)
    file_refs = {(c.get("suite"), c.get("category")): float(c["reference_value"])
                 for c in doc.get("comparisons", []) if c.get("metric") == metric
                 and isinstance(c.get("reference_value"), (int, float))}
    order = _ordered_roles(doc, set(values))
    width = 0.8 / max(1, len(order))
    fig = _figure(max(5.0, 1.0 * len(cats) * max(1, len(order)) ** 0.5 + 2), 4.0)
    ax = fig.subplots()
    for ri, role in enumerate(order):
        xs, ys, errs = [], [], [[], []]
        for ci, key in enumerate(cats):
            if key in values[role]:
                value, low, high = values[role][key]
                xs.append(ci - 0.4 + width * (ri + 0.5))
                ys.append(value)
                errs[0].append(0.0 if math.isnan(low) else max(0.0, value - low))
                errs[1].append(0.0 if math.isnan(high) else max(0.0, high - value))
        ax.bar(xs, ys, width=width * 0.9, yerr=errs, capsize=3, color=COLORS[ri % len(COLORS)],
               alpha=0.8, label=_label(role))
    missing = [(ci, file_refs[k]) for ci, k in enumerate(cats)
               if k in file_refs and k not in values.get(ref, {})]
    if missing:
        ax.scatter([c for c, _ in missing], [v for _, v in missing], marker="D", color="black",
                   zorder=4, label=_label(f"{ref or 'reference'} (from comparisons)"))
    ax.axhline(THRESHOLD, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(cats)), [_label(f"{s}/{c}") for s, c in cats], rotation=30, ha="right")
    ax.set_ylabel(_label(metric))
    ax.set_title("Expected max toxicity per category\n(95% bootstrap CI over prompts)",
                 fontsize="medium")
    ax.legend(loc="upper right", fontsize="small")
    return _png(fig)


def bias_sentiment(doc: Mapping) -> bytes | None:
    """Horizontal bars of aggregate ``bias.*`` and ``sentiment.*`` records, one bar per role."""
    records = [m for m in doc.get("metrics", []) if m.get("prompt_id") is None
               and str(m.get("metric", "")).startswith(("bias.", "sentiment."))
               and isinstance(m.get("value"), (int, float))]
    if not records:
        return None

    def name(m: Mapping) -> str:
        where = f"{m.get('suite')}/{m.get('category')}" if m.get("category") else str(m.get("suite"))
        group = f" [{m['group']}]" if m.get("group") else ""
        return f"{m.get('metric')}{group} ({where})"

    names = list(dict.fromkeys(name(m) for m in records))
    order = _ordered_roles(doc, {m.get("role") for m in records})
    height = 0.8 / max(1, len(order))
    fig = _figure(7.0, 1.0 + 0.45 * len(names) * max(1, len(order)) ** 0.5)
    ax = fig.subplots()
    for ri, role in enumerate(order):
        by_name = {name(m): float(m["value"]) for m in records if m.get("role") == role}
        ys = [i - 0.4 + height * (ri + 0.5) for i, n in enumerate(names) if n in by_name]
        ax.barh(ys, [by_name[n] for n in names if n in by_name], height=height * 0.9,
                color=COLORS[ri % len(COLORS)], alpha=0.8, label=_label(role))
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(names)), [_label(n, 60) for n in names])
    ax.invert_yaxis()
    ax.set_title("Bias and sentiment")
    ax.legend(loc="lower right", fontsize="small")
    return _png(fig)


def plots(doc: Mapping) -> list[tuple[str, bytes]]:
    """All plots that apply to ``doc`` as (file name, PNG bytes)."""
    out = []
    for name, draw in (("toxicity_distribution.png", toxicity_distribution),
                       ("category_metrics.png", category_metrics),
                       ("bias_sentiment.png", bias_sentiment)):
        png = draw(doc)
        if png is not None:
            out.append((name, png))
    return out
