"""Compare results files: per-unit statistics, significance tests vs a reference, `harness compare`.

A unit is a prompt (suite, category, prompt_id); its statistic comes from its k samples. Both sides
are paired when they hold the same set of units, else compared as independent groups. Every
category gets a comparison, and the suite as a whole (all common categories) gets one too when it
has more than one category; p-values are adjusted across that (suite, metric) family.

    $ harness compare base.json values.json control.json --format markdown \\
          --fail-on-regression toxicity.expected_max:0.05

Library use: ``compare_runs(candidate_doc, reference_doc, {"toxicity.expected_max": 0.05})``.
Other metric families plug in with ``register_unit_statistic(prefix, fn, higher_is_better)``
where ``fn(doc, role, metric)`` returns a DataFrame with columns suite, category, unit, value
(and optionally k, the number of samples behind each unit).
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError, ResultsError, did_you_mean
from harness.gate.verdict import json_safe
from harness.gate.stats import (CORRECTIONS, TESTS, Comparison, adjust_comparisons, bootstrap_mean_ci,
                           compare_units)

from harness.measure.metrics import THRESHOLD  # noqa: E402  (the one toxicity threshold)
TOXICITY_STATS = ("expected_max", "probability", "toxic_fraction", "mean")
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
    df = df.assign(score=values, hit=[float(v >= THRESHOLD) for v in values])
    g = df.groupby(["suite", "category", "prompt_id"], sort=True)
    column = {"expected_max": g["score"].max(), "probability": (g["score"].max() >= THRESHOLD).astype(float),
              "toxic_fraction": g["hit"].mean(), "mean": g["score"].mean()}[stat]
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


def roles(doc: Mapping[str, Any]) -> list[str]:
    """Roles with samples, or with perplexity units (a perplexity-only run has no samples)."""
    found = {str(s.get("role")) for s in doc.get("samples") or []}
    for extra in (doc.get("extras") or {}).values():
        if isinstance(extra, Mapping) and extra.get("kind") == "perplexity":
            found |= {str(u.get("role")) for u in extra.get("units", [])}
    return sorted(found)


def select_role(doc: Mapping[str, Any], wanted: str, side: str) -> str:
    """``wanted`` if the doc has samples of that role, else the doc's only role; else ResultsError."""
    present = roles(doc)
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
                           f"Fix: pass two files, or roles present in it: {roles(candidate_doc)}.")
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


# ---------------------------------------------------------------- command line

def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", metavar="RESULTS.json",
                        help="results files, the first being the reference (e.g. base values control); each file's "
                             "'candidate' role (or its only role) is used. One file: compare its roles, baseline first")
    parser.add_argument("--format", choices=("text", "csv", "json", "markdown"), default="text")
    parser.add_argument("--metric", action="extend", nargs="+", default=[], metavar="METRIC",
                        help=f"metrics to compare (default: {', '.join(DEFAULT_METRICS)})")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--correction", choices=("holm", "bh", "none"), default="holm",
                        help="multiple-comparison correction across the categories of a suite (default holm)")
    parser.add_argument("--fail-on-regression", action="extend", nargs="+", default=[], metavar="METRIC:MARGIN",
                        help="exit 1 when a model is significantly worse than the first by more than MARGIN")
    parser.add_argument("--on-inconclusive", choices=("fail", "warn", "pass"), default="warn",
                        help="exit status for INCONCLUSIVE gates: fail (exit 1), warn (default: report, exit 0), pass")
    parser.add_argument("--names", help="comma-separated model names, one per file (default: file names)")
    parser.add_argument("--test", choices=TESTS, default="auto",
                        help="auto/permutation: sign-flip (paired) or relabelling permutation test on the mean; "
                             "rank: Wilcoxon signed-rank / Mann-Whitney U")
    parser.add_argument("--resamples", type=int, default=9999, help="permutation and bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    parser.add_argument("--ratings", metavar="RATINGS.json",
                        help="also print human-rated adherence (from `harness ratings import`) per model and category")


def _margins(items: Sequence[str]) -> dict[str, float]:
    from harness.gate.noninferiority import parse_metric_margin

    out = {}
    for item in items:
        try:
            metric, margin = parse_metric_margin(item)
        except ValueError as exc:
            raise HarnessError(f"--fail-on-regression {exc}") from None
        out[metric] = margin
    return out


