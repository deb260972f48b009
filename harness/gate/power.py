"""Power planning for regression gates: how many prompts make a comparison decisive.

    $ harness power results.json --metric toxicity.expected_max --margin 0.05
    $ harness power candidate.json reference.json --metric toxicity.probability --margin 0.1 --power 0.9

From the observed per-prompt differences (one file holding both roles, or two files), per suite:
the standard deviation of the paired per-prompt difference, the minimum detectable difference at
the current size (a true difference this much above the margin FAILs with the chosen power; this
much below it PASSes with the chosen power), and the prompts needed for a decisive verdict: at
the observed difference, when the models are truly equal (to PASS), and when the candidate is truly
worse by twice the margin (to FAIL). Normal approximation of the gate's one-sided tests at alpha
(FAIL at alpha / family size, Holm's first step). For mean-type metrics (``.mean``,
``.toxic_fraction``) the within- and between-prompt variance of the sample-level paired
differences also gives the prompts needed at other k; EMT and toxicity probability are defined at
their k, so only more prompts help them.

With a single model's file (no reference role), the difference SD is estimated as sqrt(2) times
the per-prompt SD (two independent models of equal spread: no common-random-number gain), and
said so.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.errors import HarnessError

MEAN_STATS = ("mean", "toxic_fraction")


def _z(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def needed(sd: float, gap: float, alpha: float, power: float) -> int | None:
    """Units for a one-sided test at ``alpha`` to reach ``power`` when the truth is ``gap`` from the margin."""
    if not math.isfinite(sd) or gap <= 0:
        return None
    return max(2, math.ceil(((_z(1 - alpha) + _z(power)) * sd / gap) ** 2))


def plan(d: np.ndarray, margin: float, *, alpha: float = 0.05, power: float = 0.8, family_size: int = 2,
         within_var: float | None = None, k: int | None = None) -> dict[str, Any]:
    """Power figures from per-unit worse-direction differences ``d``.

    >>> r = plan(np.array([0.1, -0.2, 0.3, 0.0] * 25), 0.05)
    >>> r["n"], r["prompts_to_pass_if_equal"]
    (100, 82)
    """
    n = int(d.size)
    if n < 2:
        raise HarnessError(f"{n} unit(s): power planning needs at least 2 prompts with a value on both sides.")
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    est = float(d.mean())
    z_fail, z_pass, z_pow = _z(1 - alpha / family_size), _z(1 - alpha), _z(power)
    out = {"n": n, "k": k, "difference": est, "sd": sd, "se": se, "margin": margin,
           "detectable_fail_at": margin + (z_fail + z_pow) * se,
           "passes_below": margin - (z_pass + z_pow) * se,
           "prompts_to_pass_if_equal": needed(sd, margin, alpha, power),
           "prompts_to_fail_at_2x_margin": needed(sd, margin, alpha / family_size, power),
           "prompts_at_observed": (needed(sd, margin - est, alpha, power) if est < margin
                                   else needed(sd, est - margin, alpha / family_size, power))}
    if within_var is not None and k:
        between = max(0.0, sd ** 2 - within_var / k)
        out["by_k"] = {kk: needed(math.sqrt(between + within_var / kk), margin, alpha, power)
                       for kk in sorted({1, max(1, k // 2), k, 2 * k, 4 * k})}
    return out


def _sample_frame(doc: Mapping[str, Any], role: str, label: str):
    import pandas as pd

    rows = [{"suite": s["suite"], "category": s["category"], "unit": s["prompt_id"], "i": s["sample_index"],
             "score": s["scores"].get(label)} for s in doc.get("samples", []) if s.get("role") == role]
    return pd.DataFrame(rows)


def power_report(cand_doc: Mapping[str, Any], ref_doc: Mapping[str, Any] | None, metric: str, margin: float, *,
                 alpha: float = 0.05, power: float = 0.8, family_size: int = 2) -> list[dict[str, Any]]:
    """One power plan per suite of the candidate (``ref_doc`` None: the file's baseline role, or none)."""
    from harness.gate.compare import resolve_metric
    from harness.measure.results import roles

    spec = resolve_metric(metric)
    sign = -1.0 if spec.higher_is_better else 1.0
    c_roles = roles(cand_doc, with_data=True)
    c_role = "candidate" if "candidate" in c_roles else c_roles[0] if c_roles else "candidate"
    if ref_doc is None and "baseline" in c_roles:
        ref_doc, r_role = cand_doc, "baseline"
    elif ref_doc is not None:
        r_roles = roles(ref_doc, with_data=True)
        r_role = "candidate" if "candidate" in r_roles else r_roles[0]
    else:
        r_role = None
    cu = spec.fn(cand_doc, c_role, metric)
    ru = spec.fn(ref_doc, r_role, metric) if r_role else None
    out = []
    for suite in sorted(set(cu.suite)):
        a = cu[cu.suite == suite].set_index(["category", "unit"]).value
        k = int(cu[cu.suite == suite].k.iloc[0]) if "k" in cu else None
        note = ""
        within = None
        if ru is not None and suite in set(ru.suite):
            b = ru[ru.suite == suite].set_index(["category", "unit"]).value
            common = a.index.intersection(b.index)
            d = sign * (a.loc[common].to_numpy() - b.loc[common].to_numpy())
            stat = metric.rpartition(".")[2]
            if stat in MEAN_STATS:
                label = metric.rpartition(".")[0]
                sc, sr = _sample_frame(cand_doc, c_role, label), _sample_frame(ref_doc, r_role, label)
                m = sc.merge(sr, on=["suite", "category", "unit", "i"], suffixes=("_c", "_r"))
                m = m[m.suite == suite]
                from harness.measure.metrics import THRESHOLD

                x = (m.score_c >= THRESHOLD).astype(float) - (m.score_r >= THRESHOLD) if stat == "toxic_fraction" \
                    else m.score_c - m.score_r
                within = float(x.groupby([m.category, m.unit]).var(ddof=1).mean())
        else:
            d = np.sqrt(2) * (a.to_numpy() - a.to_numpy().mean())   # no reference: sqrt(2) x the spread
            note = "no reference in the file: difference SD assumed sqrt(2) x the per-prompt SD"
        if d.size < 2:
            continue
        row = {"suite": suite, "metric": metric, **plan(d, margin, alpha=alpha, power=power,
                                                        family_size=family_size, within_var=within, k=k)}
        if note:
            row["difference"], row["note"] = math.nan, note
        out.append(row)
    if not out:
        raise HarnessError(f"no suite has at least 2 prompts with '{metric}' on both sides. Fix: pass results of "
                           "runs of the same suite (a candidate and a reference).")
    return out


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", metavar="RESULTS.json",
                        help="a results file (with a baseline role, or a single model), or candidate then reference")
    parser.add_argument("--metric", default="toxicity.expected_max")
    parser.add_argument("--margin", type=float, default=0.05, help="the regression margin (default 0.05)")
    parser.add_argument("--power", type=float, default=0.8, help="target power (default 0.8)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--family-size", type=int, default=2,
                        help="gated metrics in the suite's primary family (Holm; default 2)")


