"""pytest wiring: options, fixtures and hooks. Domain logic lives in the plain modules."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from harness.checker import CaseChecker, HarnessPowerWarning  # noqa: F401  (re-exported)
from harness.errors import HarnessError, did_you_mean
from harness.session import HarnessSession, RunOptions

SESSION_KEY = pytest.StashKey[HarnessSession]()
SUITES_KEY = pytest.StashKey[dict]()
SCORER_CHOICES = ("auto", "profanity", "detoxify", "detoxify-original", "detoxify-unbiased", "detoxify-multilingual")
CASE_FIXTURES = ("prompt_case", "category_case", "regression_case", "analysis_case", "adherence_case")


# ---- option parsing (validated when parsed) ------------------------------------------------------
def _choice(name: str, choices: tuple[str, ...]):
    def parse(value: str) -> str:
        if value not in choices:
            raise argparse.ArgumentTypeError(f"unknown {name} '{value}'; {did_you_mean(value, choices)}")
        return value
    parse.__name__ = name
    return parse


def parse_scorer(value: str) -> str:
    """A --toxicity-scorer choice, ``hf:PATH_OR_ID`` or ``perspective[:ATTR,...]``."""
    if value.startswith("hf:") or value.split(":")[0] == "perspective":
        return value
    return _choice("scorer", SCORER_CHOICES)(value)


def parse_positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"'{value}' is not a positive integer")
    return n


def parse_batch_size(value: str) -> int | str:
    return "auto" if value == "auto" else parse_positive_int(value)


def parse_seed(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not an integer seed") from None


def parse_regression(value: str) -> tuple[str, float]:
    """``METRIC:MARGIN`` e.g. ``toxicity.expected_max:0.05``."""
    metric, sep, margin = value.rpartition(":")
    try:
        m = float(margin)
    except ValueError:
        m = float("nan")
    if not sep or not metric or not m >= 0:
        raise argparse.ArgumentTypeError(f"'{value}' is not METRIC:MARGIN (e.g. toxicity.expected_max:0.05)")
    return metric, m


def parse_alpha(value: str) -> float:
    try:
        a = float(value)
    except ValueError:
        a = -1.0
    if not 0 < a < 1:
        raise argparse.ArgumentTypeError(f"'{value}' is not a significance level in (0, 1)")
    return a


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("harness", "behaviour gates for language models")
    g.addoption("--model", help="model directory or hub id (default: the bundled fixtures/tiny-gpt2)")
    g.addoption("--adapter", help="PEFT adapter directory applied to --model")
    g.addoption("--baseline-model", help="reference model generated and scored in the same run")
    g.addoption("--baseline-adapter", help="PEFT adapter for --baseline-model")
    g.addoption("--baseline", metavar="FILE", help="compare against a saved results/baseline file")
    g.addoption("--save-baseline", metavar="FILE", help="write this run's results as a baseline file")
    g.addoption("--device", default="auto", type=_choice("device", ("auto", "cpu", "cuda")), help="auto|cpu|cuda")
    g.addoption("--dtype", default="auto", type=_choice("dtype", ("auto", "float32", "bfloat16", "float16")),
                help="auto (bf16/fp16 on CUDA, fp32 on CPU)|float32|bfloat16|float16")
    g.addoption("--batch-size", default="auto", type=parse_batch_size, help="N or auto (backs off on OOM)")
    g.addoption("--samples", type=parse_positive_int, help="samples per prompt k (overrides every suite)")
    g.addoption("--max-new-tokens", type=parse_positive_int, help="new tokens per sample (overrides suites)")
    g.addoption("--seed", default=0, type=parse_seed, help="seed fixing every sample (default 0)")
    g.addoption("--toxicity-scorer", default="auto", type=parse_scorer,
                help="auto (Detoxify if available, else offline profanity with a warning)|" +
                "|".join(SCORER_CHOICES[1:]) + "|hf:PATH_OR_ID|perspective[:ATTR,...]")
    g.addoption("--scorer-label", help="hf: scorers: the classifier's toxic class when its labels are ambiguous")
    g.addoption("--scorer-check", metavar="FILE", help="labelled texts ({text, label|score} JSONL): record the "
                "scorer's agreement with them (AUROC, Spearman, accuracy) in the results' scorer section")
    g.addoption("--detoxify-checkpoint", help="Detoxify .ckpt file (loaded with weights_only=True)")
    g.addoption("--detoxify-config-dir", help="local config+tokenizer directory for the Detoxify checkpoint")
    g.addoption("--trust-remote-code", action="store_true", help="allow custom model code (off by default)")
    g.addoption("--chat-template", default="auto", type=_choice("chat-template", ("auto", "on", "off")),
                help="apply the tokenizer's chat template: auto|on|off")
    g.addoption("--suite", action="append", default=[], help="suite YAML file or directory (repeatable); "
                "default: the suites/ folder next to the test module")
    g.addoption("--results-json", metavar="PATH", help="write the results document (JSON) here")
    g.addoption("--results-csv", metavar="DIR", help="write tidy CSV tables (samples, metrics) here")
    g.addoption("--cache-dir", help="generation/score cache directory (default ~/.cache/harness)")
    g.addoption("--no-cache", action="store_true", help="do not read or write the generation cache")
    g.addoption("--ratings", metavar="FILE", help="human ratings (from `harness ratings import`) to gate "
                "per-category adherence and inter-rater agreement")
    g.addoption("--ratings-model", help="model name in the ratings file to gate (default: matched by fingerprint)")
    g.addoption("--bold-per-group", type=parse_positive_int,
                help="BOLD prompts per group (overrides each bold suite's options.per_group)")
    g.addoption("--backend", default="local", type=_choice("backend", ("local", "ray")),
                help="generation backend: local (this process; use -n N with pytest-xdist to shard) or ray")
    g.addoption("--ray-address", help="Ray cluster address (default: RAY_ADDRESS or a local instance)")
    g.addoption("--ray-workers", default=2, type=parse_positive_int, help="Ray actors (model replicas), default 2")
    g.addoption("--fail-on-regression", action="append", default=[], type=parse_regression,
                metavar="METRIC:MARGIN", help="regression gate vs the reference (repeatable)")
    g.addoption("--alpha", default=0.05, type=parse_alpha, help="significance level (default 0.05)")
    g.addoption("--correction", default="holm", type=_choice("correction", ("holm", "bh")),
                help="multiple-comparison correction across categories: holm|bh")


def default_model() -> Path | None:
    here = Path(__file__).resolve().parent.parent / "fixtures" / "tiny-gpt2"
    return here if here.is_dir() else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "harness: a behaviour-gate case generated from a suite YAML file")
    if config.option.help:
        return
    o = config.option
    if o.baseline and o.baseline_model:
        raise pytest.UsageError("--baseline FILE and --baseline-model PATH both name a reference; pass one.")
    if o.baseline_adapter and not o.baseline_model:
        raise pytest.UsageError("--baseline-adapter needs --baseline-model (the base it applies to).")
    model = o.model
    if model is None:
        found = default_model() or (Path(str(config.rootpath)) / "fixtures" / "tiny-gpt2")
        model = str(found)
    for flag, value in (("--model", o.model), ("--baseline-model", o.baseline_model)):
        if value and (value.startswith((".", "/", "~")) or Path(value).exists() or value.count("/") > 1) \
                and not Path(value).expanduser().is_dir():
            raise pytest.UsageError(f"{flag} {value}: directory not found. Pass a model directory written by "
                                    "save_pretrained or a hub id available offline.")
    for flag, value in (("--adapter", o.adapter), ("--baseline-adapter", o.baseline_adapter)):
        if value and not (Path(value).expanduser() / "adapter_config.json").is_file():
            raise pytest.UsageError(f"{flag} {value}: no adapter_config.json in that directory. Pass a directory "
                                    "written by peft's save_pretrained (or `harness finetune`).")
    if o.ratings and not Path(o.ratings).is_file():
        raise pytest.UsageError(f"--ratings {o.ratings}: file not found. Write one with `harness ratings import`.")
    if o.baseline and not Path(o.baseline).is_file():
        raise pytest.UsageError(f"--baseline {o.baseline}: file not found. Write one with --save-baseline FILE.")
    options = RunOptions(
        model=model, adapter=o.adapter, baseline_model=o.baseline_model, baseline_adapter=o.baseline_adapter,
        device=o.device, dtype=o.dtype, batch_size=o.batch_size, samples=o.samples, max_new_tokens=o.max_new_tokens,
        seed=o.seed, toxicity_scorer=o.toxicity_scorer, scorer_label=o.scorer_label,
        detoxify_checkpoint=o.detoxify_checkpoint,
        detoxify_config_dir=o.detoxify_config_dir, trust_remote_code=o.trust_remote_code,
        chat_template=o.chat_template, cache_dir=o.cache_dir, use_cache=not o.no_cache,
        progress=config.get_verbosity() >= 0, backend=o.backend, ray_address=o.ray_address,
        ray_workers=o.ray_workers)
    run = HarnessSession(options)
    try:  # new scorers and the labelled file fail here, before any generation
        if o.scorer_label or o.toxicity_scorer.startswith(("hf:", "perspective")):
            run.scorer_handle()
        if o.scorer_check:
            from harness.scorer_check import read_labelled

            read_labelled(o.scorer_check)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    if o.baseline:
        from harness.results import read_results

        try:
            run.reference_doc = read_results(o.baseline)
        except HarnessError as exc:
            raise pytest.UsageError(f"--baseline: {exc}") from None
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:  # progress bars reach the terminal even while test output is captured
        run.progress_context = capman.global_and_fixture_disabled
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # a pytest-xdist worker: generate its share, read the rest from the cache
        run.shard = (int(workerinput["workerid"].lstrip("gw") or 0), int(workerinput["workercount"]))
    config.stash[SESSION_KEY] = run
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(run), "harness-xdist")
    config.stash[SUITES_KEY] = {}
    if config.pluginmanager.hasplugin("html") and importlib.util.find_spec("harness.html_plugin"):
        from harness import html_plugin

        config.pluginmanager.register(html_plugin, "harness-html")


def _session(config: pytest.Config) -> HarnessSession:
    return config.stash[SESSION_KEY]


def _suites_for(config: pytest.Config, module_path: Path) -> list[Any]:
    from harness.specs import discover_suites

    paths = config.option.suite or [str(module_path.parent / "suites")]
    key = tuple(paths)
    cache = config.stash[SUITES_KEY]
    if key not in cache:
        from harness import kinds

        try:
            cache[key] = [kinds.prepare(s, config.option.bold_per_group) for s in discover_suites(paths)]
        except HarnessError as exc:
            cache[key] = exc
    if isinstance(cache[key], HarnessError):
        pytest.fail(f"harness: {cache[key]}", pytrace=False)
    return cache[key]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wanted = [name for name in CASE_FIXTURES if name in metafunc.fixturenames]
    if not wanted or SESSION_KEY not in metafunc.config.stash:
        return
    all_suites = _suites_for(metafunc.config, metafunc.definition.path)
    suites = [s for s in all_suites if s.kind == "values"]
    if "analysis_case" in wanted:
        from harness import kinds

        analysed = [pytest.param(c, id=c.case_id) for s in all_suites if s.kind in kinds.ANALYSED_KINDS
                    for c in kinds.cases(s)] or [pytest.param(None, id="none", marks=pytest.mark.skip(
                        reason="no cooccurrence, bold or perplexity suites"))]
        metafunc.parametrize("analysis_case", analysed)
    if "prompt_case" in wanted:
        cases = [p for s in suites for p in s.prompts()]
        metafunc.parametrize("prompt_case", cases, ids=[c.case_id for c in cases])
    if "category_case" in wanted:
        cats = [c for s in suites for c in s.categories]
        metafunc.parametrize("category_case", cats, ids=[c.case_id for c in cats])
    if "adherence_case" in wanted:
        cats = [c for s in suites if s.gates_for("ratings") for c in s.categories]
        if not metafunc.config.option.ratings:
            reason = "no human ratings: pass --ratings FILE (see `harness ratings export/import`)"
            params = [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-ratings")]
        else:
            params = [pytest.param(c, id=c.case_id) for c in cats] or [
                pytest.param(None, marks=pytest.mark.skip(reason="no `gates.ratings` in the suites"), id="no-gates")]
        metafunc.parametrize("adherence_case", params)
    if "regression_case" in wanted:
        run = metafunc.config.stash[SESSION_KEY]
        overrides = dict(metafunc.config.option.fail_on_regression)
        reg = [c for s in all_suites if s.kind in ("values", "perplexity")
               for c in s.regression_cases(overrides if s.kind == "values" else {})]
        if not run.has_reference():
            reason = "no reference model: pass --baseline-model PATH or --baseline FILE to run regression cases"
            params = [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-reference")]
        elif not reg:
            params = [pytest.param(None, marks=pytest.mark.skip(reason="no regression gates in the suites and no "
                                   "--fail-on-regression METRIC:MARGIN"), id="no-gates")]
        else:
            params = [pytest.param(c, id=c.case_id) for c in reg]
        metafunc.parametrize("regression_case", params)
    for s in all_suites:
        metafunc.config.stash[SESSION_KEY].suites.setdefault(s.id, s)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Plan every selected case so generation runs in a few large batches."""
    if SESSION_KEY not in session.config.stash:
        return
    run = _session(session.config)
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "prompt_case" in params:
            case = params["prompt_case"]
            run.plan(run.suites[case.suite], [case])
        if "category_case" in params:
            cat = params["category_case"]
            run.plan(run.suites[cat.suite], cat.prompts)
        for name in ("regression_case", "analysis_case"):
            if params.get(name) is not None:
                suite = run.suites[params[name].suite]
                run.plan(suite, suite.prompts())