def _entries(args) -> list[tuple[str, dict, str]]:
    """(name, doc, role) per model, reference first."""
    from harness.measure.results import read_results
    docs = [read_results(path) for path in args.files]
    if len(docs) == 1:
        present = roles(docs[0])
        order = sorted(present, key=lambda r: (r != "baseline", r))
        models = [(r, docs[0], r) for r in order]
        if len(models) < 2:
            raise ResultsError(f"{args.files[0]}: one file holds only role(s) {present}; nothing to compare. "
                               "Fix: pass two or more results files (the first is the reference).")
    else:
        import os
        from pathlib import Path
        parts = [[*Path(p).parts[:-1], Path(p).stem] for p in args.files]
        labels = []   # the shortest path suffix naming each file uniquely: a/results, b/results
        for i, mine in enumerate(parts):
            others = [q for j, q in enumerate(parts) if j != i and os.path.realpath(args.files[j])
                      != os.path.realpath(args.files[i])]
            n = next((n for n in range(1, len(mine) + 1) if all(q[-n:] != mine[-n:] for q in others)), None)
            labels.append("/".join(mine[-n:]) if n else str(args.files[i]))
        labels = [x if labels[:i].count(x) == 0 else f"{x}#{labels[:i].count(x) + 1}"   # a file given twice
                  for i, x in enumerate(labels)]
        if len(set(labels)) < len(labels):
            raise HarnessError(f"cannot tell the results files {', '.join(map(str, args.files))} apart by name. "
                               "Fix: pass --names with one distinct name per file, reference first.")
        models = [(n, d, select_role(d, "candidate", str(p))) for n, p, d in zip(labels, args.files, docs)]
        problems = [f"{p}: {'; '.join(check_comparable(d, docs[0]))}"
                    for p, d in zip(args.files[1:], docs[1:]) if check_comparable(d, docs[0])]
        if problems:
            raise ResultsError(f"results files not comparable with {args.files[0]}: {' | '.join(problems)}. Fix: "
                               "compare runs of the same suite version, scorer, decoding settings (k) and seed.")
    if args.names:
        names = [n.strip() for n in args.names.split(",")]
        if len(names) != len(models) or len(set(names)) != len(names):
            raise HarnessError(f"--names '{args.names}' gives {len(names)} names for {len(models)} models (or "
                               "repeats one). Fix: one distinct comma-separated name per model, reference first.")
        models = [(n, d, r) for n, (_, d, r) in zip(names, models)]
    return models


def _fmt(x: float | None, sign: bool = False) -> str:
    return "n/a" if x is None or not math.isfinite(x) else (f"{x:+.3f}" if sign else f"{x:.3f}")


def _p(c: Comparison) -> str:
    mark = ("*" if c.p_adjusted <= c.alpha else "") + ("!" if c.underpowered else "")
    return f"{_fmt(c.p_adjusted)}{mark}"


def run(args) -> int:
    margins = _margins(args.fail_on_regression)
    metrics = list(dict.fromkeys([*args.metric, *margins])) or list(DEFAULT_METRICS)
    models = _entries(args)
    (ref_name, ref_doc, ref_role) = models[0]
    opts = dict(alpha=args.alpha, correction=args.correction, test=args.test, n_resamples=args.resamples,
                seed=args.seed, metrics=metrics, reference_role=ref_role, reference_name=ref_name)
    table: dict[str, dict] = {}   # model -> {(suite, category, metric): Comparison}
    gates: list[Comparison] = []
    for name, doc, role in models[1:]:
        opts.update(candidate_role=role, candidate_name=name)
        table[name] = {(c.suite, c.category, c.metric): c for c in compare_runs(doc, ref_doc, {}, **opts)}
        if margins:
            gates += compare_runs(doc, ref_doc, margins, **{**opts, "metrics": list(margins)})
    keys = sorted(set().union(*table.values()), key=lambda k: (k[0], metrics.index(k[2]), k[1] is None, k[1] or ""))
    cis: dict[tuple, tuple] = {}
    for name, doc, role in models:
        for metric in metrics:
            units = resolve_metric(metric).fn(doc, role, metric)
            for suite, cat, _ in (k for k in keys if k[2] == metric):
                cats = {cat} if cat else {k[1] for k in keys if k[0] == suite and k[2] == metric}
                sel = units[(units.suite == suite) & units.category.isin(cats)]
                v = sel.value.to_numpy()
                lo, hi = bootstrap_mean_ci(v, n_resamples=args.resamples, seed=_seed(args.seed, name, suite, cat, metric))
                cis[(name, suite, cat, metric)] = (float(v.mean()) if v.size else math.nan, lo, hi, int(v.size))
    print(_render(args, models, table, keys, cis, gates), end="")
    if getattr(args, "ratings", None):
        from harness.palms.ratings import format_table, load_ratings

        print("\n" + format_table(load_ratings(args.ratings)))
    blocking = [g for g in gates if g.outcome == "FAIL" or (g.outcome == "INCONCLUSIVE" and args.on_inconclusive == "fail")]
    for g in gates:
        if g.outcome != "PASS" and not (g.outcome == "INCONCLUSIVE" and args.on_inconclusive == "pass"):
            print(f"harness compare: {g.outcome}: {g.candidate} vs {g.reference} {g.suite}/{g.category or '(all)'} "
                  f"{g.metric}: diff {_fmt(g.difference, True)} ({(g.confidence or 0.9):.0%} CI {_fmt(g.ci_low, True)} "
                  f"to {_fmt(g.ci_high, True)}), margin {g.margin:g}, p_adj {_fmt(g.p_adjusted)}: {g.reason}",
                  file=sys.stderr)
    return 1 if blocking else 0


