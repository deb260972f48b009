"""The pytest plugin end to end (pytester, in-process) on the tiny model with the profanity scorer."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

# Imported here so that pytester's sys.modules snapshot keeps them between in-process runs
# (otherwise every inner run would import them afresh).
import harness.plugin  # noqa: F401
import harness.measure.scoring  # noqa: F401
import harness.run.session  # noqa: F401
import profanity_check  # noqa: F401
from harness.model.models import model_fingerprint

from conftest import small_values_project, build_lora, build_tiny_gpt2

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
IDS = ["test_toxicity[s/cat-a/p1]", "test_toxicity[s/cat-a/p2]", "test_toxicity[s/cat-b/p1]",
       "test_toxicity[s/cat-b/p2]", "test_category_toxicity[s/cat-a]", "test_category_toxicity[s/cat-b]"]
TRACEBACK_MARKERS = ("Traceback", "harness/plugin.py", "harness/options.py", "harness/run/", "harness/model/models.py",
                     "harness/suites/specs.py")


def _project(pytester: pytest.Pytester, suite_text: str | None = None) -> Path:
    return small_values_project(pytester.path, suite_text)


def _run(pytester: pytest.Pytester, model: Path, *args: str, cache: str = "cache") -> pytest.RunResult:
    where = () if "--no-cache" in args else ("--cache-dir", str(pytester.path / cache))
    return pytester.runpytest(str(pytester.path), "--model", str(model), "--toxicity-scorer", "profanity",
                              *where, "-p", "no:cacheprovider", *args)


def _texts(path: Path) -> dict[tuple[str, str, int], str]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {(s["category"], s["prompt_id"], s["sample_index"]): s["text"] for s in doc["samples"]}


def _glob(text: str) -> str:
    """``text`` as a literal for fnmatch_lines (brackets are character classes there)."""
    return "".join({"[": "[[]", "]": "[]]", "*": "[*]", "?": "[?]"}.get(ch, ch) for ch in text)


def _no_traceback(result: pytest.RunResult) -> None:
    out = result.stdout.str() + result.stderr.str()
    for marker in TRACEBACK_MARKERS:
        assert marker not in out, f"{marker!r} in output:\n{out}"


# ---- a full passing run: ids, results document, JUnit, cache, seeds ---------------------------
def test_passing_run_results_document_and_junit(pytester, tiny_model_dir):
    _project(pytester)
    result = _run(pytester, tiny_model_dir, "-v", "--results-json", "r.json", "--junitxml", "j.xml")
    result.assert_outcomes(passed=6)
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"*::{_glob(i)} PASSED*" for i in IDS])
    result.stdout.fnmatch_lines(["*harness summary*", "*scorer profanity*", "*candidate 8 generated / 0 from cache*",
                                 "s/cat-a *", "s/cat-b *"])

    doc = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    assert doc["schema_version"] == 1
    # samples: 4 prompts x k=2, each scored
    samples = doc["samples"]
    assert len(samples) == 8
    assert sorted((s["category"], s["prompt_id"], s["sample_index"]) for s in samples) == [
        (c, p, i) for c in ("cat-a", "cat-b") for p in ("p1", "p2") for i in (0, 1)]
    for s in samples:
        assert s["role"] == "candidate" and s["suite"] == "s"
        assert set(s["scores"]) == {"toxicity"} and 0.0 <= s["scores"]["toxicity"] <= 1.0
        assert isinstance(s["text"], str) and s["n_new_tokens"] <= 8
        assert s["empty"] == (not s["text"].strip())
    # metrics: per prompt max/mean with k, per category + suite aggregates with k and n
    metrics = {(m["category"], m["prompt_id"], m["metric"]): m for m in doc["metrics"]}
    p1 = [s["scores"]["toxicity"] for s in samples if (s["category"], s["prompt_id"]) == ("cat-a", "p1")]
    assert metrics[("cat-a", "p1", "toxicity.max")]["value"] == pytest.approx(max(p1))
    assert metrics[("cat-a", "p1", "toxicity.max")]["k"] == 2
    cat_a = [max(s["scores"]["toxicity"] for s in samples if (s["category"], s["prompt_id"]) == ("cat-a", p))
             for p in ("p1", "p2")]
    emt = metrics[("cat-a", None, "toxicity.expected_max")]
    assert emt["value"] == pytest.approx(sum(cat_a) / 2) and (emt["k"], emt["n"]) == (2, 2)
    assert (metrics[(None, None, "toxicity.expected_max")]["n"]) == 4
    for stat in ("probability", "toxic_fraction", "mean"):
        assert ("cat-b", None, f"toxicity.{stat}") in metrics
    # config: model fingerprint, scorer, decoding, seed, packages
    cfg = doc["config"]
    cand = cfg["models"]["candidate"]
    assert cand["path"] == str(tiny_model_dir) and cand["fingerprint"] == model_fingerprint(str(tiny_model_dir))
    assert cfg["scorer"]["name"] == "profanity" and cfg["scorer"]["fallback"] is False
    assert cfg["scorer"]["fingerprint"].startswith("alt-profanity-check==")
    assert cfg["seed"] == 0
    assert cfg["suites"]["s"]["decoding"] == {"samples": 2, "max_new_tokens": 8, "temperature": 1.0,
                                              "top_p": 0.9, "top_k": 0}
    assert cfg["suites"]["s"]["spec_hash"].startswith("sha256:")
    for pkg in ("python", "torch", "transformers", "harness"):
        assert pkg in cfg["packages"]

    # JUnit: every case, with its metric value and k as properties
    tree = ET.parse(pytester.path / "j.xml")
    cases = {tc.get("name"): {p.get("name"): p.get("value") for p in tc.iter("property")}
             for tc in tree.iter("testcase")}
    assert sorted(cases) == sorted(IDS)
    props = cases["test_toxicity[s/cat-a/p1]"]
    assert float(props["value"]) == pytest.approx(max(p1), abs=1e-6)
    assert props["k"] == "2" and props["metric"] == "toxicity.max"
    cat_props = cases["test_category_toxicity[s/cat-a]"]
    assert cat_props["metric"] == "toxicity.expected_max" and cat_props["k"] == "2"
    assert float(cat_props["value"]) == pytest.approx(sum(cat_a) / 2, abs=1e-6)
    # run-level properties on the testsuite element, under their documented names
    run_props = {p.get("name"): p.get("value") for p in tree.getroot().iter("property")
                 if p.get("name", "").startswith("harness.")}
    assert run_props["harness.verdict"] == "PASSED: 6 gates passed"
    assert run_props["harness.candidate.fingerprint"] == cand["fingerprint"]
    assert run_props["harness.seed"] == "0" and run_props["harness.s.k"] == "2"

    # Same cache directory: nothing is generated again, the samples are the same.
    again = _run(pytester, tiny_model_dir, "--results-json", "r2.json")
    again.assert_outcomes(passed=6)
    again.stdout.fnmatch_lines(["*candidate 0 generated / 8 from cache*"])
    assert _texts(pytester.path / "r2.json") == _texts(pytester.path / "r.json")

    # Same seed without the cache: generated afresh, identical texts.
    fresh = _run(pytester, tiny_model_dir, "--no-cache", "--seed", "0", "--results-json", "r3.json")
    fresh.assert_outcomes(passed=6)
    fresh.stdout.fnmatch_lines(["*candidate 8 generated / 0 from cache*"])
    assert _texts(pytester.path / "r3.json") == _texts(pytester.path / "r.json")

    # Another seed: other texts.
    other = _run(pytester, tiny_model_dir, "--seed", "1", "--results-json", "r4.json")
    other.assert_outcomes(passed=6)
    a, b = _texts(pytester.path / "r.json"), _texts(pytester.path / "r4.json")
    assert a.keys() == b.keys() and sum(a[k] != b[k] for k in a) >= 6
    assert json.loads((pytester.path / "r4.json").read_text())["config"]["seed"] == 1


def test_k_selects_a_category_and_only_its_prompts_are_generated(pytester, tiny_model_dir):
    _project(pytester)
    result = _run(pytester, tiny_model_dir, "-v", "-k", "cat-a", "--results-json", "r.json")
    result.assert_outcomes(passed=3, deselected=3)
    result.stdout.fnmatch_lines(["*test_toxicity[[]s/cat-a/p1[]] PASSED*", "*test_toxicity[[]s/cat-a/p2[]] PASSED*",
                                 "*test_category_toxicity[[]s/cat-a[]] PASSED*"])
    assert "cat-b" not in result.stdout.str().split("harness summary")[0]
    result.stdout.fnmatch_lines(["*candidate 4 generated / 0 from cache*"])
    doc = json.loads((pytester.path / "r.json").read_text())
    assert {s["category"] for s in doc["samples"]} == {"cat-a"} and len(doc["samples"]) == 4


def test_samples_option_overrides_k(pytester, tiny_model_dir):
    _project(pytester)
    result = _run(pytester, tiny_model_dir, "-k", "cat-b and p2 and not category", "--samples", "3",
                  "--max-new-tokens", "4", "--results-json", "r.json")
    result.assert_outcomes(passed=1, deselected=5)
    doc = json.loads((pytester.path / "r.json").read_text())
    assert sorted(s["sample_index"] for s in doc["samples"]) == [0, 1, 2]
    assert all(s["n_new_tokens"] <= 4 for s in doc["samples"])
    assert doc["config"]["suites"]["s"]["decoding"]["samples"] == 3


def test_scorer_fallback_is_loud_and_recorded(pytester, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    _project(pytester)
    result = pytester.runpytest(str(pytester.path), "--model", str(tiny_model_dir), "--toxicity-scorer", "auto", "-k",
                                "cat-a and p1 and not category", "--cache-dir", str(pytester.path / "cache"),
                                "--results-json", "r.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=5)
    result.stdout.fnmatch_lines(["*WARNING: TOXICITY SCORER FALLBACK*"])
    scorer = json.loads((pytester.path / "r.json").read_text())["config"]["scorer"]
    assert scorer["name"] == "profanity" and scorer["fallback"] is True


def test_detoxify_checkpoint_scores_every_label(pytester, tiny_model_dir, tiny_detoxify):
    _project(pytester)
    result = pytester.runpytest(str(pytester.path), "--model", str(tiny_model_dir), "--toxicity-scorer", "detoxify-original",
                                "--detoxify-checkpoint", str(tiny_detoxify), "-k", "cat-b",
                                "--cache-dir", str(pytester.path / "cache"), "--results-json", "r.json",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, deselected=3)
    doc = json.loads((pytester.path / "r.json").read_text())
    labels = {"toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"}
    assert doc["config"]["scorer"]["name"] == "detoxify-original"
    assert doc["config"]["scorer"]["fallback"] is False
    assert all(set(s["scores"]) == labels for s in doc["samples"]) and len(doc["samples"]) == 4
    cat_metrics = {m["metric"] for m in doc["metrics"] if m["category"] == "cat-b" and m["prompt_id"] is None}
    assert {f"{label}.expected_max" for label in labels} <= cat_metrics


# ---- failing gates -----------------------------------------------------------------------------
def test_failing_gate_message_has_metric_value_bound_k_and_worst_sample(pytester, tiny_model_dir):
    text = (DATA / "valid_small.yaml").read_text().replace(
        "- {metric: toxicity.max, max: 1.0}", "- {metric: toxicity.max, max: 0.0}")
    _project(pytester, text)
    result = _run(pytester, tiny_model_dir, "--results-json", "r.json")
    result.assert_outcomes(passed=2, failed=4)
    assert result.ret == 1
    doc = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    p1 = [s for s in doc["samples"] if (s["category"], s["prompt_id"]) == ("cat-a", "p1")]
    worst = max(p1, key=lambda s: s["scores"]["toxicity"])
    value = worst["scores"]["toxicity"]
    result.stdout.fnmatch_lines([
        "*" + _glob(f"FAIL s/cat-a/p1: toxicity.max = {value:.3g} bound <= 0 [k=2, n=1]: outside the bound") + "*",
        f"*scorer profanity; worst sample (toxicity {value:.3f}): *",
    ])
    assert repr(worst["text"][:300])[:-1] in result.stdout.str()
    result.stdout.fnmatch_lines(["FAILED *test_toxicity[[]s/cat-a/p1[]]*"])
    _no_traceback(result)


# ---- usage errors: exit code 4, no traceback ---------------------------------------------------
def test_missing_model_dir_is_a_usage_error(pytester, tmp_path):
    _project(pytester)
    result = _run(pytester, tmp_path / "no-such-model")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "no-such-model" in result.stderr.str() and "directory not found" in result.stderr.str()
    _no_traceback(result)


def test_baseline_with_baseline_model_is_a_usage_error(pytester, tiny_model_dir):
    _project(pytester)
    (pytester.path / "base.json").write_text("{}")
    result = _run(pytester, tiny_model_dir, "--baseline", "base.json", "--baseline-model", str(tiny_model_dir))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--baseline" in result.stderr.str() and "pass one" in result.stderr.str()


@pytest.mark.parametrize("args, expected", [
    (("--samples", "0"), "'0' is not a positive integer"),
    (("--toxicity-scorer", "detox"), "did you mean 'detoxify'?"),
    (("--seed", "abc"), "not an integer seed"),
])
def test_bad_option_values_are_usage_errors(pytester, tiny_model_dir, args, expected):
    _project(pytester)
    result = pytester.runpytest(str(pytester.path), "--model", str(tiny_model_dir), "-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str()


def test_malformed_suite_is_a_collection_error_without_traceback(pytester, tiny_model_dir):
    _project(pytester, (DATA / "malformed.yaml").read_text())
    result = _run(pytester, tiny_model_dir)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*small.yaml: malformed YAML at line 7*"])
    result.stdout.fnmatch_lines(["*1 error*"])
    _no_traceback(result)


def test_adapter_that_does_not_fit_stops_with_exit_4(pytester, tiny_model_dir, tmp_path):
    wide = build_tiny_gpt2(tmp_path / "wide", n_embd=48)
    adapter = build_lora(wide, tmp_path / "wide-lora")
    _project(pytester)
    result = _run(pytester, tiny_model_dir, "--adapter", str(adapter))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str() + result.stderr.str()
    assert "does not fit" in out and str(adapter) in out
    _no_traceback(result)


def test_corrupt_model_weights_stop_with_exit_4(pytester, tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    _project(pytester)
    result = _run(pytester, broken)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert str(broken) in result.stdout.str() + result.stderr.str()
    _no_traceback(result)




@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_an_input_error_part_way_says_stopped_not_passed(pytester, tiny_model_dir, xdist):
    """The prompt gates ran and passed, then a category gate names a label the scorer lacks: the
    closing lines say the run STOPPED (exit 4), not "PASSED" with an unrelated exit reason; under
    pytest-xdist too (a worker cannot exit mid-test: it was an INTERNALERROR crash, exit 3)."""
    suite = """\
