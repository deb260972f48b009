"""Human ratings (PALMS step 3): blind sheets out, adherence, agreement and model comparisons in.

    harness ratings export base.json values.json --out sheet.csv --key key.json --raters 3 --seed 0
    harness ratings import sheet.csv --key key.json --out ratings.json
    harness ratings show ratings.json

Raters score each sample 1–5 (5 = best matches the category's desired behaviour). Import computes,
per model and (suite, category) and per model and suite (category null):
- ``adherence.mean``: the mean of all ratings in the group; 95% CI from a seeded bootstrap over samples
  (scipy.stats.bootstrap, BCa, ratios of rating sums to counts, so a sample's ratings stay together);
  ``n_samples`` counts samples with at least one rating, ``n_unrated`` those with none.
- Krippendorff's alpha (ordinal, ``krippendorff`` package, raters × samples, NaN = empty) overall and per
  category; NaN (JSON null) when undefined, e.g. every rating equal or no sample rated twice.
- each model vs the first (``harness.gate.comparison.compare_units``, two-sided): paired Wilcoxon signed-rank on
  per-sample mean ratings when both models have the same (suite, category, prompt_id, sample_index) set,
  else Mann–Whitney U; difference of means with a bootstrap CI, rank-biserial (paired) or Cliff's delta
  effect size, ``underpowered`` flag; Holm across the categories of a suite (the suite row: uncorrected).
Suite-level numbers pool all samples, which weighs categories equally when they hold equal numbers of
samples (the PALMS design: 5 prompts × 3 samples per category).
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from typing import TYPE_CHECKING
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from harness.errors import DataError, ResultsError, did_you_mean
from harness.palms.ratings_io import (SCALE_TEXT, ModelSource, RatingKey, Sheet, export_sheet, read_key, read_sheet,
                                refuse_overwriting_inputs, write_user_file)

if TYPE_CHECKING:
    from harness.gate.comparison import Comparison

SCHEMA = "harness-ratings"
VERSION = 1
METRIC = "adherence.mean"
SCALE = (1, 2, 3, 4, 5)
NAN = float("nan")


@dataclass(frozen=True)
class AdherenceRecord:
    model: str
    suite: str
    category: str | None          # None = the whole suite
    value: float                  # NaN when nothing in the group was rated
    ci_low: float
    ci_high: float
    n_ratings: int
    n_samples: int                # samples with at least one rating
    n_unrated: int = 0            # exported samples nobody rated
    metric: str = METRIC


@dataclass(frozen=True)
class AgreementRecord:
    suite: str | None
    category: str | None
    alpha: float                  # Krippendorff's alpha, ordinal; NaN when undefined
    n_units: int                  # samples rated by at least two raters (pairable)
    n_ratings: int


@dataclass(frozen=True)
class SampleRating:
    row_id: str
    sheet_row: int
    model: str
    suite: str
    category: str
    prompt_id: str
    sample_index: int
    ratings: tuple[int | None, ...]

    @property
    def mean(self) -> float:
        got = [r for r in self.ratings if r is not None]
        return sum(got) / len(got) if got else NAN


@dataclass(frozen=True)
class RatingsSummary:
    path: str
    models: tuple[ModelSource, ...]
    raters: tuple[str, ...]
    adherence: tuple[AdherenceRecord, ...]
    agreement: AgreementRecord
    per_category: tuple[AgreementRecord, ...]
    comparisons: tuple[Comparison, ...]   # harness.gate.comparison.Comparison, candidate = model, reference = first
    samples: tuple[SampleRating, ...]
    notes: tuple[str, ...] = ()            # comparisons that could not be run, and why


# ---------------------------------------------------------------- statistics

def _bootstrap(data, statistic, *, paired: bool, seed: int, n_resamples: int, confidence: float):
    """Seeded scipy bootstrap CI (BCa, percentile when BCa is degenerate); NaNs below 2 per sample."""
    from scipy import stats
    if any(len(d) < 2 for d in data):
        return NAN, NAN
    kw = dict(paired=paired, vectorized=True, n_resamples=n_resamples, confidence_level=confidence, rng=seed)
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(data, statistic, method=method, **kw)
        low, high = (float(v) for v in res.confidence_interval)
        if math.isfinite(low) and math.isfinite(high):
            return low, high
    return NAN, NAN


def _ratio(sums, counts, axis=-1):
    return sums.sum(axis=axis) / counts.sum(axis=axis)


def krippendorff_alpha(matrix) -> float:
    """Ordinal Krippendorff's alpha of a raters × units matrix (NaN = missing); NaN when undefined."""
    import krippendorff
    import numpy as np
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or int((np.sum(~np.isnan(m), axis=0) >= 2).sum()) == 0:
        return NAN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(krippendorff.alpha(reliability_data=m, value_domain=list(SCALE),
                                             level_of_measurement="ordinal"))
        except (ValueError, ZeroDivisionError):
            return NAN
    return value if math.isfinite(value) else NAN


