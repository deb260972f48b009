"""Regression tests for the plugin's reliability items (issue numbers in each test's name): each of
these failed on the plugin before its fix (checked against the code of 4ad430c, the parent of the
gates rewrite, or of that rewrite where the fix came later)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Imported here so that pytester's sys.modules snapshot keeps them between in-process runs.
import harness.plugin  # noqa: F401
import harness.measure.scoring  # noqa: F401
import harness.run.session  # noqa: F401
import profanity_check  # noqa: F401

from gate_project import PERPLEXITY, VALUES, literal, make_project, no_traceback, output, read, run, verdicts


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("items-cache")


def _summary_row(result: pytest.RunResult, case: str, metric: str) -> list[str]:
    """The terminal summary's row of ``case`` and ``metric``, split into its columns."""
    for line in result.stdout.lines:
        cols = line.split()
        if cols[:2] == [case, metric]:
            return cols
    raise AssertionError(f"no summary row {case} {metric}:\n{result.stdout.str()}")


# ---- 1: a selection without cases of some kind is a skipped placeholder, never an INTERNALERROR -------
def test_item1_one_values_suite_skips_the_other_kinds_with_a_reason(pytester, tiny_model_dir, cache):
    make_project(pytester, v=VALUES, ppl=PERPLEXITY.format(id="ppl", max=10**9))
    result = run(pytester, tiny_model_dir, cache, "", "--suite", str(pytester.path / "suites" / "v.yaml"))
    # VALUES has no gates.prompt either: its prompt-case placeholder must not reach the planner
    result.assert_outcomes(passed=2, skipped=4)
    assert result.ret == 0
    result.stdout.fnmatch_lines_random([
        "SKIPPED [[]1[]] test_bench_bias.py: no co-occurrence, BOLD or perplexity suite selected",
        "SKIPPED [[]1[]] test_bench_values.py: no values suite with gates.prompt selected",
        "SKIPPED [[]1[]] test_bench_regression.py: no reference model: pass --baseline-model PATH or --baseline FILE*",
        "SKIPPED [[]1[]] test_bench_adherence.py: no human ratings: pass --ratings FILE*"])
    no_traceback(result)


# ---- 8: an analysis-only selection writes its results (and prints its summary) -----------------------
def test_item8_results_json_is_written_for_a_selection_without_samples(pytester, tiny_model_dir, cache):
    make_project(pytester, v=VALUES, perplexity=PERPLEXITY.format(id="perplexity", max=10**9))
    result = run(pytester, tiny_model_dir, cache, "", "-k", "perplexity", "--results-json", "r.json")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["--results-json: wrote r.json", "harness: PASSED: 1 gate passed"])
    doc = read(pytester.path / "r.json")
    assert doc["samples"] == [] and doc["config"]["scorer"] is None     # nothing was generated or scored
    assert [m["metric"] for m in doc["metrics"] if m["suite"] == "perplexity"] == ["perplexity"]
    no_traceback(result)


# ---- 9: an output path that cannot be written is a usage error before any generation -------------------
@pytest.mark.parametrize("flag, target, problem", [
    ("--results-json", ".", "is a directory"),
    ("--results-json", "a-file/r.json", "a-file is not a directory"),
    ("--save-baseline", "a-file/deeper/b.json", "a-file is not a directory"),
])
def test_item9_unwritable_output_is_a_usage_error_at_start_up(pytester, tiny_model_dir, flag, target, problem):
    make_project(pytester, v=VALUES)
    (pytester.path / "a-file").write_text("not a folder", encoding="utf-8")
    fresh = pytester.path / "fresh-cache"
    result = run(pytester, tiny_model_dir, fresh, "", flag, str(pytester.path / target))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"{flag} {pytester.path / target}: cannot write there (" in result.stderr.str()
    assert problem in result.stderr.str() and "Fix: pass a writable file path" in result.stderr.str()
    assert "collected" not in result.stdout.str() and not fresh.exists()   # nothing collected or generated
    no_traceback(result)


