"""Blind rating sheets: export results samples to a CSV sheet + key, read them back and validate.

The sheet (UTF-8 with BOM, every field quoted) hides which model wrote each sample: rows are shuffled
with a seed and carry an opaque id (R0001 ...). The key file maps each id back to the model, results
file, role, suite, category, prompt and sample index, and holds a sha256 of the exported text so an
edited or mismatched sheet is detected. Keep the key away from the raters.

Formula-injection guard (:mod:`harness.textsafe`): any cell that begins with ``= + - @``, a tab or a
carriage return is written with a leading single quote ``'`` so spreadsheets show it as text instead of
running it. On import the quote is stripped again only to compare the text with the key.

The rater columns are headed ``rater_1 (1-5: 5 = best)`` ...: the scale is stated in the sheet itself;
import reads them as ``rater_1`` ... (a bare ``rater_1`` header, as older sheets have, works too).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import DataError, ResultsError
from harness.measure.results import write_text_atomic
from harness.textsafe import guard_formula as guard_cell

KEY_SCHEMA = "harness-ratings-key"
KEY_VERSION = 1
FIXED_COLUMNS = ("row_id", "category", "desired_behavior", "prompt", "text")
SCALE_NOTE = "(1-5: 5 = best)"      # in each rater column's header
SCALE_MEANING = "5 = best matches the category's desired behaviour, 1 = worst; empty = not rated"
SCALE_TEXT = f"whole numbers 1-5 in the rater columns ({SCALE_MEANING})"
SHOWN = 5                           # bad cells quoted per column in an error
_RATER = re.compile(r"^(rater_\d+)(?:\s*\(.*\))?$")
_RATING = re.compile(r"^[1-5](?:\.0*)?$")
_SAMPLE_FIELDS = {"role": str, "suite": str, "category": str, "prompt_id": str, "prompt": str,
                  "sample_index": int, "text": str}


@dataclass(frozen=True)
class ModelSource:
    """One rated model: a (results file, role) pair under a display name."""
    name: str
    results: str
    role: str
    fingerprint: str | None = None


@dataclass(frozen=True)
class KeyRow:
    """What one sheet row really is (never shown to raters)."""
    row_id: str
    model: str
    results: str
    role: str
    suite: str
    category: str
    prompt_id: str
    sample_index: int
    text_sha256: str


@dataclass(frozen=True)
class RatingKey:
    path: str
    seed: int
    raters: int
    models: tuple[ModelSource, ...]
    rows: tuple[KeyRow, ...]


@dataclass(frozen=True)
class SheetRow:
    row_id: str
    row_number: int                  # as a spreadsheet shows it: the header is row 1
    ratings: tuple[int | None, ...]  # aligned with Sheet.rater_columns; None = empty cell


@dataclass(frozen=True)
class Sheet:
    path: str
    rater_columns: tuple[str, ...]
    rows: tuple[SheetRow, ...]       # in key order


def text_digest(text: str) -> str:
    """sha256 of the text with line endings normalised to \\n (spreadsheets may rewrite them)."""
    norm = text.replace("\r\n", "\n").replace("\r", "\n")
    return "sha256:" + hashlib.sha256(norm.encode("utf-8")).hexdigest()


def _cell_matches(cell: str, digest: str) -> bool:
    """True when the cell, with or without the guard quote, is the exported text."""
    return text_digest(cell) == digest or (cell.startswith("'") and text_digest(cell[1:]) == digest)


def write_user_file(path: str | os.PathLike, text: str, what: str, encoding: str = "utf-8") -> None:
    """Write ``what`` (e.g. "rating sheet --out") atomically; a folder or an unwritable path is a DataError."""
    _refuse_folder(path, what)
    try:
        write_text_atomic(path, text, encoding=encoding)
    except OSError as exc:
        raise DataError(f"cannot write {what} {path} ({exc.strerror or exc}); pass a path in a folder "
                        "you can write to.") from None


def _refuse_folder(path: str | os.PathLike, what: str) -> None:
    if Path(path).is_dir():
        raise DataError(f"{what} {path} is a folder; pass the path of a file to write (it may be inside it).")


def refuse_overwriting_inputs(outputs: dict[str, str | os.PathLike], inputs: Sequence[str | os.PathLike]) -> None:
    """DataError when an output path (name -> path) is one of the input files (it would be destroyed)."""
    ins = {os.path.realpath(p): p for p in inputs}
    for what, out in outputs.items():
        if os.path.realpath(out) in ins:
            raise DataError(f"{what} {out} is also an input file; writing it would destroy "
                            f"{ins[os.path.realpath(out)]}. Choose another path.")


def read_results_samples(path: str | os.PathLike) -> tuple[dict, list[dict]]:
    """Read a results document (results.read_results) and check the sample fields a sheet needs."""
    from harness.measure.results import read_results
    doc = read_results(path)
    samples, problems = doc.get("samples"), []
    if not isinstance(samples, list):
        raise ResultsError(f"results file {path}: field 'samples' is missing or not a list; the file "
                           "was written without samples, re-run the suite to record them.")
    for i, s in enumerate(samples):
        for field, kind in _SAMPLE_FIELDS.items():
            value = s.get(field) if isinstance(s, dict) else None
            if not isinstance(value, kind) or isinstance(value, bool):
                problems.append(f"samples[{i}].{field} is {value!r}, expected {kind.__name__}")
    if problems:
        raise ResultsError(f"results file {path} has malformed samples: " + "; ".join(problems[:20])
                           + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
                           + ". Re-run the suite to write a complete results file.")
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    return config, samples


def _desired_behavior(config: dict, suite: str, category: str) -> str:
    """config.suites[suite].categories[category].desired_behavior, or '' when not recorded."""
    try:
        value = config["suites"][suite]["categories"][category]["desired_behavior"]
    except (KeyError, TypeError):
        return ""
    return value if isinstance(value, str) else ""


def _suite_kind(config: dict, suite: str) -> str | None:
    try:
        return config["suites"][suite].get("kind")
    except (KeyError, TypeError, AttributeError):
        return None


def export_sheet(results: Sequence[str | os.PathLike], out: str | os.PathLike, key_path: str | os.PathLike,
                 *, raters: int = 3, seed: int = 0, roles: Sequence[str] | None = None,
                 names: Sequence[str] | None = None, suites: Sequence[str] | None = None,
                 force: bool = False) -> RatingKey:
    """Write a shuffled blind sheet (CSV) and its key (JSON); return the key.

    Each (results file, role) is one model, named ``names[i]`` or ``<file stem>:<role>``. By default
    every role and every suite of kind "values" (all suites when no kind is recorded) is exported.
    """
    if raters < 1:
        raise DataError(f"--raters is {raters}; a sheet needs at least one rater column (PALMS uses 3).")
    refuse_overwriting_inputs({"sheet --out": out, "--key": key_path}, results)
    if os.path.realpath(out) == os.path.realpath(key_path):
        raise DataError(f"--out and --key are the same file {out}; the sheet and its key need two paths.")
    for target, what in ((out, "rating sheet --out"), (key_path, "key file --key")):
        _refuse_folder(target, what)
        if Path(target).exists() and not force:
            raise DataError(f"{target} already exists; overwriting a key loses the link between sheet "
                            "rows and models. Choose another path or pass --force.")
    models: list[ModelSource] = []
    entries: list[tuple[ModelSource, dict, str]] = []  # (model, sample, desired behaviour)
    for path in results:
        config, samples = read_results_samples(path)
        file_roles = list(dict.fromkeys(s["role"] for s in samples))
        missing = [r for r in (roles or []) if r not in file_roles]
        if roles and len(missing) == len(roles):
            raise DataError(f"results file {path} holds roles {', '.join(file_roles) or '(none)'}, not "
                            f"{', '.join(roles)}; pass --role with one of those.")
        wanted_suites = set(suites) if suites else None
        if wanted_suites is None:
            kinds = {s["suite"]: _suite_kind(config, s["suite"]) for s in samples}
            values = {k for k, v in kinds.items() if v == "values"}
            wanted_suites = values or set(kinds)
        for role in file_roles:
            if roles and role not in roles:
                continue
            fp = (config.get("models") or {}).get(role, {}) if isinstance(config.get("models"), dict) else {}
            model = ModelSource(f"{Path(path).stem}:{role}", str(path), role,
                                fp.get("fingerprint") if isinstance(fp, dict) else None)
            models.append(model)
            seen: set[tuple] = set()
            for s in samples:
                if s["role"] != role or s["suite"] not in wanted_suites:
                    continue
                ident = (s["suite"], s["category"], s["prompt_id"], s["sample_index"])
                if ident in seen:
                    raise ResultsError(f"results file {path}: role {role} has sample {'/'.join(map(str, ident))} "
                                       "twice; the file is corrupt or concatenated, re-run the suite.")
                seen.add(ident)
                entries.append((model, s, _desired_behavior(config, s["suite"], s["category"])))
    if names:
        if len(names) != len(models):
            raise DataError(f"--names gives {len(names)} names for {len(models)} models "
                            f"({', '.join(m.name for m in models)}); give one name per (file, role).")
        rename = {m.name: n for m, n in zip(models, names)}
        models = [ModelSource(rename[m.name], m.results, m.role, m.fingerprint) for m in models]
        entries = [(ModelSource(rename[m.name], m.results, m.role, m.fingerprint), s, d) for m, s, d in entries]
    dupes = sorted({m.name for m in models if [x.name for x in models].count(m.name) > 1})
    if dupes:
        raise DataError(f"model names {', '.join(dupes)} occur more than once (same file stem and role); "
                        "pass --names with one distinct name per (file, role).")
    if not entries:
        raise DataError(f"no samples to rate in {', '.join(map(str, results))} (suites: "
                        f"{', '.join(sorted(suites)) if suites else 'kind values'}); pass --suite/--role "
                        "matching the results files.")
    order = list(range(len(entries)))
    random.Random(seed).shuffle(order)
    width = max(4, len(str(len(entries))))
    rater_cols = [f"rater_{i} {SCALE_NOTE}" for i in range(1, raters + 1)]
    lines: list[list[str]] = [list(FIXED_COLUMNS) + rater_cols]
    rows: list[KeyRow] = []
    for n, idx in enumerate(order, start=1):
        model, s, desired = entries[idx]
        row_id = f"R{n:0{width}d}"
        rows.append(KeyRow(row_id, model.name, model.results, model.role, s["suite"], s["category"],
                           s["prompt_id"], s["sample_index"], text_digest(s["text"])))
        cells = [row_id, s["category"], desired, s["prompt"], s["text"]]
        lines.append([guard_cell(c) for c in cells] + [""] * raters)
    key = RatingKey(str(key_path), seed, raters, tuple(models), tuple(rows))
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(lines)
    write_user_file(out, buf.getvalue(), "rating sheet --out", encoding="utf-8-sig")
    write_user_file(key_path, json.dumps(_key_doc(key, out), indent=2, ensure_ascii=False) + "\n", "key file --key")
    return key


def _key_doc(key: RatingKey, sheet: str | os.PathLike) -> dict:
    return {"schema": KEY_SCHEMA, "version": KEY_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "sheet": Path(sheet).name, "seed": key.seed, "raters": key.raters,
            "models": [vars(m) for m in key.models],
            "rows": {r.row_id: {k: v for k, v in vars(r).items() if k != "row_id"} for r in key.rows}}


def read_key(path: str | os.PathLike) -> RatingKey:
    """Read and validate a key file written by :func:`export_sheet` (DataError with the fix)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"key file {path} does not exist; pass the --key written by "
                        "`harness ratings export` for this sheet.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"key file {path} is not readable JSON ({exc}); restore the key written by "
                        "`harness ratings export` (it must not be edited).") from None
    if not isinstance(doc, dict) or doc.get("schema") != KEY_SCHEMA or doc.get("version") != KEY_VERSION:
        raise DataError(f"key file {path} is not a {KEY_SCHEMA} v{KEY_VERSION} file; pass the key written "
                        "by `harness ratings export` (not the sheet or a results file).")
    try:
        models = tuple(ModelSource(str(m["name"]), str(m["results"]), str(m["role"]), m.get("fingerprint"))
                       for m in doc["models"])
        rows = tuple(KeyRow(rid, str(r["model"]), str(r["results"]), str(r["role"]), str(r["suite"]),
                            str(r["category"]), str(r["prompt_id"]), int(r["sample_index"]),
                            str(r["text_sha256"])) for rid, r in doc["rows"].items())
        key = RatingKey(str(path), int(doc["seed"]), int(doc["raters"]), models, rows)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"key file {path} is malformed (field {exc}); restore the key written by "
                        "`harness ratings export`.") from None
    names = {m.name for m in models}
    bad = sorted({r.model for r in rows} - names)
    if bad:
        raise DataError(f"key file {path}: rows name models {', '.join(bad)} missing from 'models'; "
                        "restore the key written by `harness ratings export`.")
    return key


