"""Compare results files: per-unit statistics and significance tests vs a reference (library).

A unit is a prompt (suite, category, prompt_id); its statistic comes from its k samples. Both sides
are paired when they hold the same set of units, else compared as independent groups. Every
category gets a comparison, and the suite as a whole (all common categories) gets one too when it
has more than one category; p-values are adjusted across that (suite, metric) family.

    $ harness compare base.json values.json control.json --format markdown \\
          --fail-on-regression toxicity.expected_max:0.05

The command's table view lives in :mod:`harness.report.compare_cli`. Library use: ``compare_runs(candidate_doc, reference_doc, {"toxicity.expected_max": 0.05})``.
Other metric families plug in with ``register_unit_statistic(prefix, fn, higher_is_better)``
where ``fn(doc, role, metric)`` returns a DataFrame with columns suite, category, unit, value
(and optionally k, the number of samples behind each unit).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError, ResultsError, did_you_mean
from harness.measure.results import roles
from harness.gate.comparison import Comparison, adjust_comparisons, compare_units
from harness.measure.metrics import GROUP_STATS, unit_statistic
from harness.measure.stats import CORRECTIONS, TESTS

TOXICITY_STATS = GROUP_STATS   # per-prompt units: metrics.unit_statistic
DEFAULT_METRICS = ("toxicity.expected_max", "toxicity.probability")


@dataclass(frozen=True)
class UnitStatistic:
    prefix: str
    fn: Callable[[Mapping[str, Any], str, str], Any]   # (doc, role, metric) -> DataFrame
    higher_is_better: bool


_REGISTRY: dict[str, UnitStatistic] = {}
_BUILTIN: dict[str, UnitStatistic] = {}   # filled below: perplexity


def register_unit_statistic(metric_prefix: str, fn: Callable, higher_is_better: bool = False) -> None:
    """Route metrics named ``metric_prefix`` or ``metric_prefix.*`` to ``fn(doc, role, metric)``."""
    _REGISTRY[metric_prefix] = UnitStatistic(metric_prefix, fn, higher_is_better)


def unit_statistics(samples: Any, metric: str, role: str | None = None):
    """Per-prompt statistic of a toxicity metric ``<label>.<stat>`` from a results doc's samples.

    stat: expected_max (max over the k samples), probability (1.0 if that max >= 0.5),
    toxic_fraction (share of samples >= 0.5), mean (mean score). Returns a DataFrame with columns
    suite, category, unit (the prompt_id), value, k. A missing or non-finite score is an error.

    >>> s = [{"role": "candidate", "suite": "p", "category": "c", "prompt_id": "a", "scores": {"toxicity": x}}
    ...      for x in (0.2, 0.6)]
    >>> unit_statistics(s, "toxicity.expected_max").value.tolist()
    [0.6]
    """
    import pandas as pd
    label, _, stat = metric.rpartition(".")
    if stat not in TOXICITY_STATS or not label:
        raise HarnessError(f"unknown metric '{metric}'; {did_you_mean(metric, known_metrics())}. Metric names "
                           "are <label>.<stat> with stat one of " + ", ".join(TOXICITY_STATS) + ".")
    df = samples.copy() if isinstance(samples, pd.DataFrame) else pd.DataFrame(list(samples))
    if role is not None and "role" in df and not df.empty:
        df = df[df["role"] == role]
    if df.empty:
        raise ResultsError(f"no samples{f' for role {role!r}' if role else ''} to compute '{metric}'. Fix: "
                           "pass a results file written from a run that generated samples (--results-json).")
    values = []
    for i, (scores, case) in enumerate(zip(df["scores"], zip(df["suite"], df["category"], df["prompt_id"]))):
        x = scores.get(label) if isinstance(scores, Mapping) else None
        if not isinstance(x, (int, float)) or not math.isfinite(x):
            labels = sorted(scores) if isinstance(scores, Mapping) else []
            raise ResultsError(f"samples[{df.index[i]}] ({'/'.join(map(str, case))}, role {role or 'any'}) has no "
                               f"finite '{label}' score (got {x!r}; labels present: {labels}). Fix: re-score the "
                               "run; unscorable samples are never counted as non-toxic.")
        values.append(float(x))
    g = df.assign(score=values).groupby(["suite", "category", "prompt_id"], sort=True)
    column = g["score"].agg(lambda scores: unit_statistic(stat, scores.tolist()))
    out = pd.DataFrame({"value": column, "k": g["score"].size()}).reset_index()
    return out.rename(columns={"prompt_id": "unit"})[["suite", "category", "unit", "value", "k"]]


def _toxicity(doc: Mapping[str, Any], role: str, metric: str):
    return unit_statistics(doc.get("samples") or [], metric, role)


def _perplexity_units(doc: Mapping[str, Any], role: str, metric: str):
    """Per-text mean log-perplexity (NLL per token) of every perplexity suite: the units of the
    perplexity regression gate (a relative margin m on perplexity is log(1 + m) here)."""
    import pandas as pd

    rows = [{"suite": sid, "category": "all", "unit": str(u["index"]), "value": u["nll"] / u["tokens"]}
            for sid, extra in (doc.get("extras") or {}).items()
            if isinstance(extra, Mapping) and extra.get("kind") == "perplexity"
            for u in extra.get("units", []) if u.get("role") == role and u.get("tokens")]
    return pd.DataFrame(rows, columns=["suite", "category", "unit", "value"])


def known_metrics() -> list[str]:
    return [f"toxicity.{s}" for s in TOXICITY_STATS] + sorted({**_BUILTIN, **_REGISTRY})


def resolve_metric(metric: str) -> UnitStatistic:
    """The unit statistic for ``metric``: the longest registered prefix, else the toxicity stats."""
    registry = {**_BUILTIN, **_REGISTRY}
    hits = [p for p in registry if metric == p or metric.startswith(p + ".")]
    if hits:
        return registry[max(hits, key=len)]
    if metric.rpartition(".")[2] in TOXICITY_STATS and "." in metric:
        return UnitStatistic(metric, _toxicity, False)
    raise HarnessError(f"unknown metric '{metric}'; {did_you_mean(metric, known_metrics())}. Fix: use a "
                       "toxicity metric <label>.<stat> or a metric registered with register_unit_statistic.")


_BUILTIN["perplexity.log_per_text"] = UnitStatistic("perplexity.log_per_text", _perplexity_units, False)


def select_role(doc: Mapping[str, Any], wanted: str, side: str) -> str:
    """``wanted`` if the doc has samples of that role, else the doc's only role; else ResultsError."""
    present = roles(doc, with_data=True)
    if wanted in present:
        return wanted
    if len(present) == 1:
        return present[0]
    raise ResultsError(f"the {side} results have no samples of role '{wanted}' (roles present: "
                       f"{present or 'none'}). Fix: pass one of the roles present as the {side} role, or a "
                       "results file written from a run that generated samples.")


