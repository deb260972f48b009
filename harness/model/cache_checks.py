"""Why a cache cannot be used, in one paragraph: read-only directory, damaged database, rows it never writes.

    >>> generation_problem({"text": "x"})
    "field 'n_prompt_tokens' is missing"
    >>> scores_problem({"toxicity": "high"})
    "label 'toxicity' is 'high', not a finite number"
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DB_NAME = "harness-cache.sqlite3"
BUSY_TIMEOUT_S = 30.0
GENERATION_FIELDS = {"text": str, "n_prompt_tokens": int, "n_new_tokens": int, "truncated": bool, "finish_reason": str}
"""What every cached generation holds (the session reads each of them)."""


def generation_problem(value: Any) -> str | None:
    """Why ``value`` is not a generation the cache writes (None: it is one)."""
    if not isinstance(value, dict):
        return f"not a JSON object but {type(value).__name__}"
    for name, kind in GENERATION_FIELDS.items():
        if name not in value:
            return f"field '{name}' is missing"
        v = value[name]
        if not isinstance(v, kind) or (kind is int and (isinstance(v, bool) or v < 0)):
            return f"field '{name}' is {v!r}, not {'a count' if kind is int else kind.__name__}"
    return None


def scores_problem(value: Any) -> str | None:
    """Why ``value`` is not a ``{label: score}`` dict the cache writes (None: it is one)."""
    if not isinstance(value, dict):
        return f"not a JSON object but {type(value).__name__}"
    if not value:
        return "no scores in it"
    for label, v in value.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"label '{label}' is {v!r}, not a finite number"
    return None


PROBLEMS = {"generations": generation_problem, "scores": scores_problem}


def bad_rows_message(path: Path, table: str, bad: Mapping[str, str]) -> str:
    """One paragraph naming the file, the first bad row and how to get past it (``bad``: key -> problem)."""
    key, problem = next(iter(bad.items()))
    keys = ", ".join(f"'{k}'" for k in list(bad)[:3])
    remove = "start a fresh cache in another directory"
    if len(bad) <= 3:
        remove = f"delete them: sqlite3 {shlex.quote(str(path))} \"DELETE FROM {table} WHERE key IN ({keys})\""
    return (f"the cache database {path} holds {len(bad)} {table} row(s) that the harness never writes (key '{key}': "
            f"{problem}), so they cannot be used; something other than the harness changed the file. Fix: run with "
            f"--no-cache, pass --cache-dir to use another cache directory, or {remove}")


def is_read_only(directory: Path) -> bool:
    """Whether this process may not write ``directory`` or an existing database file in it."""
    files = [directory / (DB_NAME + suffix) for suffix in ("", "-wal", "-shm")]
    return not os.access(directory, os.W_OK | os.X_OK) or any(f.exists() and not os.access(f, os.W_OK) for f in files)


def read_only_message(directory: Path, detail: str) -> str:
    return (f"the cache directory {directory} is read-only ({detail}), and the harness writes every new sample and "
            f"score to its cache; pass --no-cache, or --cache-dir (or set HARNESS_CACHE_DIR) to a writable directory "
            f"(copying {DB_NAME} there keeps what is already cached)")


def database_message(directory: Path, exc: BaseException) -> str:
    """The message for an SQLite error on the cache database in ``directory``."""
    path, text = directory / DB_NAME, str(exc)
    if "readonly" in text or "read-only" in text or str(getattr(exc, "sqlite_errorname", "")).startswith(
            "SQLITE_READONLY") or ("unable to open" in text and is_read_only(directory)):
        return read_only_message(directory, text)
    if "unable to open" in text and not path.exists():
        return (f"cannot create the cache database {path} ({text}); pass --cache-dir (or set HARNESS_CACHE_DIR) "
                "to a writable directory, or run with --no-cache")
    if "locked" in text or "busy" in text:
        return (f"the cache database {path} stayed locked for {BUSY_TIMEOUT_S:.0f} s ({text}); another harness "
                "process may be stuck: stop it, or run with --no-cache")
    return (f"the cache database {path} is unreadable or not a harness cache ({text}); delete it (and any "
            f"{DB_NAME}-wal / -shm files beside it) or run with --no-cache")
