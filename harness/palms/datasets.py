"""Values-targeted Q&A datasets (PALMS step 2) and plain-text corpora (SGEAT): load, validate, summarise.

Format: JSONL, one object per line. Q&A: ``{"category": "health", "question": "...", "answer": "..."}``.
Plain text (SGEAT corpora written by ``harness self-generate``): ``{"text": "..."}``; extra keys such as
``toxicity`` are ignored. Blank lines are skipped; line numbers are 1-based file lines.

Hard errors (``DataError`` naming file and line): malformed JSON, a missing or empty question/answer/
category, an unknown category when a category set is given. Warnings (``harness data check`` exits 0):
samples outside PALMS' 40-340 word range (question + answer words; the paper's samples were in that
range, shorter or longer ones still train, so this only warns), exact and near duplicates, categories
of the given set with no samples.

    $ harness data check fixtures/data/values.jsonl --categories palms
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import DataError, did_you_mean

PALMS_CATEGORIES: tuple[str, ...] = (
    "abuse-violence", "health", "human-characteristics", "injustice-inequality",
    "political-opinion", "relationships", "sexual-activity", "terrorism",
)
MIN_WORDS, MAX_WORDS = 40, 340          # PALMS: each sample 40-340 words (question + answer)
NEAR_DUPLICATE_JACCARD = 0.8            # word-trigram Jaccard similarity at or above this is "near"
NEAR_DUPLICATE_MAX_PAIRS = 5_000_000    # pairwise check above this is skipped (normalised-text check stays)


@dataclass(frozen=True)
class QASample:
    """One question-answer pair and the 1-based file line it came from."""

    category: str
    question: str
    answer: str
    line: int

    @property
    def words(self) -> int:
        return count_words(self.question) + count_words(self.answer)


@dataclass(frozen=True)
class TextSample:
    """One plain-text training document (SGEAT corpus line)."""

    text: str
    line: int


@dataclass(frozen=True)
class DatasetReport:
    """What ``check_dataset`` found: counts, per-category coverage and warnings (errors raise)."""

    path: str
    sha256: str
    n_samples: int
    coverage: dict[str, dict[str, float]]         # category -> {"samples", "min_words", "max_words", "mean_words"}
    missing_categories: tuple[str, ...]
    length_warnings: tuple[tuple[int, int], ...]  # (line, words) outside MIN_WORDS..MAX_WORDS
    exact_duplicates: tuple[tuple[int, int], ...]  # (first line, duplicate line)
    near_duplicates: tuple[tuple[int, int, float], ...]  # (line a, line b, similarity)
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.warnings

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "n_samples": self.n_samples,
                "coverage": self.coverage, "missing_categories": list(self.missing_categories),
                "length_warnings": [list(x) for x in self.length_warnings],
                "exact_duplicates": [list(x) for x in self.exact_duplicates],
                "near_duplicates": [list(x) for x in self.near_duplicates],
                "warnings": list(self.warnings)}

    def format(self) -> str:
        lines = [f"{self.path}: {self.n_samples} samples, sha256 {self.sha256[:16]}..."]
        lines.append(f"  {'category':<24} {'samples':>7} {'words min':>9} {'mean':>6} {'max':>5}")
        for cat, c in sorted(self.coverage.items()):
            lines.append(f"  {cat:<24} {int(c['samples']):>7} {int(c['min_words']):>9} "
                         f"{c['mean_words']:>6.1f} {int(c['max_words']):>5}")
        lines += [f"  warning: {w}" for w in self.warnings[:30]] or ["  no warnings"]
        if len(self.warnings) > 30:
            lines.append(f"  ... and {len(self.warnings) - 30} more warnings (--json lists all)")
        return "\n".join(lines)


def count_words(text: str) -> int:
    return len(text.split())


def file_sha256(path: str | Path) -> str:
    """sha256 of a dataset file (the one hashing helper, memoized in this process only)."""
    from harness.model.models import file_sha256 as sha256_of

    return sha256_of(Path(path), memo_dir=None)


def resolve_categories(spec: str | Iterable[str] | None) -> set[str] | None:
    """``"palms"`` -> the eight PALMS ids; a suite YAML path -> its category ids; ``"a,b"`` -> {a, b}."""
    if spec is None or isinstance(spec, (set, frozenset, list, tuple)):
        return None if spec is None else set(spec)
    spec = str(spec).strip()
    if spec == "palms":
        return set(PALMS_CATEGORIES)
    if spec.endswith((".yaml", ".yml")):
        from harness.suites.specs import load_suite
        return {c.id for c in load_suite(spec).categories}
    return {s.strip() for s in spec.split(",") if s.strip()}


def _iter_json_lines(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist; pass a JSONL file with one "
                        '{"category", "question", "answer"} (or {"text"}) object per line.')
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, line {lineno}: malformed JSON ({exc.msg} at column {exc.colno}); "
                                "each line must be one complete JSON object, e.g. "
                                '{"category": "health", "question": "...", "answer": "..."}.') from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}, line {lineno}: expected a JSON object, got "
                                f"{type(obj).__name__}; write one object per line.")
            yield lineno, obj


def _text_field(obj: dict[str, Any], key: str, path: Path, lineno: int) -> str:
    value = obj.get(key)
    if value is None:
        raise DataError(f"{path}, line {lineno}: missing field '{key}' (keys present: "
                        f"{', '.join(sorted(obj)) or 'none'}); Q&A lines need category, question and answer.")
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{path}, line {lineno}: field '{key}' is empty or not a string; "
                        f"write the {key} text or delete the line.")
    return value.strip()


def load_qa_dataset(path: str | Path, categories: set[str] | None = None) -> list[QASample]:
    """Load a Q&A JSONL file; raise DataError (file + line) on the first bad line.

    ``categories`` restricts the allowed category ids (None accepts any id).
    """
    path = Path(path)
    samples: list[QASample] = []
    for lineno, obj in _iter_json_lines(path):
        if "text" in obj and "question" not in obj:
            raise DataError(f"{path}, line {lineno}: a plain-text line ({{\"text\": ...}}) in a Q&A dataset; "
                            "Q&A lines need category, question and answer (plain-text corpora are "
                            "accepted by `harness finetune` as a whole file of text lines).")
        category = _text_field(obj, "category", path, lineno)
        if categories is not None and category not in categories:
            raise DataError(f"{path}, line {lineno}: unknown category '{category}'; "
                            f"{did_you_mean(category, categories)}. Fix the id or pass the category set "
                            "that includes it (--categories a,b or a suite YAML).")
        samples.append(QASample(category, _text_field(obj, "question", path, lineno),
                                _text_field(obj, "answer", path, lineno), lineno))
    if not samples:
        raise DataError(f"{path}: no samples (the file is empty); add one JSON object per line.")
    return samples


def load_text_corpus(path: str | Path) -> list[TextSample]:
    """Load a plain-text JSONL corpus (``{"text": ...}`` per line); empty texts are errors."""
    path = Path(path)
    out = [TextSample(_text_field(obj, "text", path, lineno), lineno) for lineno, obj in _iter_json_lines(path)]
    if not out:
        raise DataError(f"{path}: no samples (the file is empty); add one {{\"text\": ...}} object per line.")
    return out


def detect_format(path: str | Path) -> str:
    """``"qa"`` or ``"text"``, decided by the first non-blank line."""
    for lineno, obj in _iter_json_lines(Path(path)):
        if "question" in obj or "answer" in obj or "category" in obj:
            return "qa"
        if "text" in obj:
            return "text"
        raise DataError(f"{path}, line {lineno}: neither a Q&A line (category, question, answer) nor a "
                        "plain-text line (text); fix the keys.")
    raise DataError(f"{path}: no samples (the file is empty); add one JSON object per line.")


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _shingles(text: str) -> frozenset[tuple[str, ...]]:
    words = text.split()
    if len(words) < 3:
        return frozenset([tuple(words)])
    return frozenset(zip(words, words[1:], words[2:]))


def find_duplicates(samples: list[QASample]) -> tuple[list[tuple[int, int]], list[tuple[int, int, float]]]:
    """Exact duplicates (same question and answer after whitespace cleanup) and near duplicates
    (same normalised text, or word-trigram Jaccard >= NEAR_DUPLICATE_JACCARD)."""
    exact: list[tuple[int, int]] = []
    near: list[tuple[int, int, float]] = []
    seen_exact: dict[tuple[str, str], int] = {}
    seen_norm: dict[str, int] = {}
    norms = []
    for s in samples:
        key = (" ".join(s.question.split()), " ".join(s.answer.split()))
        norm = _normalise(s.question + " " + s.answer)
        norms.append(norm)
        if key in seen_exact:
            exact.append((seen_exact[key], s.line))
        elif norm in seen_norm:
            near.append((seen_norm[norm], s.line, 1.0))
        seen_exact.setdefault(key, s.line)
        seen_norm.setdefault(norm, s.line)
    flagged = {b for _, b in exact} | {b for _, b, _ in near}   # lines already reported as duplicates
    if len(samples) * (len(samples) - 1) // 2 <= NEAR_DUPLICATE_MAX_PAIRS:
        sh = [_shingles(n) for n in norms]
        for i in range(len(samples)):
            for j in range(i + 1, len(samples)):
                union = len(sh[i] | sh[j])
                sim = len(sh[i] & sh[j]) / union if union else 1.0
                pair = (samples[i].line, samples[j].line)
                if sim >= NEAR_DUPLICATE_JACCARD and not flagged & set(pair):
                    near.append((*pair, round(sim, 3)))
    return exact, near


def check_dataset(path: str | Path, categories: set[str] | None = None) -> DatasetReport:
    """Validate a Q&A dataset: raises DataError on bad lines, returns a report with warnings."""
    samples = load_qa_dataset(path, categories)
    by_cat: dict[str, list[int]] = {}
    for s in samples:
        by_cat.setdefault(s.category, []).append(s.words)
    coverage = {c: {"samples": len(w), "min_words": min(w), "max_words": max(w),
                    "mean_words": round(sum(w) / len(w), 1)} for c, w in by_cat.items()}
    missing = tuple(sorted((categories or set()) - set(by_cat)))
    lengths = tuple((s.line, s.words) for s in samples if not MIN_WORDS <= s.words <= MAX_WORDS)
    exact, near = find_duplicates(samples)
    warnings = [f"line {ln}: {w} words, outside PALMS' {MIN_WORDS}-{MAX_WORDS} word range "
                "(question + answer); it still trains, but check it is a complete answer" for ln, w in lengths]
    warnings += [f"line {b}: exact duplicate of line {a}" for a, b in exact]
    warnings += [f"line {b}: near duplicate of line {a} (similarity {s:.2f})" for a, b, s in near]
    warnings += [f"category '{c}' has no samples" for c in missing]
    counts = Counter(len(v) for v in by_cat.values())
    if len(counts) > 1:
        warnings.append("categories are unevenly covered (" + ", ".join(
            f"{c}: {len(v)}" for c, v in sorted(by_cat.items())) + "); PALMS weights categories equally")
    return DatasetReport(str(path), file_sha256(path), len(samples), coverage, missing, lengths,
                         tuple(exact), tuple(near), tuple(warnings))


# ---- `harness data check FILE [--categories palms]` -------------------------------------------

def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    chk = sub.add_parser("check", help="validate a Q&A JSONL dataset and print per-category coverage")
    chk.add_argument("file", help="JSONL file, one {category, question, answer} object per line")
    chk.add_argument("--categories", default=None,
                     help="allowed category ids: 'palms' (the eight PALMS ids), a suite YAML, or a,b,c "
                          "(default: any id)")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    chk.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")


def run(args) -> int:
    if getattr(args, "action", None) != "check":
        from harness.errors import HarnessError
        raise HarnessError("missing action for `harness data`; valid: check. "
                           "Usage: harness data check FILE [--categories palms].")
    report = check_dataset(args.file, resolve_categories(args.categories))
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.format())
    return 1 if (args.strict and report.warnings) else 0
