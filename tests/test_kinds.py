"""Suite kinds as registered objects: the registry, and a new kind added as one module
(tests/example_kind.py) that the plugin runs like the built-in ones."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import harness.kinds  # noqa: F401  (kept in sys.modules between pytester's in-process runs)
import harness.plugin  # noqa: F401
import harness.measure.scoring  # noqa: F401
import harness.run.session  # noqa: F401
import profanity_check  # noqa: F401
from harness import kinds
from harness.errors import HarnessError, SpecError
from harness.kinds import registry
from harness.run.session import RunOptions
from harness.suites.specs import load_suite

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LENGTH_SUITE = """\
suite: {id}
kind: length
decoding: {{samples: 2, max_new_tokens: 6}}
chat_template: false
gates:
  category:
    - {{metric: length.mean_tokens, {bound}}}
categories:
  - {{id: a, prompts: [{{id: p1, text: hello world}}, {{id: p2, text: have a nice day}}]}}
  - {{id: b, prompts: [{{id: p1, text: this is a test}}]}}
"""
TEST_LENGTH = "def test_length(length_case, harness):\n    harness.check(length_case)\n"


@pytest.fixture(autouse=True)
def _registry(monkeypatch):
    """Kinds registered by a test (the example's) are gone after it, and its module is imported afresh."""
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    monkeypatch.setattr(registry, "_CONFLICTS", {})
    yield
    sys.modules.pop("example_kind", None)


def test_registry_names_lookup_and_registration():
    assert kinds.names() == ["values", "cooccurrence", "bold", "perplexity"]   # "perturbed": derived suites only
    assert kinds.get("perturbed").fixtures == ("robustness_case",)
    with pytest.raises(SpecError, match=r"unknown kind 'bld'; valid: .*\(did you mean 'bold'\?\)"):
        kinds.get("bld")

    class Other(kinds.SuiteKind):
        name, fixtures = "bold", ("other_case",)

    kinds.register(Other)   # a taken name: kept out, and every lookup says so (no traceback at import)
    with pytest.raises(HarnessError, match="suite kind 'bold' of .*Other is already registered by "
                                           "harness.kinds.bold.BoldKind"):
        kinds.get("values")
    assert kinds.find("bold").fixtures == ("analysis_case",)
    assert kinds.register(Other, replace=True) is Other and kinds.get("bold").fixtures == ("other_case",)
    kinds.register(kinds.SuiteKind)   # no name: kept out, and reported like a taken name
    with pytest.raises(HarnessError, match="harness.kinds.registry.SuiteKind: set its class attributes 'name' and "
                                           "'fixtures'"):
        kinds.get("values")


def test_a_kind_breaking_its_contract_is_a_harness_error_naming_kind_and_operation(tmp_path):
    """cases() without case_id/suite, compare() or records() returning the wrong type: the message names
    the kind and the fix (the plugin: exit 2 at collection, exit 4 in a test), not an AttributeError."""

    class Broken(kinds.SuiteKind):
        name, fixtures = "broken", ("broken_case",)

        def cases(self, suite, fixture, options):
            return [{"suite": suite.id, "case_id": "x"}]

        def compare(self, session, case):
            return "PASS"

        def records(self, session, suite):
            return [{"metric": "m"}]

    kinds.register(Broken)
    path = tmp_path / "b.yaml"
    path.write_text("suite: b\nkind: broken\n", encoding="utf-8")
    suite = kinds.prepare(load_suite(path))
    with pytest.raises(HarnessError, match=r"suite kind 'broken' \(test_kinds.*Broken\): cases\(\) gave dict .* "
                                           "without a str case_id and suite. Fix: "):
        kinds.collect("broken_case", [suite], kinds.Selection(None))
    session = SimpleNamespace(suites={"b": suite})
    with pytest.raises(HarnessError, match=r"compare\(\) returned str 'PASS' for case 'b/x'; expected a list of "
                                           "harness.Verdict"):
        kinds.compare(session, SimpleNamespace(suite="b", case_id="b/x"))
    with pytest.raises(HarnessError, match=r"records\(\) returned list .* for suite b; expected "
                                           r"harness.kinds.Records. Fix: return Records\("):
        kinds.records(kinds.get("broken"), session, suite)
    with pytest.raises(HarnessError, match="its suite 'c' is not one of this session's suites \\(b\\). Fix: "
                                           "session.plan"):
        kinds.compare(session, SimpleNamespace(suite="c", case_id="c/x"))
    with pytest.raises(HarnessError, match="str 'c/x' is not a case"):
        kinds.compare(session, "c/x")


def test_collect_gives_cases_in_suite_order_or_the_reason_there_are_none(tmp_path):
    (tmp_path / "held.txt").write_text("one text\n", encoding="utf-8")
    values = kinds.prepare(load_suite(HERE / "data" / "valid_small.yaml"))
    ppl = tmp_path / "p.yaml"
    ppl.write_text("suite: p\nkind: perplexity\noptions: {texts: held.txt, split: line}\n"
                   "gates: {regression: [{metric: perplexity, margin: 0.05, relative: true}]}\n", encoding="utf-8")
    ppl = kinds.prepare(load_suite(ppl))
    options = RunOptions(model="m", fail_on_regression=(("toxicity.expected_max", 0.05),))
    cases, skip = kinds.collect("regression_case", [ppl, values], kinds.Selection(options, has_reference=True))
    assert [c.suite for c in cases] == ["p", "s", "s", "s"] and skip is None
    assert kinds.collect("regression_case", [ppl, values], kinds.Selection(options))[1].id == "no-reference"
    assert kinds.collect("analysis_case", [values], kinds.Selection(options))[1] == kinds.Skip(
        "none", "no co-occurrence, BOLD or perplexity suite selected")
    assert kinds.collect("robustness_case", [values], kinds.Selection(options))[1].id == "opt-in"


def test_an_example_kind_is_one_module(tmp_path):
    import example_kind

    suite = tmp_path / "len.yaml"
    suite.write_text(LENGTH_SUITE.format(id="len", bound="max: 6"), encoding="utf-8")
    prepared = kinds.prepare(load_suite(suite))
    assert kinds.get("length") is kinds.find("length") and "length" in kinds.names()
    assert [c.case_id for c in kinds.collect("length_case", [prepared], kinds.Selection(None))[0]] == ["len/a", "len/b"]
    assert kinds.collect("length_case", [], kinds.Selection(None))[1].reason == "no length suite selected"
    assert example_kind.LengthKind in [type(k) for k in kinds.providers("length_case")]


def _length_project(pytester: pytest.Pytester, register: bool = True) -> Path:
    pytester.makeini("[pytest]\n")
    shutil.copy(HERE / "example_kind.py", pytester.path / "example_kind.py")
    plugins = '["harness.plugin", "example_kind"]' if register else '["harness.plugin"]'
    (pytester.path / "conftest.py").write_text(f"pytest_plugins = {plugins}\n", encoding="utf-8")
    (pytester.path / "test_length.py").write_text(TEST_LENGTH, encoding="utf-8")
    shutil.copy(ROOT / "benchmarks" / "test_values.py", pytester.path / "test_values.py")
    folder = pytester.mkdir("suites")
    (folder / "ok.yaml").write_text(LENGTH_SUITE.format(id="ok", bound="max: 6"), encoding="utf-8")
    (folder / "short.yaml").write_text(LENGTH_SUITE.format(id="short", bound="min: 7"), encoding="utf-8")
    return pytester.path


def _run(pytester: pytest.Pytester, model: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest(str(pytester.path), "--model", str(model), "--toxicity-scorer", "profanity",
                              "--cache-dir", str(pytester.path / "cache"), "-p", "no:cacheprovider", "-rs", *args)


def test_the_plugin_runs_a_registered_kind(pytester, tiny_model_dir):
    _length_project(pytester)
    result = _run(pytester, tiny_model_dir, "-v", "--results-json", "r.json")
    # max_new_tokens 6: a mean of at most 6 new tokens always passes "max: 6" and fails "min: 7"
    result.assert_outcomes(passed=2, failed=2, skipped=2)   # skipped: test_values.py, no values suite
    result.stdout.fnmatch_lines(["*test_length?ok/a? PASSED*", "*test_length?short/b? FAILED*",
                                 "*FAIL short/a: length.mean_tokens = * bound >= 7 [[]k=2, n=2[]]: outside the bound*",
                                 "harness: BLOCKED: 2 gates failed, 2 passed"])
    doc = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    assert doc["config"]["suites"]["ok"]["kind"] == "length" and not doc["config"]["suites"]["ok"]["toxicity_metrics"]
    assert {m["metric"] for m in doc["metrics"]} == {"length.mean_tokens"}   # no toxicity aggregates of its samples
    for v in doc["verdicts"]:
        tokens = [s["n_new_tokens"] for s in doc["samples"]
                  if (s["suite"], s["category"]) == (v["suite"], v["category"])]
        assert v["value"] == pytest.approx(sum(tokens) / len(tokens)) and len(tokens) == 2 * v["n"]
        assert v["outcome"] == ("PASS" if v["suite"] == "ok" else "FAIL")

    values_only = _run(pytester, tiny_model_dir, "--suite", str(HERE / "data" / "valid_small.yaml"))
    values_only.assert_outcomes(passed=6, skipped=1)
    values_only.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_length.py: no length suite selected"])


def test_an_unregistered_kind_stops_collection_with_the_fix(pytester, tiny_model_dir):
    _length_project(pytester, register=False)
    result = _run(pytester, tiny_model_dir)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ok.yaml: kind: unknown kind 'length'; valid: *register yours*"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize("name, message", [
    ('name = "values"', "*suite kind 'values' of example_kind.LengthKind is already registered by "
                        "harness.kinds.values.ValuesKind. Fix: choose another name*"),
    ("", "*suite kind example_kind.LengthKind: set its class attributes 'name' and 'fixtures'*Fix: *"),
])
def test_a_kind_module_that_cannot_register_is_a_usage_error(pytester, tiny_model_dir, name, message):
    """A plugin module registering a taken name or no name: exit 4 with the fix, not an import traceback."""
    _length_project(pytester)
    text = (pytester.path / "example_kind.py").read_text(encoding="utf-8")
    (pytester.path / "example_kind.py").write_text(text.replace('name = "length"', name), encoding="utf-8")
    result = _run(pytester, tiny_model_dir)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