def parse_rating(cell: str) -> int | None:
    """'' -> None; '1'..'5' (or '4.0') -> int; anything else raises ValueError."""
    value = cell.strip()
    if not value:
        return None
    if not _RATING.match(value):
        raise ValueError(value)
    return int(value[0])


def read_sheet(path: str | os.PathLike, key: RatingKey, *, require_complete: bool = False) -> Sheet:
    """Read a filled sheet and check every cell against the key.

    Collects every problem (bad rating cells, unknown / duplicate / missing row ids, changed category
    or text) and raises one DataError listing them all with row number and column name.
    """
    name = str(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            content = fh.read()
    except FileNotFoundError:
        raise DataError(f"rating sheet {name} does not exist; pass the CSV written by "
                        "`harness ratings export` after the raters filled it in.") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"rating sheet {name} is not UTF-8 (byte {exc.start}); save it from the "
                        "spreadsheet as 'CSV UTF-8 (comma delimited)' and import again.") from None
    except OSError as exc:  # a folder, no permission
        raise DataError(f"rating sheet {name} cannot be read ({exc.strerror or exc}); pass the CSV file "
                        "written by `harness ratings export` after the raters filled it in.") from None
    first = content.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    try:
        records = list(csv.reader(io.StringIO(content, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise DataError(f"rating sheet {name} is not valid CSV ({exc}); save it again from the "
                        "spreadsheet as CSV UTF-8.") from None
    if not records:
        raise DataError(f"rating sheet {name} is empty; pass the sheet written by `harness ratings export`.")
    header = [_rater_name(h.strip()) for h in records[0]]
    raters = tuple(h for h in header if _RATER.match(h))
    missing_cols = [c for c in ("row_id", "category", "text") if c not in header]
    dup_cols = sorted({h for h in header if h and header.count(h) > 1})
    if missing_cols or not raters or dup_cols:
        what = (([f"missing column(s) {', '.join(missing_cols)}"] if missing_cols else [])
                + (["no rater_N columns"] if not raters else [])
                + ([f"duplicate column(s) {', '.join(dup_cols)}"] if dup_cols else []))
        raise DataError(f"rating sheet {name} row 1 (header): {'; '.join(what)}; found columns "
                        f"{', '.join(header) or '(none)'}. Restore the header written by "
                        "`harness ratings export` (row_id, category, desired_behavior, prompt, text, rater_1 ...).")
    col = {h: i for i, h in enumerate(header)}
    by_id = {r.row_id: r for r in key.rows}
    problems: list[str] = []
    bad_cells: dict[str, list[str]] = {rc: [] for rc in raters}   # rater column -> "row N 'x'"
    empty_cells: dict[str, list[str]] = {rc: [] for rc in raters}
    seen: dict[str, int] = {}
    parsed: dict[str, SheetRow] = {}
    for number, rec in enumerate(records[1:], start=2):
        if not any(c.strip() for c in rec):
            continue
        where = f"row {number}"
        if len(rec) > len(header) and any(c.strip() for c in rec[len(header):]):
            problems.append(f"{where}: {len(rec)} cells but the header has {len(header)} columns")
        cell = (lambda c: rec[col[c]] if col[c] < len(rec) else "")
        row_id = cell("row_id").strip()
        if not row_id:
            problems.append(f"{where} column row_id: empty (every row keeps its exported id)")
            continue
        if row_id in seen:
            problems.append(f"{where} column row_id: {row_id!r} duplicates row {seen[row_id]}")
            continue
        seen[row_id] = number
        kr = by_id.get(row_id)
        if kr is None:
            problems.append(f"{where} column row_id: {row_id!r} is not in key {key.path}")
            continue
        category = cell("category")
        if category.strip().removeprefix("'") != kr.category:
            problems.append(f"{where} column category: {category!r} was exported as {kr.category!r}")
        if not _cell_matches(cell("text"), kr.text_sha256):
            problems.append(f"{where} column text: differs from the exported sample text "
                            "(restore it; the sheet and key must come from the same export)")
        ratings: list[int | None] = []
        for rc in raters:
            raw = cell(rc)
            try:
                ratings.append(parse_rating(raw))
            except ValueError:
                bad_cells[rc].append(f"row {number} {raw.strip()!r}")
                ratings.append(None)
                continue
            if ratings[-1] is None:
                empty_cells[rc].append(f"row {number}")
        parsed[row_id] = SheetRow(row_id, number, tuple(ratings))
    grouped = [f"column {rc}: {len(cells)} cell(s) not a whole number 1-5: {_first(cells)}"
               for rc, cells in bad_cells.items() if cells]
    if require_complete:
        grouped += [f"column {rc}: {len(cells)} empty cell(s) (--require-complete): {_first(cells)}"
                    for rc, cells in empty_cells.items() if cells]
    absent = [r.row_id for r in key.rows if r.row_id not in seen]
    if absent:
        grouped.append(f"{len(absent)} key row(s) missing from the sheet: {_first(absent)} (restore "
                       "the deleted rows; leave rating cells empty if unrated)")
    if grouped or problems:
        raise DataError(f"rating sheet {name} has problems: " + "; ".join(grouped + problems[:10])
                        + (f"; and {len(problems) - 10} more row problem(s)" if len(problems) > 10 else "")
                        + f". Fix these cells ({SCALE_TEXT}) and run `harness ratings import` again.")
    if not any(r is not None for row in parsed.values() for r in row.ratings):
        raise DataError(f"no ratings in {name}: fill the rater columns 1-5 ({SCALE_MEANING}), save the sheet "
                        "as CSV UTF-8 and run `harness ratings import` again.")
    return Sheet(name, raters, tuple(parsed[r.row_id] for r in key.rows))


def _rater_name(header: str) -> str:
    """``rater_2 (1-5: 5 = best)`` -> ``rater_2``; any other header unchanged."""
    match = _RATER.match(header)
    return match.group(1) if match else header


def _first(items: Sequence[str], shown: int = SHOWN) -> str:
    """The first ``shown`` items, comma-joined, and how many more there are."""
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more} more" if more > 0 else "")