# ---- 19: the closing lines say why the run exits 1 --------------------------------------------------
def test_item19_closing_lines_name_the_failed_gates(pytester, tiny_model_dir, cache):
    make_project(pytester, v=VALUES.replace("{metric: toxicity.expected_max, max: 1.0}",
                                            "{metric: toxicity.expected_max, max: 0.0}"))
    result = run(pytester, tiny_model_dir, cache, "test_bench_values.py", "--color=yes")
    result.assert_outcomes(failed=2, skipped=1)
    assert result.ret == 1
    assert "\x1b[31m\x1b[1mharness: BLOCKED: 2 gates failed" in result.stdout.str()   # red
    result.stdout.fnmatch_lines(["*harness: BLOCKED: 2 gates failed*",
                                 "  FAIL v/cat-a toxicity.expected_max = * (bound <= 0): outside the bound",
                                 "  FAIL v/cat-b toxicity.expected_max = * (bound <= 0): outside the bound",
                                 "*harness: exit 1 because 2 gates failed (v/cat-a toxicity.expected_max, "
                                 "v/cat-b toxicity.expected_max)*"])


def test_item19_passing_gates_with_a_failing_custom_test_says_why_the_run_fails(pytester, tiny_model_dir, cache):
    make_project(pytester, v=VALUES)
    (pytester.path / "test_custom.py").write_text("def test_custom():\n    assert False, 'a custom check'\n")
    result = run(pytester, tiny_model_dir, cache, "")
    result.assert_outcomes(passed=2, failed=1, skipped=4)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["harness: PASSED: 2 gates passed",
                                 "harness: exit 1 because a test outside the harness gates failed or errored*"])


