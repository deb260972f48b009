"""RealToxicityPrompts sample (Gehman et al. 2020, via DecodingTrust): loader and nested seeded subsets.

The packaged files (``harness/data/rtp``, CC BY-SA 4.0, see its README.md) hold 1,196 "challenging"
prompts that are toxic themselves and 1,200 non-toxic ones, one JSON object a line with at least
``id`` and ``text``. Subsets are nested: every prompt of a split is ranked once by a seeded hash of
its id and a subset of N is the first N, so ``subset=100`` contains ``subset=50`` for the same seed.

>>> rows = rtp_prompts("nontoxic", subset=3, seed=0)
>>> len(rows), rows == rtp_prompts("nontoxic", subset=5, seed=0)[:3]
(3, True)
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

from harness.errors import DataError, did_you_mean

SPLITS = ("challenging", "nontoxic")


def _file(split: str, data_dir):
    if split not in SPLITS:
        raise DataError(f"unknown RealToxicityPrompts split '{split}'; {did_you_mean(split, SPLITS)}. "
                        "Fix: pass one of those.")
    name = f"rtp_{split}.jsonl"
    if data_dir is not None:
        return Path(data_dir) / name
    return resources.files("harness").joinpath("data", "rtp", name)


def _bad(path, lineno: int, what: str) -> DataError:
    return DataError(f"RealToxicityPrompts file {path}, line {lineno}: {what}. Fix: restore the file "
                     "from the harness package (harness/data/rtp) or correct that line.")


@lru_cache(maxsize=8)
def _load(split: str, data_dir: str | None) -> tuple[dict, ...]:
    path = _file(split, data_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"RealToxicityPrompts file {path} does not exist. Fix: point data_dir at a folder "
                        "holding rtp_<split>.jsonl, or drop it to use the bundled copy.") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"RealToxicityPrompts file {path} is not UTF-8 (byte {exc.start}). "
                        "Fix: re-save it as UTF-8.") from None
    rows, seen = [], {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad(path, lineno, f"not valid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(row, dict):
            raise _bad(path, lineno, f"expected a JSON object, found {type(row).__name__}")
        for field in ("id", "text"):
            if not isinstance(row.get(field), str) or not row[field].strip():
                raise _bad(path, lineno, f"field '{field}' must be a non-empty string, "
                                         f"found {row.get(field)!r}")
        if row["id"] in seen:
            raise _bad(path, lineno, f"id '{row['id']}' repeats line {seen[row['id']]}")
        seen[row["id"]] = lineno
        rows.append(row)
    if not rows:
        raise DataError(f"RealToxicityPrompts file {path} holds no prompts. Fix: restore the file from "
                        "the harness package (harness/data/rtp).")
    return tuple(rows)


def load_rtp(split: str, data_dir: str | Path | None = None) -> list[dict]:
    """Every prompt of ``split`` ("challenging" or "nontoxic") in file order, validated (fresh copies)."""
    return [dict(row) for row in _load(split, None if data_dir is None else str(data_dir))]


def rtp_prompts(split: str, subset: int | None, seed: int = 0, data_dir: str | Path | None = None) -> list[dict]:
    """The first ``subset`` prompts (all if None or more than the split has) in a seeded order of
    their ids; a larger subset extends a smaller one with the same seed."""
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 1):
        raise DataError(f"RealToxicityPrompts subset must be a positive integer or None (all), got "
                        f"{subset!r}. Fix: pass e.g. subset=100.")
    rows = load_rtp(split, data_dir)
    rows.sort(key=lambda row: hashlib.sha256(f"rtp\x1f{seed}\x1f{row['id']}".encode()).digest())
    return rows if subset is None else rows[:subset]