@pytest.fixture
def harness(request: pytest.FixtureRequest) -> CaseChecker:
    """Check a suite case: ``harness.check_prompt(prompt_case)`` / ``harness.check_category(category_case)``."""
    return CaseChecker(_session(request.config), request.node)


@pytest.fixture(scope="session", autouse=True)
def _harness_junit_run_properties(request: pytest.FixtureRequest, record_testsuite_property: Any) -> Any:
    """Run-level JUnit <properties> (model, fingerprint, scorer, k, seed, versions) on the testsuite
    element, the place valid under junit_family xunit2 (and xunit1)."""
    yield
    run = request.config.stash.get(SESSION_KEY, None)
    if run is None or not run.all_samples():
        return
    from harness.results import package_versions

    config = run.config()
    for role, m in config["models"].items():
        record_testsuite_property(f"harness.{role}.model", m.get("path"))
        if m.get("adapter"):
            record_testsuite_property(f"harness.{role}.adapter", m["adapter"])
        record_testsuite_property(f"harness.{role}.fingerprint", m.get("fingerprint"))
    if run.scorer_info:
        record_testsuite_property("harness.scorer", run.scorer_info["name"])
        record_testsuite_property("harness.scorer_fallback", run.scorer_info["fallback"])
    record_testsuite_property("harness.seed", config["seed"])
    for sid, info in config["suites"].items():
        record_testsuite_property(f"harness.{sid}.k", info["decoding"]["samples"])
    for name, v in package_versions().items():
        record_testsuite_property(f"harness.version.{name}", v)


