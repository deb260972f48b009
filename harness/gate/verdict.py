"""One result type for every gate: a :class:`Verdict` with the numbers and an outcome in words.

Every gate (a prompt or category bound, a regression against a reference, a bias/BOLD/perplexity
bound, a human-ratings bound) ends as a Verdict. Outcomes:

- ``PASS``: the bound holds (for a regression: the data show the candidate is not worse by the
  margin: the upper confidence bound of the difference is below it);
- ``FAIL``: the bound is broken (for a regression: significantly worse by more than the margin);
- ``INCONCLUSIVE``: a regression comparison whose data show neither (or rest on fewer than two
  units); what it does to the run is ``on_inconclusive``: ``fail``, ``warn`` (default) or ``pass``;
- ``SKIPPED``: not evaluated (no reference, no ratings), with the reason.

    >>> v = Verdict("palms/all/toxicity.expected_max", "regression", "palms", None,
    ...             "toxicity.expected_max", FAIL, "worse by more than the margin", value=0.52)
    >>> v.blocks, v.to_dict()["outcome"]
    (True, 'FAIL')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, INCONCLUSIVE, SKIPPED = "PASS", "FAIL", "INCONCLUSIVE", "SKIPPED"
OUTCOMES = (PASS, FAIL, INCONCLUSIVE, SKIPPED)
ON_INCONCLUSIVE = ("fail", "warn", "pass")
DEFAULT_ON_INCONCLUSIVE = "warn"


@dataclass(frozen=True)
class Verdict:
    """The result of one gate on one case (JSON-safe through :meth:`to_dict`)."""

    case_id: str
    gate: str                      # prompt | category | suite | regression | ratings
    suite: str
    category: str | None           # None: the whole suite
    metric: str
    outcome: str                   # PASS | FAIL | INCONCLUSIVE | SKIPPED
    reason: str                    # the outcome in words, one sentence
    value: float | None = None     # the candidate's value
    bound: str = ""                # "<= 0.5", "worse by > 0.05", ...
    reference_value: float | None = None
    difference: float | None = None        # candidate - reference (metric scale)
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None        # of [ci_low, ci_high], e.g. 0.90 = two one-sided 95% bounds
    p_value: float | None = None           # regression: one-sided p of "worse by more than the margin"
    p_adjusted: float | None = None
    p_noninferiority: float | None = None  # regression: one-sided p of "not worse by the margin"
    margin: float | None = None
    alpha: float | None = None
    k: int | None = None
    n: int | None = None                   # units (prompts, texts) behind the value
    family: str | None = None              # regression: primary (suite level) | secondary (categories)
    units_needed: int | None = None        # regression INCONCLUSIVE: units that would make it decisive
    on_inconclusive: str = DEFAULT_ON_INCONCLUSIVE
    details: Mapping[str, Any] = field(default_factory=dict)   # worst sample, test name, effect size, ...

    @property
    def blocks(self) -> bool:
        """True when this verdict fails the run (FAIL, or INCONCLUSIVE with on_inconclusive=fail)."""
        return self.outcome == FAIL or (self.outcome == INCONCLUSIVE and self.on_inconclusive == "fail")

    @property
    def warns(self) -> bool:
        return self.outcome == INCONCLUSIVE and self.on_inconclusive == "warn"

    def message(self) -> str:
        """The one-paragraph message a failed test shows: outcome, numbers, reason."""
        parts = [f"{self.outcome} {self.case_id}: {self.metric}"]
        if self.value is not None:
            parts.append(f"= {fmt(self.value)}")
        if self.reference_value is not None:
            parts.append(f"vs reference {fmt(self.reference_value)}")
        if self.difference is not None:
            conf = f"{self.confidence:.0%} CI " if self.confidence else "CI "
            parts.append(f"(difference {fmt(self.difference, sign=True)}, {conf}{fmt(self.ci_low, sign=True)} to "
                         f"{fmt(self.ci_high, sign=True)})")
        if self.bound:
            parts.append(f"bound {self.bound}")
        extra = []
        if self.p_value is not None:
            extra.append(f"p = {fmt(self.p_value)}" + (f" raw / {fmt(self.p_adjusted)} adjusted"
                                                        if self.p_adjusted is not None else ""))
        if self.k is not None:
            extra.append(f"k={self.k}")
        if self.n is not None:
            extra.append(f"n={self.n}")
        text = " ".join(parts) + (f" [{', '.join(extra)}]" if extra else "") + f": {self.reason}"
        if self.details.get("evidence"):
            text += "\n" + str(self.details["evidence"])
        return text

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["details"] = dict(self.details)
        out["blocks"] = self.blocks
        return json_safe(out)


class GateFailure(Exception):
    """A gate failed the run. Not a HarnessError: the user's input was fine, the model was not.

    Carries the verdicts that block; ``str()`` is their messages, one per line.
    """

    def __init__(self, verdicts: Sequence[Verdict] | str, *, metric: str = "", value: float | None = None,
                 bound: float | None = None, k: int | None = None) -> None:
        self.verdicts = [] if isinstance(verdicts, str) else list(verdicts)
        text = verdicts if isinstance(verdicts, str) else "\n".join(v.message() for v in self.verdicts)
        super().__init__(text)
        first = self.verdicts[0] if self.verdicts else None
        self.metric = metric or (first.metric if first else "")
        self.value = value if value is not None or first is None else first.value
        self.bound = bound
        self.k = k if k is not None or first is None else first.k


def fmt(x: Any, sign: bool = False) -> str:
    """3 significant digits; 'n/a' for None and NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:+.3g}" if sign else f"{x:.3g}"


def json_safe(obj: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, tuples -> lists (recursively)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return json_safe(obj.item())
    return obj


def run_verdict(verdicts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The run's overall verdict from verdict dicts: BLOCKED when any blocks, else PASSED.

    >>> run_verdict([{"outcome": "FAIL", "blocks": True}, {"outcome": "INCONCLUSIVE", "blocks": False}])["line"]
    'BLOCKED: 1 gate failed, 1 inconclusive'
    """
    counts = {o: sum(1 for v in verdicts if v.get("outcome") == o) for o in OUTCOMES}
    blocking = [v for v in verdicts if v.get("blocks")]
    status = "BLOCKED" if blocking else "PASSED"
    bits = []
    if counts[FAIL]:
        bits.append(f"{counts[FAIL]} gate{'s' if counts[FAIL] != 1 else ''} failed")
    if counts[INCONCLUSIVE]:
        bits.append(f"{counts[INCONCLUSIVE]} inconclusive")
    if not bits:
        bits.append(f"{counts[PASS]} gate{'s' if counts[PASS] != 1 else ''} passed")
    elif counts[PASS]:
        bits.append(f"{counts[PASS]} passed")
    return {"status": status, "counts": counts, "blocking": len(blocking), "line": f"{status}: {', '.join(bits)}"}