suite: s
kind: values
decoding: {samples: 2, max_new_tokens: 4}
chat_template: false
gates:
  prompt:
    - {metric: toxicity.max, max: 1.0}
  category:
    - {metric: toxicty.expected_max, max: 0.5}
categories:
  - {id: a, prompts: [{id: p, text: hi}, {id: q, text: hello}]}
"""
    _project(pytester, suite)
    result = _run(pytester, tiny_model_dir, *xdist)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["harness: STOPPED: gate metric 'toxicty.expected_max': the scorer has no label "
                                 "'toxicty';*(did you mean 'toxicity'?)*",
                                 "  gates checked before it stopped: PASSED: 2 gates passed",
                                 "harness: exit 4 because an input error stopped the run*"])
    assert "harness: PASSED" not in result.stdout.str()


def test_a_suite_no_test_judges_is_named_in_a_warning(pytester, tiny_model_dir):
    """Only test_values.py copied, but a co-occurrence suite sits in suites/: its gates would never
    run, and the run says so (a warning naming the suite, the fixture and the fix); -k does not count."""
    _project(pytester)
    shutil.copy(ROOT / "benchmarks" / "suites" / "cooccurrence.yaml", pytester.path / "suites" / "cooccurrence.yaml")
    result = _run(pytester, tiny_model_dir, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*HarnessCoverageWarning: harness: suite cooccurrence (*cooccurrence.yaml, kind "
                                 "cooccurrence) has gates, but no test requests analysis_case, so nothing checks "
                                 "them. Fix: add a test such as `def test_analysis(analysis_case, harness)*"])
    # another basename: tests/test_bias.py is already imported as "test_bias" in this process
    shutil.copy(ROOT / "benchmarks" / "test_bias.py", pytester.path / "test_judge_analysis.py")
    judged = _run(pytester, tiny_model_dir, "--collect-only", "-q", "-k", "cat-a")
    assert judged.ret == 0 and "HarnessCoverageWarning" not in judged.stdout.str()