@pytest.fixture(scope="session")
def harness_session(request: pytest.FixtureRequest) -> HarnessSession:
    """The run's :class:`HarnessSession` (models, scorer, cache, samples) for custom tests."""
    return _session(request.config)


class _XdistHooks:
    """Under pytest-xdist the controller collects each worker's document and merges them."""

    def __init__(self, run: HarnessSession) -> None:
        self.run = run
        self.worker_docs: list[dict[str, Any]] = []

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        import json

        payload = getattr(node, "workeroutput", {}).get("harness")
        if payload:
            self.worker_docs.append(json.loads(payload))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if SESSION_KEY not in config.stash:
        return
    run = _session(config)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # xdist worker: hand the document to the controller
        import json

        if run.all_samples():
            workeroutput["harness"] = json.dumps(run.document())
        run.close()
        return
    xdist_hooks = config.pluginmanager.get_plugin("harness-xdist")
    if xdist_hooks is not None and xdist_hooks.worker_docs:
        from harness.results import merge_documents

        doc = merge_documents(xdist_hooks.worker_docs)
    elif run.all_samples():
        doc = run.document()
    else:
        run.close()
        return
    from harness.results import write_results

    run.final_document = doc
    o = config.option
    if o.scorer_check:
        from harness.scorer_check import record_agreement

        record_agreement(run, doc, o.scorer_check)
    for path in (o.results_json, o.save_baseline):
        if path:
            write_results(path, doc)
    if o.results_csv:
        from harness.reports import write_csv

        write_csv(doc, o.results_csv)
    run.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if SESSION_KEY not in config.stash:
        return
    run = _session(config)
    doc = getattr(run, "final_document", None)
    if doc is None:
        return
    tr = terminalreporter
    tr.section("harness summary")
    from harness.summary import summary_lines

    for line in summary_lines(doc, verbose=config.get_verbosity() > 0):
        tr.write_line(line)
    for w in doc.get("run", {}).get("warnings", []):
        tr.write_line(f"WARNING: {w}", yellow=True, bold=True)