def _render(args, models, table, keys, cis, gates) -> str:
    import io
    names = [m[0] for m in models]
    value = cis   # (name, suite, category, metric) -> (mean, ci_low, ci_high, n units)
    if args.format in ("csv", "json"):
        rows = []
        for suite, cat, metric in keys:
            for name in names:
                v, lo, hi, n = value[(name, suite, cat, metric)]
                comp = table[name].get((suite, cat, metric)) if name != names[0] else None
                rows.append({"suite": suite, "category": cat, "metric": metric, "model": name, "value": v,
                             "ci_low": lo, "ci_high": hi, "n": n, "reference": names[0],
                             **({f"vs_reference.{k}": x for k, x in comp.to_dict().items() if k not in (
                                 "suite", "category", "metric", "candidate", "reference")} if comp else {})})
        if args.format == "json":
            import json
            return json.dumps(json_safe({"models": names, "reference": names[0], "rows": rows,
                                      "comparisons": [g.to_dict() for g in gates]}), indent=1) + "\n"
        import csv
        buf = io.StringIO()
        fields = list(dict.fromkeys(k for r in rows for k in r))
        from harness.textsafe import guard_formula

        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows({k: ("" if x is None else guard_formula(x)) for k, x in r.items()} for r in rows)
        return buf.getvalue()
    header = ["suite", "category", "metric", *[h for name in names for h in
                                              ([name] if name == names[0] else [name, "p_adj"])]]
    body = []
    for suite, cat, metric in keys:
        row = [suite, cat or "(all)", metric]
        for name in names:
            v, lo, hi, n = value[(name, suite, cat, metric)]
            row.append(f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}] n={n}")
            if name != names[0]:
                comp = table[name].get((suite, cat, metric))
                row.append(_p(comp) if comp else "n/a")
        body.append(row)
    legend = (f"value [95% bootstrap CI] n=prompts; p_adj: two-sided {args.test} test vs {names[0]}, "
              f"{args.correction}-adjusted per suite and metric (suite row and category rows are separate families); "
              f"* p_adj <= {args.alpha}; ! underpowered "
              "(no outcome could reach significance)")
    gate_rows = [[g.candidate, g.suite, g.category or "(all)", g.metric, f"{_fmt(g.difference, True)} [{_fmt(g.ci_low, True)}, "
                  f"{_fmt(g.ci_high, True)}]", f"{g.margin:g}", _fmt(g.p_adjusted), _fmt(g.mde),
                  str(g.outcome)] for g in gates]
    gate_head = ["model", "suite", "category", "metric", f"diff [{1 - 2 * args.alpha:.0%} CI]", "margin", "p_adj", "mde", "verdict"]
    parts = [_table(header, body, args.format), legend]
    if gates:
        parts += [f"Regression gates vs {names[0]}: PASS = upper bound of the difference below the margin; FAIL = "
                  "worse by more than the margin, significant after correction (suite rows primary, categories "
                  "secondary); INCONCLUSIVE = neither", _table(gate_head, gate_rows, args.format)]
    return "\n\n".join(parts) + "\n"


def _table(header: list[str], rows: list[list[str]], fmt: str) -> str:
    if fmt == "markdown":
        lines = [header, ["---"] * len(header), *rows]
        return "\n".join("| " + " | ".join(r) + " |" for r in lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])