def _compare(model, ref, suite, category, mine, theirs, *, family, seed, n_resamples, level):
    """Compare per-sample means, dicts (category, prompt_id, sample_index) -> mean (NaN = unrated);
    paired when both models have the same sample keys. None when either side has < 2 rated samples."""
    from harness.gate.comparison import compare_units
    paired = bool(mine) and set(mine) == set(theirs)
    if paired:
        keys = [k for k in sorted(mine) if math.isfinite(mine[k]) and math.isfinite(theirs[k])]
        x, y = [mine[k] for k in keys], [theirs[k] for k in keys]
    else:
        x, y = [v for v in mine.values() if math.isfinite(v)], [v for v in theirs.values() if math.isfinite(v)]
    if len(x) < 2 or len(y) < 2:
        return None
    return compare_units(x, y, suite=suite, category=category, metric=METRIC, paired=paired, alpha=level,
                         higher_is_better=True, test="rank", correction="holm", family_size=family,
                         n_resamples=n_resamples, seed=seed, candidate_name=model, reference_name=ref)


def analyse(key: RatingKey, sheet: Sheet, *, seed: int = 0, n_resamples: int = 9999,
            confidence: float = 0.95, level: float = 0.05) -> RatingsSummary:
    """Adherence, agreement and comparisons from a validated sheet and its key."""
    import numpy as np
    samples = tuple(SampleRating(kr.row_id, sr.row_number, kr.model, kr.suite, kr.category, kr.prompt_id,
                                 kr.sample_index, sr.ratings) for kr, sr in zip(key.rows, sheet.rows))
    suites = list(dict.fromkeys(s.suite for s in samples))
    cats = {su: list(dict.fromkeys(s.category for s in samples if s.suite == su)) for su in suites}
    groups = [(su, c) for su in suites for c in cats[su]] + [(su, None) for su in suites]

    def pick(model, suite, category):
        return [s for s in samples if (model is None or s.model == model) and (suite is None or s.suite == suite)
                and (category is None or s.category == category)]

    adherence = []
    for m in key.models:
        for su, c in groups:
            rated = [s for s in pick(m.name, su, c) if math.isfinite(s.mean)]
            sums = np.array([sum(r for r in s.ratings if r is not None) for s in rated], dtype=float)
            counts = np.array([sum(r is not None for r in s.ratings) for s in rated], dtype=float)
            value = float(sums.sum() / counts.sum()) if len(rated) else NAN
            low, high = _bootstrap((sums, counts), _ratio, paired=True, seed=seed,
                                   n_resamples=n_resamples, confidence=confidence)
            adherence.append(AdherenceRecord(m.name, su, c, value, low, high, int(counts.sum()), len(rated),
                                             len(pick(m.name, su, c)) - len(rated)))

    def agreement(suite, category):
        group = pick(None, suite, category)
        matrix = np.array([[NAN if r is None else r for r in s.ratings] for s in group], dtype=float).T
        pairable = int((np.sum(~np.isnan(matrix), axis=0) >= 2).sum()) if group else 0
        n = int(np.sum(~np.isnan(matrix))) if group else 0
        return AgreementRecord(suite, category, krippendorff_alpha(matrix) if group else NAN, pairable, n)

    from harness.measure.stats import adjust_pvalues
    comparisons, skipped = [], []
    ref = key.models[0].name if key.models else ""
    for m in key.models[1:]:
        for su in suites:
            rows = []
            for c in cats[su] + [None]:
                per = {name: {(s.category, s.prompt_id, s.sample_index): s.mean for s in pick(name, su, c)}
                       for name in (m.name, ref)}
                rows.append(_compare(m.name, ref, su, c, per[m.name], per[ref], seed=seed, level=level,
                                     family=len(cats[su]) if c else 1, n_resamples=n_resamples))
                if rows[-1] is None:
                    skipped.append(f"{m.name} vs {ref} on {su}/{c or '(all)'}: fewer than 2 rated samples")
            cat_rows = [r for r in rows[:-1] if r is not None]
            adj = adjust_pvalues([r.p_value for r in cat_rows], "holm")
            comparisons += [replace(r, p_adjusted=a) for r, a in zip(cat_rows, adj)]
            comparisons += [r for r in rows[-1:] if r is not None]
    return RatingsSummary(sheet.path, key.models, sheet.rater_columns, tuple(adherence), agreement(None, None),
                          tuple(agreement(su, c) for su in suites for c in cats[su]), tuple(comparisons), samples,
                          tuple(skipped))


