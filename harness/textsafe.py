"""Spreadsheet-safe text: the one formula-injection guard used by every CSV the harness writes.

    >>> guard_formula("=1+1")
    "'=1+1"
    >>> guard_formula("a=b")
    'a=b'

A spreadsheet runs a cell that begins with ``= + - @``, a tab or a carriage return as a formula
(OWASP "CSV injection"); such a cell gets a leading single quote so it is shown as text. The
writers also quote every field, so a line break inside a cell (``\\r`` included) never starts a
new row whose first cell could be a formula.
"""

from __future__ import annotations

from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def guard_formula(value: Any) -> Any:
    """Prefix ``'`` to a string a spreadsheet would run as a formula; other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value

