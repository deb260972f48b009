"""`harness compare A.json B.json [C.json ...]`: the table of every model's metrics with bootstrap CIs,
and the regression gates of :func:`harness.gate.compare.compare_runs` (exit 1 on a blocking one).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

from harness.errors import HarnessError, ResultsError
from harness.gate.comparison import Comparison
from harness.gate.compare import DEFAULT_METRICS, _seed, check_comparable, compare_runs, resolve_metric, select_role
from harness.measure.results import roles
from harness.gate.verdict import json_safe
from harness.measure.stats import TESTS, bootstrap_mean_ci


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
        present = roles(docs[0], with_data=True)
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