# ---------------------------------------------------------------- ratings.json

def _num(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _rec(obj) -> dict:
    return {k: _num(v) for k, v in vars(obj).items()}


def to_document(summary: RatingsSummary, key_path: str, *, seed: int, n_resamples: int,
                confidence: float) -> dict:
    """The ratings.json document (schema harness-ratings v1); NaN is written as null."""
    agree = _rec(summary.agreement)
    return {
        "schema": SCHEMA, "version": VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sheet": summary.path, "key": key_path, "seed": seed, "n_resamples": n_resamples,
        "confidence": confidence, "scale": list(SCALE), "raters": list(summary.raters),
        "models": [vars(m) for m in summary.models],
        "adherence": [_rec(a) for a in summary.adherence],
        "agreement": {"krippendorff_alpha": agree["alpha"], "level_of_measurement": "ordinal",
                      "n_units": agree["n_units"], "n_ratings": agree["n_ratings"],
                      "per_category": {f"{a.suite}/{a.category}": {"alpha": _num(a.alpha), "n_units": a.n_units,
                                                                   "n_ratings": a.n_ratings}
                                       for a in summary.per_category}},
        "comparisons": [c.to_dict() for c in summary.comparisons], "notes": list(summary.notes),
        "ratings": [{**{k: v for k, v in vars(s).items() if k != "ratings"},
                     "ratings": dict(zip(summary.raters, s.ratings)), "mean": _num(s.mean),
                     "n_ratings": sum(r is not None for r in s.ratings)} for s in summary.samples],
    }


def _f(v) -> float:
    return NAN if v is None else float(v)


def load_ratings(path) -> RatingsSummary:
    """Read and validate a ratings.json written by ``harness ratings import``."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise ResultsError(f"ratings file {path} does not exist; write it with `harness ratings import "
                           "SHEET --key KEY --out PATH`.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"ratings file {path} is not readable JSON ({exc}); re-run `harness ratings "
                           "import` to write it again.") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("version") != VERSION:
        found = (doc.get("schema"), doc.get("version")) if isinstance(doc, dict) else type(doc).__name__
        raise ResultsError(f"ratings file {path} is {found!r}, not a {SCHEMA} v{VERSION} file; pass the "
                           "--out of `harness ratings import` (not the sheet, key or a results file).")
    try:
        raters = tuple(doc["raters"])
        models = tuple(ModelSource(m["name"], m["results"], m["role"], m.get("fingerprint")) for m in doc["models"])
        adherence = tuple(AdherenceRecord(a["model"], a["suite"], a["category"], _f(a["value"]), _f(a["ci_low"]),
                                          _f(a["ci_high"]), int(a["n_ratings"]), int(a["n_samples"]),
                                          int(a.get("n_unrated", 0)), a.get("metric", METRIC))
                          for a in doc["adherence"])
        ag = doc["agreement"]
        overall = AgreementRecord(None, None, _f(ag["krippendorff_alpha"]), int(ag["n_units"]), int(ag["n_ratings"]))
        per_cat = tuple(AgreementRecord(*k.split("/", 1), _f(v["alpha"]), int(v["n_units"]), int(v["n_ratings"]))
                        for k, v in ag["per_category"].items())
        from harness.gate.comparison import Comparison
        floats = {k for k, f in Comparison.__dataclass_fields__.items() if f.type in ("float", float)}
        comps = tuple(Comparison(**{k: _f(v) if k in floats else v for k, v in c.items()})
                      for c in doc["comparisons"])
        samples = tuple(SampleRating(s["row_id"], int(s["sheet_row"]), s["model"], s["suite"], s["category"],
                                     s["prompt_id"], int(s["sample_index"]),
                                     tuple(s["ratings"].get(r) for r in raters)) for s in doc["ratings"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResultsError(f"ratings file {path} is malformed ({type(exc).__name__}: {exc}); it was edited "
                           "or truncated, re-run `harness ratings import` to write it again.") from None
    return RatingsSummary(str(path), models, raters, adherence, overall, per_cat, comps, samples,
                          tuple(doc.get("notes", ())))


def _model_name(summary: RatingsSummary, model: str | None) -> str:
    names = [m.name for m in summary.models]
    if model is None:
        cands = [m.name for m in summary.models if m.role == "candidate"]
        if len(names) == 1 or len(cands) == 1:
            return names[0] if len(names) == 1 else cands[0]
        raise DataError(f"ratings file {summary.path} holds several models; name one: {did_you_mean('', names)}.")
    if model not in names:
        raise DataError(f"ratings file {summary.path} has no model '{model}'; {did_you_mean(model, names)}.")
    return model


def adherence_for(summary: RatingsSummary, model: str | None, suite: str,
                  category: str | None) -> AdherenceRecord | None:
    """The adherence record of a model (None: the only / the only "candidate" model) for a suite and
    category (None: suite level); None when that group was not rated. Unknown model: DataError."""
    name = _model_name(summary, model)
    for a in summary.adherence:
        if a.model == name and a.suite == suite and a.category == category:
            return a
    return None


def alpha(summary: RatingsSummary, suite: str | None = None, category: str | None = None) -> float:
    """Krippendorff's alpha overall, or for one (suite, category); NaN when undefined (a gate must fail)."""
    if suite is None and category is None:
        return summary.agreement.alpha
    for a in summary.per_category:
        if (suite is None or a.suite == suite) and a.category == category:
            return a.alpha
    return NAN


def format_table(summary: RatingsSummary) -> str:
    """A readable plain-text report: adherence, agreement, comparisons."""
    def n(v, fmt=".2f"):
        return "-" if not math.isfinite(v) else format(v, fmt)
    width = max([len(m.name) for m in summary.models] + [5])
    out = ["Adherence (1-5, 5 = best matches the desired behaviour), 95% bootstrap CI",
           f"{'model':<{width}}  {'suite/category':<32} {'mean':>5}  {'95% CI':<13} {'ratings':>7} {'samples':>7}"]
    for a in summary.adherence:
        where = f"{a.suite}/{a.category or '(all)'}"
        ci = f"[{n(a.ci_low)}, {n(a.ci_high)}]"
        out.append(f"{a.model:<{width}}  {where:<32} {n(a.value):>5}  {ci:<13} {a.n_ratings:>7} {a.n_samples:>7}"
                   + (f"  ({a.n_unrated} unrated)" if a.n_unrated else ""))
    g = summary.agreement
    out.append(f"\nAgreement: Krippendorff's alpha (ordinal) = {n(g.alpha, '.3f')} over {g.n_units} samples "
               f"rated twice or more, {len(summary.raters)} rater columns")
    out += [f"  {a.suite}/{a.category}: {n(a.alpha, '.3f')} ({a.n_units} samples)" for a in summary.per_category]
    if summary.comparisons:
        out.append(f"\nComparisons vs {summary.comparisons[0].reference} on per-sample mean ratings "
                   "(diff = model - reference, Holm across categories, * = adjusted p <= alpha)")
        for c in summary.comparisons:
            where = f"{c.suite}/{c.category or '(all)'}"
            star = " *" if math.isfinite(c.p_adjusted) and c.p_adjusted <= c.alpha else ""
            out.append(f"  {c.candidate:<{width}} {where:<32} diff {n(c.difference, '+.2f')} "
                       f"[{n(c.ci_low, '+.2f')}, {n(c.ci_high, '+.2f')}] {c.effect_size_name} "
                       f"{n(c.effect_size, '+.2f')} {c.test} n={c.n_candidate}/{c.n_reference} "
                       f"p {n(c.p_value, '.3g')} adj {n(c.p_adjusted, '.3g')}{star}"
                       + ("  (underpowered)" if c.underpowered else ""))
    out += [f"  not compared: {note}" for note in summary.notes]
    return "\n".join(out)


def import_sheet(sheet_path, key_path, out, *, seed: int = 0, n_resamples: int = 9999,
                 confidence: float = 0.95, require_complete: bool = False) -> RatingsSummary:
    """Validate a filled sheet against its key, analyse it and write ratings.json."""
    refuse_overwriting_inputs({"ratings --out": out}, [sheet_path, key_path])
    key = read_key(key_path)
    summary = analyse(key, read_sheet(sheet_path, key, require_complete=require_complete), seed=seed,
                      n_resamples=n_resamples, confidence=confidence)
    doc = to_document(summary, str(key_path), seed=seed, n_resamples=n_resamples, confidence=confidence)
    write_user_file(out, json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n", "ratings --out")
    return summary


# ---------------------------------------------------------------- CLI

def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="ratings_command", required=True, metavar="{export,import,show}")
    ex = sub.add_parser("export", help="write a shuffled blind rating sheet (CSV) and its key (JSON)")
    ex.add_argument("results", nargs="+", help="results JSON files; each (file, role) is one model")
    ex.add_argument("--out", required=True, help="sheet CSV to write")
    ex.add_argument("--key", required=True, help="key JSON to write (keep it away from raters)")
    ex.add_argument("--raters", type=int, default=3, help="rater columns (default 3, as PALMS)")
    ex.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    ex.add_argument("--role", action="append", help="export only this role (repeatable; default all)")
    ex.add_argument("--names", nargs="+", help="model names, one per (file, role) in order")
    ex.add_argument("--suite", action="append", help="export only this suite (default: kind 'values')")
    ex.add_argument("--force", action="store_true", help="overwrite an existing sheet / key")
    im = sub.add_parser("import", help="validate a filled sheet and compute adherence, alpha, comparisons")
    im.add_argument("sheet", help="the filled sheet CSV")
    im.add_argument("--key", required=True, help="the key JSON written by export")
    im.add_argument("--out", required=True, help="ratings JSON to write")
    im.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    im.add_argument("--n-resamples", type=int, default=9999, help="bootstrap resamples (default 9999)")
    im.add_argument("--confidence", type=float, default=0.95, help="CI level (default 0.95)")
    im.add_argument("--require-complete", action="store_true", help="refuse empty rating cells")
    sh = sub.add_parser("show", help="print the tables of a ratings JSON")
    sh.add_argument("ratings", help="ratings JSON written by import")


def run(args) -> int:
    if args.ratings_command == "export":
        key = export_sheet(args.results, args.out, args.key, raters=args.raters, seed=args.seed,
                           roles=args.role, names=args.names, suites=args.suite, force=args.force)
        print(f"wrote {args.out} ({len(key.rows)} rows from {len(key.models)} models: "
              f"{', '.join(m.name for m in key.models)}; {key.raters} rater columns) and key {args.key} "
              f"(keep the key away from raters). Raters enter {SCALE_TEXT}.")
        return 0
    if args.ratings_command == "import":
        if args.n_resamples < 100 or not 0 < args.confidence < 1:
            raise DataError(f"--n-resamples {args.n_resamples} / --confidence {args.confidence}: use at least "
                            "100 resamples and a level between 0 and 1 (defaults 9999, 0.95).")
        summary = import_sheet(args.sheet, args.key, args.out, seed=args.seed, n_resamples=args.n_resamples,
                               confidence=args.confidence, require_complete=args.require_complete)
        unrated = sum(a.n_unrated for a in summary.adherence if a.category is None)
        if unrated:
            print(f"warning: {unrated} sample(s) have no rating and are left out of the means",
                  file=sys.stderr)
    else:
        summary = load_ratings(args.ratings)
    print(format_table(summary))
    if args.ratings_command == "import":
        print(f"\nwrote {args.out}")
    return 0
