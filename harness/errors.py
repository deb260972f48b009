"""One exception family for everything a user can get wrong, with one-paragraph messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """Base class: a problem the user can fix. The message names where and how."""


class SpecError(HarnessError):
    """A suite YAML file is malformed or inconsistent."""


class ModelLoadError(HarnessError):
    """A model, tokenizer or adapter cannot be loaded."""


class ScorerError(HarnessError):
    """A scorer is unavailable, or a sample cannot be scored (never counted as non-toxic)."""


class ResultsError(HarnessError):
    """A results or baseline file is unreadable, of another schema, or not comparable."""


class DataError(HarnessError):
    """A dataset, rating sheet or other user data file has a bad line, row or cell."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return "valid: a, b, c (did you mean 'b'?)" for an unknown ``name``.

    >>> did_you_mean("detox", ["auto", "detoxify-original", "profanity"])
    "valid: auto, detoxify-original, profanity (did you mean 'detoxify-original'?)"
    """
    choices = sorted(set(choices))
    text = "valid: " + ", ".join(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if not close:
        close = [c for c in choices if c.startswith(name) or name in c][:1]
    if close:
        text += f" (did you mean '{close[0]}'?)"
    return text