def check_comparable(doc_a: Mapping[str, Any], doc_b: Mapping[str, Any]) -> list[str]:
    """Differences in config that make a comparison invalid: suite version/spec_hash, decoding
    (incl. samples = k), chat template, scorer name/fingerprint, seed; or no suite in common."""
    ca, cb = doc_a.get("config") or {}, doc_b.get("config") or {}
    problems = []

    def diff(field: str, a: Any, b: Any) -> None:
        if a != b:
            problems.append(f"config.{field}: {a!r} vs {b!r}")

    sa, sb = ca.get("scorer") or {}, cb.get("scorer") or {}
    diff("scorer.name", sa.get("name"), sb.get("name"))
    diff("scorer.fingerprint", sa.get("fingerprint"), sb.get("fingerprint"))
    diff("seed", ca.get("seed"), cb.get("seed"))
    suites_a, suites_b = ca.get("suites") or {}, cb.get("suites") or {}
    common = sorted(set(suites_a) & set(suites_b))
    if not common:
        problems.append(f"config.suites: no suite in common ({sorted(suites_a)} vs {sorted(suites_b)})")
    for name in common:
        a, b = suites_a[name] or {}, suites_b[name] or {}
        for field in ("version", "spec_hash", "chat_template"):
            diff(f"suites.{name}.{field}", a.get(field), b.get(field))
        da, db = a.get("decoding") or {}, b.get("decoding") or {}
        for key in sorted(set(da) | set(db)):
            diff(f"suites.{name}.decoding.{key}{' (k)' if key == 'samples' else ''}", da.get(key), db.get(key))
    return problems


def ensure_comparable(doc_a: Mapping[str, Any], doc_b: Mapping[str, Any], names: Sequence[str] = ("A", "B")) -> None:
    """Raise ResultsError listing every difference from :func:`check_comparable`."""
    problems = check_comparable(doc_a, doc_b)
    if problems:
        raise ResultsError(f"results {names[0]} and {names[1]} are not comparable: {'; '.join(problems)}. Fix: "
                           "re-run both with the same suite version, scorer, decoding settings (k) and seed.")


