"""What every plot shares: the Okabe-Ito palette and outcome markers, the figure size rules
(at most 12 inches at 100 dpi), mathtext-safe labels and PNG bytes without a timestamp."""

from __future__ import annotations

import io
import math
from typing import Any

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, GREY = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
                                                      "#56B4E9", "#7f7f7f")
ROLE_COLORS = (BLUE, ORANGE, GREEN, PURPLE, SKY, VERMILLION)
OUTCOME_STYLE = {"PASS": (GREEN, "o"), "FAIL": (VERMILLION, "X"), "INCONCLUSIVE": (ORANGE, "D"),
                 "SKIPPED": (GREY, "s")}
COLORS = ROLE_COLORS  # kept for callers of the old name
WIDTH = 11.0          # inches at 100 dpi: 1,100 px
ROW_H = 0.28          # inches per labelled row


def _label(text: object, width: int = 48) -> str:
    text = str(text)
    text = text if len(text) <= width else text[: width - 1] + "\u2026"
    return text.replace("$", r"\$")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(width, 12.0), height), dpi=100, layout="constrained")
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
