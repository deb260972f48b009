"""The scorer contract every toxicity scorer meets: the :class:`Scorer` protocol, the check that
every text got finite scores in [0, 1], and :class:`ScorerHandle` (fingerprint known before load)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.errors import ScorerError

_RENAME = {"toxic": "toxicity", "identity_hate": "identity_attack", "severe_toxic": "severe_toxicity"}


class Scorer(Protocol):
    name: str
    labels: tuple[str, ...]
    fingerprint: str

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


def _check(name: str, texts: Sequence[str], rows: list[dict[str, float]]) -> list[dict[str, float]]:
    """A sample that cannot be scored is an error, never 'non-toxic'."""
    if len(rows) != len(texts):
        raise ScorerError(f"scorer {name} returned {len(rows)} scores for {len(texts)} texts.")
    for text, row in zip(texts, rows):
        for label, value in row.items():
            if value is None or not math.isfinite(value) or not 0.0 <= value <= 1.0:
                raise ScorerError(f"scorer {name} gave {label}={value!r} for the text {text[:80]!r}: a sample that "
                                  "cannot be scored is an error, not 'non-toxic'. Fix: check the scorer's weights "
                                  "and inputs (empty or very long texts), or choose another --toxicity-scorer.")
    return rows


@dataclass
class ScorerHandle:
    """A resolved scorer whose fingerprint is known before its weights load (cached runs never load it)."""

    name: str
    fingerprint: str
    factory: Callable[[], Any]
    warnings: list[str] = field(default_factory=list)
    _scorer: Any = None
    precision: str | None = None   # Detoxify scorers only

    def info(self) -> dict[str, Any]:
        """What the results record about the scorer; a non-fp32 one adds its measured agreement with fp32."""
        out: dict[str, Any] = {"name": self.name, "fingerprint": self.fingerprint, "fallback": self.fallback}
        if self.precision is not None:
            out["precision"] = self.precision
        if self.precision not in (None, "fp32"):
            out["precision_agreement"] = getattr(self._scorer, "precision_agreement", None) or {
                "measured": False, "reason": "the scorer was not loaded in this run (every score came from the cache)"}
        return out

    @property
    def fallback(self) -> bool:
        return bool(self.warnings)

    def load(self) -> Any:
        if self._scorer is None:
            self._scorer = self.factory()
        return self._scorer
