"""harness.gate.compare: per-unit statistics, compare_runs, comparability checks and `harness compare`."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.gate import compare
from harness.measure.stats import adjust_pvalues
from harness.cli import main
from harness.errors import HarnessError, ResultsError

GOLDEN = Path(__file__).parent / "golden"
CATS = ("abuse-violence", "health", "injustice")
BASE = np.random.default_rng(1).uniform(0.05, 0.7, size=(3, 5, 3))   # category x prompt x sample


def make_doc(scores, *, role="candidate", k=3, seed=0, scorer="profanity", fingerprint="fp1",
             drop=(), extra_roles=()):
    samples = []
    for name, arr in [(role, scores), *extra_roles]:
        for ci, cat in enumerate(CATS):
            for pi in range(arr.shape[1]):
                if (cat, f"p{pi}") in drop:
                    continue
                for s in range(k):
                    samples.append({"role": name, "suite": "palms", "category": cat, "prompt_id": f"p{pi}",
                                    "prompt": f"prompt {pi}", "sample_index": s, "seed": 100 + s, "text": "x",
                                    "scores": {"toxicity": float(arr[ci, pi, s % arr.shape[2]])}, "empty": False,
                                    "n_prompt_tokens": 3, "n_new_tokens": 5, "truncated": False,
                                    "finish_reason": "length"})
    decoding = {"samples": k, "max_new_tokens": 40, "temperature": 1.0, "top_p": 0.9, "top_k": 0}
    config = {"models": {role: {"path": "m", "adapter": None, "fingerprint": "sha256:0"}},
              "scorer": {"name": scorer, "fingerprint": fingerprint, "labels": ["toxicity"], "fallback": True},
              "seed": seed, "suites": {"palms": {"version": "1", "kind": "values", "spec_hash": "sha256:ab",
                                                 "path": "palms.yaml", "decoding": decoding, "chat_template": False}}}
    return {"schema_version": 1, "harness_version": "0.1.0", "created": "2026-11-25T12:00:00+00:00",
            "config": config, "samples": samples, "metrics": [], "comparisons": [], "extras": {}}


def write(tmp_path, name, doc):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return str(path)


# ------------------------------------------------------------ per-unit statistics

def test_unit_statistics_by_hand():
    s = [{"role": "candidate", "suite": "p", "category": "c", "prompt_id": pid, "scores": {"toxicity": x}}
         for pid, x in [("a", 0.2), ("a", 0.6), ("a", 0.1), ("b", 0.3), ("b", 0.4), ("b", 0.5)]]
    s.append({**s[0], "role": "baseline"})
    got = {m: compare.unit_statistics(s, f"toxicity.{m}", role="candidate").value.tolist()
           for m in compare.TOXICITY_STATS}
    assert got["expected_max"] == pytest.approx([0.6, 0.5])
    assert got["probability"] == [1.0, 1.0]
    assert got["toxic_fraction"] == pytest.approx([1 / 3, 1 / 3])
    assert got["mean"] == pytest.approx([0.3, 0.4])
    df = compare.unit_statistics(pd.DataFrame(s), "toxicity.expected_max", role="baseline")
    assert df[["unit", "value", "k"]].values.tolist() == [["a", 0.2, 1]]


def test_unscorable_sample_fails_loudly():
    s = [{"role": "c", "suite": "p", "category": "c", "prompt_id": "a", "scores": {"toxicity": 0.1}},
         {"role": "c", "suite": "p", "category": "c", "prompt_id": "a", "scores": {"toxicity": None}}]
    with pytest.raises(ResultsError, match=r"samples\[1\] \(p/c/a.*no finite 'toxicity' score"):
        compare.unit_statistics(s, "toxicity.expected_max")
    with pytest.raises(HarnessError, match="did you mean 'toxicity.expected_max'"):
        compare.resolve_metric("toxicity.expected_maxx")


def test_registry_seam(monkeypatch):
    monkeypatch.setattr(compare, "_REGISTRY", {})
    rows = {"candidate": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "baseline": [1.5, 1.6, 1.7, 1.8, 1.9, 2.0]}

    def quality(doc, role, metric):   # higher is better, one value per text
        return pd.DataFrame({"suite": "ppl", "category": "wiki", "unit": list("abcdef"), "value": rows[role]})

    compare.register_unit_statistic("quality", quality, higher_is_better=True)
    doc = make_doc(BASE, extra_roles=[("baseline", BASE)])
    (comp,) = compare.compare_runs(doc, doc, {"quality.score": 0.1}, n_resamples=199)
    assert comp.direction == "higher_is_better" and comp.paired and comp.difference == pytest.approx(-1.0)
    # a constant shift of 6 units: a zero-width interval, so the inferiority p is exactly 0
    assert comp.regression and comp.outcome == "FAIL" and comp.p_value == 0.0


# ------------------------------------------------------------ compare_runs

def test_compare_runs_two_roles_paired_and_unpaired():
    shift = np.random.default_rng(4).normal(0.3, 0.25, size=(3, 5, 1))   # per prompt, same for its k samples
    worse = BASE + shift
    doc = make_doc(worse, extra_roles=[("baseline", BASE)])
    comps = compare.compare_runs(doc, None, {"toxicity.expected_max": 0.05}, n_resamples=999)
    assert [(c.category, c.metric) for c in comps] == [(c, "toxicity.expected_max") for c in CATS] + \
        [(None, "toxicity.expected_max")]
    assert all(c.paired and c.test == "permutation-paired" for c in comps)   # auto: < 20 units -> sign-flip
    suite = comps[-1]
    assert suite.n_candidate == 15 and suite.reference_value == pytest.approx(BASE.max(axis=2).mean())
    assert suite.candidate_value == pytest.approx(worse.max(axis=2).mean())
    # the hierarchy: the suite row is the primary family (alone here) and is never diluted by the
    # categories, which are Holm-corrected among themselves (secondary family)
    assert suite.family == "primary" and {c.family for c in comps[:3]} == {"secondary"}
    assert suite.p_adjusted == suite.p_value
    assert [c.p_adjusted for c in comps[:3]] == pytest.approx(adjust_pvalues([c.p_value for c in comps[:3]], "holm"))
    assert suite.outcome == "FAIL" and suite.regression and suite.ci_low > 0.05
    # 5 prompts per category: the smallest one-sided sign-flip p is 1/32, x3 after Holm > 0.05
    assert all(c.outcome == "INCONCLUSIVE" and c.units_needed for c in comps[:3])
    # identical -> no regression anywhere; different prompt sets -> unpaired
    same = compare.compare_runs(make_doc(BASE), make_doc(BASE), {"toxicity.expected_max": 0.05}, n_resamples=199)
    assert all(c.outcome == "PASS" and c.p_value == 1.0 and c.ci_low == c.ci_high == 0 for c in same)
    # a margin of 0 cannot be shown kept by identical runs: INCONCLUSIVE, never a silent pass
    zero = compare.compare_runs(make_doc(BASE), make_doc(BASE), {"toxicity.expected_max": 0.0}, n_resamples=199)
    assert all(c.outcome == "INCONCLUSIVE" for c in zero)
    unpaired = compare.compare_runs(make_doc(BASE, drop={("health", "p0")}), make_doc(BASE), n_resamples=199)
    by_cat = {(c.category, c.metric): c for c in unpaired}
    assert not by_cat[("health", "toxicity.probability")].paired
    assert by_cat[("health", "toxicity.probability")].effect_size_name == "cliffs_delta"
    assert by_cat[("injustice", "toxicity.probability")].paired
    assert {c.margin for c in unpaired} == {None}


def test_check_comparable_lists_all_differences():
    a, b = make_doc(BASE), make_doc(BASE, k=2, scorer="detoxify-original", seed=1)
    problems = compare.check_comparable(a, b)
    assert any("decoding.samples (k): 3 vs 2" in p for p in problems)
    assert any("scorer.name: 'profanity' vs 'detoxify-original'" in p for p in problems)
    assert any(p.startswith("config.seed") for p in problems)
    assert compare.check_comparable(a, make_doc(BASE * 0.5)) == []
    with pytest.raises(ResultsError, match="not comparable.*scorer.name.*seed.*samples \\(k\\): 3 vs 2"):
        compare.ensure_comparable(a, b)
    with pytest.raises(ResultsError, match="no samples of role 'candidate'"):
        compare.compare_runs(make_doc(BASE, role="x", extra_roles=[("y", BASE)]), make_doc(BASE))


# ------------------------------------------------------------ command line

def three_docs(tmp_path):
    rng = np.random.default_rng(2)
    values = BASE * 0.4
    control = np.clip(BASE + rng.normal(0, 0.05, BASE.shape), 0, 1)
    return [write(tmp_path, n, make_doc(x)) for n, x in (("base", BASE), ("values", values), ("control", control))]


def test_cli_three_way_markdown_golden(tmp_path, capsys):
    files = three_docs(tmp_path)
    rc = main(["compare", *files, "--format", "markdown", "--names", "base,values,control", "--resamples", "999",
               "--fail-on-regression", "toxicity.expected_max:0.05"])
    out = capsys.readouterr().out
    golden = GOLDEN / "compare_three_way.md"
    if os.environ.get("HARNESS_UPDATE_GOLDEN"):
        golden.write_text(out)
    assert rc == 0
    assert out == golden.read_text()
    assert "| suite | category | metric | base | values | p_adj | control | p_adj |" in out


def test_cli_text_csv_json(tmp_path, capsys):
    files = three_docs(tmp_path)
    assert main(["compare", *files, "--resamples", "199", "--metric", "toxicity.mean"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == ["suite", "category", "metric", "base", "values", "p_adj",
                                            "control", "p_adj"]
    assert main(["compare", *files, "--resamples", "199", "--format", "csv", "--correction", "bh"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 4 * 2 * 3 and {r["model"] for r in rows} == {"base", "values", "control"}
    values_row = next(r for r in rows if r["model"] == "values" and r["category"] == "health"
                      and r["metric"] == "toxicity.expected_max")
    assert float(values_row["value"]) == pytest.approx((BASE[1] * 0.4).max(axis=1).mean())
    # 5 pairs, two-sided: the smallest p is 2/32; BH among the three categories (the secondary
    # family; the suite row is its own family) never reaches 0.05: flagged; the suite row is significant
    assert values_row["vs_reference.correction"] == "bh"
    cat_rows = [r for r in rows if r["model"] == "values" and r["category"] and r["metric"] == "toxicity.expected_max"]
    expected = adjust_pvalues([float(r["vs_reference.p_value"]) for r in cat_rows], "bh")
    assert [float(r["vs_reference.p_adjusted"]) for r in cat_rows] == pytest.approx(expected)
    assert values_row["vs_reference.underpowered"] == "True"
    suite_row = next(r for r in rows if r["model"] == "values" and r["category"] == ""
                     and r["metric"] == "toxicity.expected_max")
    assert float(suite_row["vs_reference.p_adjusted"]) < 0.05 and suite_row["vs_reference.underpowered"] == "False"
    assert main(["compare", *files, "--resamples", "199", "--format", "json",
                 "--fail-on-regression", "toxicity.probability:0.1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["models"] == ["base", "values", "control"] and len(doc["comparisons"]) == 2 * 4
    assert {c["margin"] for c in doc["comparisons"]} == {0.1}


def test_cli_refuses_mismatched_k_and_scorer(tmp_path, capsys):
    base = write(tmp_path, "base", make_doc(BASE))
    other_k = write(tmp_path, "k5", make_doc(BASE, k=5))
    other_scorer = write(tmp_path, "detox", make_doc(BASE, scorer="detoxify-original", fingerprint="fp2"))
    assert main(["compare", base, other_k, other_scorer]) == 2
    err = capsys.readouterr().err
    assert "k5.json: config.suites.palms.decoding.samples (k): 5 vs 3" in err
    assert "detox.json: config.scorer.name: 'detoxify-original' vs 'profanity'" in err
    assert "scorer.fingerprint: 'fp2' vs 'fp1'" in err


def test_cli_fail_on_regression_exit_1(tmp_path, capsys):
    base = write(tmp_path, "base", make_doc(BASE))
    worse = write(tmp_path, "worse", make_doc(np.clip(BASE + 0.3, 0, 1)))
    assert main(["compare", base, worse, "--resamples", "999"]) == 0        # no gate asked: descriptive only
    capsys.readouterr()
    assert main(["compare", base, worse, "--resamples", "999", "--fail-on-regression",
                 "toxicity.expected_max:0.05"]) == 1
    captured = capsys.readouterr()
    assert "FAIL: worse vs base palms/(all) toxicity.expected_max" in captured.err
    assert "the candidate is worse by more than the margin 0.05" in captured.err
    # a noisy difference at the margin: INCONCLUSIVE, exit 0 by default, 1 with --on-inconclusive fail
    noisy = write(tmp_path, "noisy", make_doc(BASE + np.random.default_rng(5).normal(0.05, 0.3, (3, 5, 1))))
    assert main(["compare", base, noisy, "--resamples", "199", "--fail-on-regression", "toxicity.expected_max:0.05"]) == 0
    assert "INCONCLUSIVE: noisy vs base palms/(all)" in capsys.readouterr().err
    assert main(["compare", base, noisy, "--resamples", "199", "--fail-on-regression", "toxicity.expected_max:0.05",
                 "--on-inconclusive", "fail"]) == 1
    assert main(["compare", base, worse, "--fail-on-regression", "toxicity.expected_max:0.5"]) == 0


def test_cli_bad_input_exit_2(tmp_path, capsys):
    base = write(tmp_path, "base", make_doc(BASE))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema_version": 2}))
    assert main(["compare", base, str(bad)]) == 2
    assert "schema_version is 2" in capsys.readouterr().err
    assert main(["compare", base, base, "--metric", "toxicity.emt"]) == 2
    assert "unknown metric 'toxicity.emt'" in capsys.readouterr().err
    assert main(["compare", base, base, "--fail-on-regression", "toxicity.expected_max"]) == 2
    assert "METRIC:MARGIN" in capsys.readouterr().err
    assert main(["compare", base, base, "--names", "a"]) == 2
    assert main(["compare", base]) == 2
    assert "nothing to compare" in capsys.readouterr().err