# ---- 20: --device cuda without CUDA stops at start-up --------------------------------------------------
def test_item20_device_cuda_without_cuda_is_a_usage_error_at_start_up(pytester, tiny_model_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    make_project(pytester, v=VALUES)
    fresh = pytester.path / "fresh-cache"
    result = run(pytester, tiny_model_dir, fresh, "", "--device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--device cuda: no CUDA device is available to torch on this machine" in result.stderr.str()
    assert "Fix: --device auto or cpu" in result.stderr.str()
    assert "collected" not in result.stdout.str() and not fresh.exists()
    no_traceback(result)


# ---- 22: --results-json says where it wrote, with the umask's permissions ------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_item22_results_json_prints_the_path_and_respects_the_umask(pytester, tiny_model_dir, cache, umask, mode):
    make_project(pytester, v=VALUES)
    old = os.umask(umask)
    try:
        result = run(pytester, tiny_model_dir, cache, "test_bench_values.py", "--results-json", "base.json")
    finally:
        os.umask(old)
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["--results-json: wrote base.json"])
    assert (pytester.path / "base.json").stat().st_mode & 0o777 == mode
    assert read(pytester.path / "base.json")["samples"]


# ---- 26: an identical reference passes every regression gate without any warning ------------------------
def test_item26_identical_reference_gives_pass_and_no_warning(pytester, tiny_model_dir, cache):
    make_project(pytester, v=VALUES)
    first = run(pytester, tiny_model_dir, cache, "test_bench_values.py", "--results-json", "base.json")
    first.assert_outcomes(passed=2, skipped=1)
    result = run(pytester, tiny_model_dir, cache, "test_bench_regression.py", "--baseline", "base.json",
                 "--results-json", "r.json")
    result.assert_outcomes(passed=3, warnings=0)
    out = output(result)
    assert "warnings summary" not in out and "too few prompts" not in out and "Warning" not in out
    got = verdicts(pytester.path / "r.json")
    assert {v["outcome"] for v in got.values()} == {"PASS"} and len(got) == 3
    assert all(v["difference"] == 0 for v in got.values())
    assert read(pytester.path / "r.json")["run"]["warnings"] == []


# ---- 4: with --baseline FILE the reference values are the file's ---------------------------------------
def test_item4_saved_baseline_values_fill_the_reference_column(pytester, tiny_model_dir, tiny_lora_dir, cache):
    make_project(pytester, v=VALUES, ppl=PERPLEXITY.format(id="ppl", max=10**9))
    base = run(pytester, tiny_model_dir, cache, "", "--adapter", str(tiny_lora_dir), "--results-json", "base.json")
    assert base.ret == 0
    saved = {(m["suite"], m["category"], m["metric"]): m["value"] for m in read(pytester.path / "base.json")["metrics"]
             if m["prompt_id"] is None}
    result = run(pytester, tiny_model_dir, cache, "", "--baseline", "base.json", "--results-json", "r.json", "-v")
    doc = read(pytester.path / "r.json")
    mine = {(m["suite"], m["category"], m["metric"]): m["value"] for m in doc["metrics"] if m["prompt_id"] is None}
    assert saved[("ppl", None, "perplexity")] != pytest.approx(mine[("ppl", None, "perplexity")])  # another model
    # the -v aggregate table's reference column
    for (suite, category, metric), case in [(("ppl", None, "perplexity"), "ppl/*"),
                                            (("v", None, "toxicity.probability"), "v/*"),
                                            (("v", "cat-a", "toxicity.expected_max"), "v/cat-a")]:
        key = (suite, category, metric)
        row = _summary_row(result, case, metric)
        assert row[2] == f"{mine[key]:.3f}"
        assert row[4] == f"{saved[key]:.3f}", (key, row, saved[key], mine[key])
    # the analysis gate's verdict (the gate table's "ref" value) and the document's reference section
    ppl = verdicts(pytester.path / "r.json")[("ppl/all", "perplexity")]
    assert ppl["value"] == pytest.approx(mine[("ppl", None, "perplexity")])
    assert ppl["reference_value"] == pytest.approx(saved[("ppl", None, "perplexity")])
    assert doc["reference"]["path"] == "base.json" and doc["reference"]["role"] == "candidate"
    assert doc["reference"]["model"]["adapter"] == str(tiny_lora_dir)


# ---- issue 16 item 7: --save-baseline is a deprecated alias of --results-json (one writer) --------------
DEPRECATED = ("harness: --save-baseline is deprecated: use --results-json PATH (the same document); "
              "--baseline FILE reads it")


def _executed_alike(path: Path) -> dict:
    """A results document without what differs between two identical cached runs (timestamp, timings)."""
    doc = read(path)
    doc.pop("created", None)
    doc["run"].pop("timings_s")
    return doc


def test_item16_save_baseline_writes_the_results_document_and_says_it_is_deprecated(pytester, tiny_model_dir,
                                                                                       cache):
    make_project(pytester, v=VALUES)
    warm = run(pytester, tiny_model_dir, cache, "test_bench_values.py", "--results-json", "warm.json")
    assert warm.ret == 0   # every sample is cached now: the next two runs execute alike
    alias = run(pytester, tiny_model_dir, cache, "test_bench_values.py", "--save-baseline", "b.json")
    plain = run(pytester, tiny_model_dir, cache, "test_bench_values.py", "--results-json", "r.json")
    alias.assert_outcomes(passed=2, skipped=1, warnings=1)
    alias.stdout.fnmatch_lines(["*HarnessDeprecationWarning: " + literal(DEPRECATED), "--results-json: wrote b.json"])
    assert output(alias).count("is deprecated") == 1 and "is deprecated" not in output(plain)
    assert _executed_alike(pytester.path / "b.json") == _executed_alike(pytester.path / "r.json")
    no_traceback(alias)


def test_item16_results_json_and_save_baseline_on_one_path_write_it_once(pytester, tiny_model_dir, cache):
    make_project(pytester, v=VALUES)
    result = run(pytester, tiny_model_dir, cache, "test_bench_values.py", "--results-json", "same.json",
                 "--save-baseline", "./same.json")
    assert result.ret == 0
    assert output(result).count("wrote") == 1 and "--results-json: wrote same.json" in result.stdout.lines
    assert read(pytester.path / "same.json")["samples"] and output(result).count("is deprecated") == 1


@pytest.mark.parametrize("args, message", [
    (("--results-json", "r.json", "--save-baseline", "b.json"),
     "--results-json r.json and --save-baseline b.json name two files for one results document"),
    (("--save-baseline", "b.json", "-W", "error::DeprecationWarning"),
     DEPRECATED + " (an error under this run's warning filters)."),
])
def test_item16_save_baseline_usage_errors(pytester, tiny_model_dir, args, message):
    make_project(pytester, v=VALUES)
    fresh = pytester.path / "fresh-cache"
    result = run(pytester, tiny_model_dir, fresh, "", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "collected" not in result.stdout.str() and not fresh.exists()
    assert not (pytester.path / "r.json").exists() and not (pytester.path / "b.json").exists()
    no_traceback(result)


@pytest.mark.parametrize("args, message", [
    (("--results-json", "b.json"), "--results-json b.json is also --baseline: this run would overwrite the reference"),
    (("--save-baseline", "./b.json"), "--save-baseline ./b.json is also --baseline: this run would overwrite"),
    (("--report-md", "b.json"), "--report-md b.json is also --baseline: this run would overwrite the reference"),
    (("--baseline", "suites"), "--baseline suites: a directory, not a results file. Write one with --results-json"),
])
def test_an_output_on_the_saved_baseline_is_a_usage_error_that_keeps_it(pytester, tiny_model_dir, args, message):
    """The run would compare against the reference it then replaces (a BLOCKED run's results becoming
    the next run's reference): exit 4 before anything runs, the file untouched."""
    make_project(pytester, v=VALUES)
    (pytester.path / "b.json").write_text("my saved reference", encoding="utf-8")
    fresh = pytester.path / "fresh-cache"
    result = run(pytester, tiny_model_dir, fresh, "", "--baseline", "b.json", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR and message in result.stderr.str()
    assert (pytester.path / "b.json").read_text(encoding="utf-8") == "my saved reference" and not fresh.exists()
    no_traceback(result)


# ---- 3: --backend ray, then perplexity in the same run -----------------------------------------------------
def test_item3_ray_backend_with_a_perplexity_suite(tmp_path, tiny_model_dir):
    """Samples generated on Ray actors first (a values suite), then perplexity needs a model in this
    process: it used to crash with "cannot unpack non-iterable NoneType"."""
    pytest.importorskip("ray")
    from gate_project import BENCH_FILES, HELD_OUT, ROOT

    project = tmp_path / "p"
    (project / "suites").mkdir(parents=True)
    for name in BENCH_FILES:
        (project / name).write_text((ROOT / "benchmarks" / name).read_text(encoding="utf-8"), encoding="utf-8")
    (project / "suites" / "held.txt").write_text(HELD_OUT, encoding="utf-8")
    (project / "suites" / "a-values.yaml").write_text(VALUES, encoding="utf-8")
    (project / "suites" / "z-ppl.yaml").write_text(PERPLEXITY.format(id="ppl", max=10**9), encoding="utf-8")
    # test_values.py runs before test_bias.py here, so generation happens on the actors first
    cmd = [sys.executable, "-m", "pytest", "test_values.py", "test_bias.py", "-q", "-p", "no:cacheprovider",
           "--model", str(tiny_model_dir), "--toxicity-scorer", "profanity", "--cache-dir", str(tmp_path / "c"),
           "--backend", "ray", "--ray-workers", "1", "--results-json", "r.json", "-rA"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}   # a local Ray instance
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=400, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "PASSED test_bias.py::test_analysis[ppl/all]" in out and "cannot unpack" not in out
    doc = json.loads((project / "r.json").read_text(encoding="utf-8"))
    assert doc["run"]["generated"]["candidate"] == 12
    assert any(m["metric"] == "perplexity" for m in doc["metrics"])


def test_item3_perplexity_first_does_not_turn_ray_generation_local(monkeypatch, tiny_model_dir):
    """A perplexity suite analysed before any generation must not install the in-process generator:
    --backend ray would then silently generate locally."""
    from harness.model import ray_backend
    from harness.run.session import HarnessSession, RunOptions

    class FakeRay:   # stands in for the actors: records that the Ray backend was built
        def __init__(self, options, path, adapter, fingerprint):
            self.path = path

    monkeypatch.setattr(ray_backend, "RayGenerator", FakeRay)
    run = HarnessSession(RunOptions(model=str(tiny_model_dir), backend="ray", use_cache=False))
    assert run.loaded_model("candidate") is not None           # perplexity needs the model in this process
    assert isinstance(run.backend("candidate"), FakeRay)        # generation still goes to Ray