def run(args) -> int:
    from harness.measure.results import read_results

    if len(args.files) > 2:
        raise HarnessError("harness power takes one results file, or a candidate and a reference file.")
    if not 0 < args.power < 1 or not 0 < args.alpha < 1 or not args.margin > 0 or args.family_size < 1:
        raise HarnessError("--power and --alpha must be in (0, 1), --margin > 0 and --family-size >= 1.")
    docs = [read_results(p) for p in args.files]
    rows = power_report(docs[0], docs[1] if len(docs) > 1 else None, args.metric, args.margin, alpha=args.alpha,
                        power=args.power, family_size=args.family_size)
    p = f"{args.power:.0%} power"
    for r in rows:
        print(f"{r['suite']} {r['metric']} (margin {r['margin']:g}, alpha {args.alpha:g}, {p}): n = {r['n']} prompts"
              + (f", k = {r['k']}" if r.get("k") else ""))
        if r.get("note"):
            print(f"  note: {r['note']}")
        else:
            print(f"  observed difference {r['difference']:+.4f} (candidate worse if > 0)")
        print(f"  SD of the per-prompt difference {r['sd']:.4f}, SE {r['se']:.4f}")
        print(f"  at this size: FAIL with {p} when truly worse by >= {r['detectable_fail_at']:.4f}; PASS with {p} "
              f"when the true difference is <= {r['passes_below']:+.4f}")
        print(f"  prompts needed: to PASS if the models are equal {r['prompts_to_pass_if_equal']}; to FAIL at 2x the "
              f"margin {r['prompts_to_fail_at_2x_margin']}"
              + (f"; to decide at the observed difference {r['prompts_at_observed'] or 'never (on the margin)'}"
                 if not r.get("note") else ""))
        if r.get("by_k"):
            print("  prompts to PASS if equal, by k: " + ", ".join(f"k={k}: {n}" for k, n in r["by_k"].items()))
    sys.stdout.flush()
    return 0