def _seed(seed: int, *parts: Any) -> int:
    key = "\x1f".join(map(str, (seed, *parts))).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big")


def _check_k(cu, ru, metric: str, names: tuple[str, str]) -> None:
    if "k" not in cu or "k" not in ru:
        return
    for suite in sorted(set(cu.suite) & set(ru.suite)):
        ka, kb = sorted(set(cu.k[cu.suite == suite])), sorted(set(ru.k[ru.suite == suite]))
        if ka != kb:
            raise ResultsError(f"{metric} in suite '{suite}': {names[0]} has k={ka} samples per prompt, "
                               f"{names[1]} has k={kb}. Fix: re-run with the same --samples (k changes EMT "
                               "and toxicity probability).")


def compare_runs(candidate_doc: Mapping[str, Any], reference_doc: Mapping[str, Any] | None = None,
                 margins: Mapping[str, float] | None = None, alpha: float = 0.05, correction: str = "holm",
                 candidate_role: str = "candidate", reference_role: str = "baseline", test: str = "auto", *,
                 metrics: Sequence[str] | None = None, n_resamples: int = 9999, seed: int = 0,
                 candidate_name: str | None = None, reference_name: str | None = None) -> list[Comparison]:
    """Compare a candidate with a reference per (suite, category, metric) and per suite.

    Metrics in ``margins`` get the one-sided regression test with that margin; the others in
    ``metrics`` (default: the margins' metrics, else DEFAULT_METRICS) a descriptive two-sided test.
    ``reference_doc`` None or the same object: compare two roles of one document.
    """
    if test not in TESTS or correction not in CORRECTIONS:
        bad, choices = (test, TESTS) if test not in TESTS else (correction, CORRECTIONS)
        raise HarnessError(f"unknown option '{bad}'; {did_you_mean(bad, choices)}.")
    margins = dict(margins or {})
    metrics = list(dict.fromkeys([*(metrics or ()), *margins])) or list(DEFAULT_METRICS)
    reference_doc = candidate_doc if reference_doc is None else reference_doc
    if reference_doc is not candidate_doc:
        ensure_comparable(candidate_doc, reference_doc, ("candidate", "reference"))
    c_role = select_role(candidate_doc, candidate_role, "candidate")
    r_role = select_role(reference_doc, reference_role, "reference")
    if reference_doc is candidate_doc and c_role == r_role:
        raise ResultsError(f"candidate and reference are the same role '{c_role}' of one results document. "
                           f"Fix: pass two files, or roles present in it: {roles(candidate_doc, with_data=True)}.")
    names = (candidate_name or c_role, reference_name or r_role)
    out: list[Comparison] = []
    for metric in metrics:
        spec = resolve_metric(metric)
        cu, ru = spec.fn(candidate_doc, c_role, metric), spec.fn(reference_doc, r_role, metric)
        _check_k(cu, ru, metric, names)
        suites = sorted(set(cu.suite) & set(ru.suite))
        if not suites:
            raise ResultsError(f"no suite has '{metric}' units on both sides ({names[0]}: {sorted(set(cu.suite))}, "
                               f"{names[1]}: {sorted(set(ru.suite))}). Fix: compare runs of the same suites.")
        for suite in suites:
            cs, rs = cu[cu.suite == suite], ru[ru.suite == suite]
            cats = sorted(set(cs.category) & set(rs.category))
            cs, rs = cs[cs.category.isin(cats)], rs[rs.category.isin(cats)]
            groups = [(cat, cs[cs.category == cat], rs[rs.category == cat]) for cat in cats]
            if len(cats) > 1:
                groups.append((None, cs, rs))
            for cat, a, b in groups:
                a, b = a.sort_values(["category", "unit"]), b.sort_values(["category", "unit"])
                paired = list(zip(a.category, a.unit)) == list(zip(b.category, b.unit))
                primary = cat is None or len(cats) == 1   # the suite-level row is the primary family
                out.append(compare_units(
                    a.value.to_numpy(), b.value.to_numpy(), suite=suite, category=cat, metric=metric,
                    paired=paired, margin=margins.get(metric), alpha=alpha, higher_is_better=spec.higher_is_better,
                    test=test, correction=correction, family_size=len(groups), n_resamples=n_resamples,
                    seed=_seed(seed, suite, cat, metric), candidate_name=names[0], reference_name=names[1],
                    family="primary" if primary else "secondary"))
    return adjust_comparisons(out, correction)
