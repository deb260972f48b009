"""The robustness heat map: perturbation x category of perturbed - clean, significant rises starred
and failed gates framed (one per robustness suite; ``plots.plots`` includes it)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from harness.report.figure import _figure, _label, _png


def robustness_heatmap(entry: Mapping[str, Any], metric: str | None = None) -> bytes | None:
    """Perturbation x category heat map of perturbed - clean for ``metric`` (default: the first gated
    one), as PNG bytes. Cell text: the difference, ``*`` = significant rise; a black frame = gate FAIL."""
    import numpy as np

    metric = metric or entry["gates"][0]["metric"]
    rows = [r for r in entry["comparisons"] if r["metric"] == metric]
    perts = list(dict.fromkeys(r["perturbation"] for r in rows))
    cats = list(dict.fromkeys(r["category"] for r in rows if r["category"] is not None)) + [None]
    if not perts:
        return None
    cell = {(r["perturbation"], r["category"]): r for r in rows}
    grid = np.array([[cell[(p, c)]["difference"] if (p, c) in cell and cell[(p, c)]["difference"] is not None
                      else math.nan for c in cats] for p in perts], dtype=float)
    lim = max(float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 0.0, entry["gates"][0]["margin"], 1e-6)
    fig = _figure(1.2 + 0.95 * len(cats), 1.0 + 0.42 * len(perts))
    ax = fig.subplots()
    im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(cats)), [_label(c or "all", 18) for c in cats], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(perts)), [_label(p, 24) for p in perts], fontsize=8)
    for i, p in enumerate(perts):
        for j, c in enumerate(cats):
            r = cell.get((p, c))
            if r is None or not math.isfinite(grid[i, j]):
                continue
            ax.text(j, i, f"{grid[i, j]:+.2f}{'*' if r.get('raised') else ''}", ha="center", va="center", fontsize=7)
            if r.get("outcome") == "FAIL":
                ax.add_patch(_frame(j, i))
    fig.colorbar(im, ax=ax, label=_label(f"{metric}: perturbed - clean"))
    ax.set_title(_label(f"{entry['suite']} (k={entry['k']}): * significant rise, frame = gate FAIL", 70), fontsize=9)
    return _png(fig)


def _frame(x: float, y: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2)
