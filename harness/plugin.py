"""pytest wiring: hooks and fixtures (the options live in harness/options.py). Domain logic lives in
the stage folders.

Activation: this plugin is not registered in every pytest run of an environment. A benchmarks
folder activates it with ``pytest_plugins = ["harness.plugin"]`` in its ``conftest.py`` (what
``benchmarks/conftest.py`` and ``harness init`` do), or a run passes ``-p harness.plugin``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import pytest

from harness.checker import CaseChecker, HarnessPowerWarning  # noqa: F401  (re-exported)
from harness.errors import HarnessError
from harness.options import add_options, run_options
from harness.run.session import HarnessSession
from harness.stash import OUTPUTS_KEY, REQUESTED_KEY, SESSION_KEY, SUITES_KEY, RunOutputs


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "harness: a behaviour-gate case generated from a suite YAML file")
    if config.option.help:
        return
    options = run_options(config)
    from harness import kinds

    try:   # a kind module listed in pytest_plugins registered a taken name
        kinds.check_registry()
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    o = config.option
    scorer = options.toxicity_scorer
    capman = config.pluginmanager.getplugin("capturemanager")
    workerinput = getattr(config, "workerinput", None)
    try:
        hs = HarnessSession(
            options,
            # a pytest-xdist worker: generate its share, read the rest from the cache
            shard=(int(workerinput["workerid"].lstrip("gw") or 0), int(workerinput["workercount"]))
            if workerinput is not None else None,
            # progress bars reach the terminal even while test output is captured
            progress_context=capman.global_and_fixture_disabled if capman is not None else contextlib.nullcontext)
        # new scorers and the labelled file fail here, before any generation
        from harness.measure.scoring import check_scorer_options

        check_scorer_options(scorer, o.score_batch_size, o.scorer_precision)
        if o.scorer_label or scorer.startswith(("hf:", "perspective")):
            hs.scorer_handle()
        if o.scorer_check:
            from harness.scorer_check import read_labelled

            read_labelled(o.scorer_check)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = hs
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(hs), "harness-xdist")
    config.stash[SUITES_KEY] = {}
    config.stash[REQUESTED_KEY] = {}
    config.stash[OUTPUTS_KEY] = RunOutputs()
    if config.pluginmanager.hasplugin("html") and importlib.util.find_spec("harness.html_plugin"):
        from harness import html_plugin

        config.pluginmanager.register(html_plugin, "harness-html")


def _session(config: pytest.Config) -> HarnessSession:
    return config.stash[SESSION_KEY]


def _suites_for(config: pytest.Config, module_path: Path) -> list[Any]:
    """The selected suites (--suite, else the suites/ folder next to the test module), prepared by their kinds."""
    from harness import kinds
    from harness.suites.specs import discover_suites

    paths = config.option.suite or [str(module_path.parent / "suites")]
    key = tuple(paths)
    cache = config.stash[SUITES_KEY]
    if key not in cache:
        try:
            cache[key] = [kinds.prepare(s, _session(config).options) for s in discover_suites(paths)]
        except HarnessError as exc:
            cache[key] = exc
    if isinstance(cache[key], HarnessError):
        pytest.fail(f"harness: {cache[key]}", pytrace=False)
    return cache[key]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each case fixture the test requests gets the cases of every selected suite whose kind provides
    it, or one skipped placeholder saying why there are none."""
    from harness import kinds

    wanted = [name for name in kinds.fixtures() if name in metafunc.fixturenames]
    if not wanted or SESSION_KEY not in metafunc.config.stash:
        return
    suites = _suites_for(metafunc.config, metafunc.definition.path)
    hs = _session(metafunc.config)
    config = metafunc.config
    selection = kinds.Selection(hs.options, hs.has_reference(), config.option.keyword, tuple(map(str, config.args)))
    for name in wanted:
        try:
            cases, skip = kinds.collect(name, suites, selection)
        except HarnessError as exc:
            pytest.fail(f"harness: {exc}", pytrace=False)
        if cases:
            metafunc.parametrize(name, [pytest.param(c, id=c.case_id) for c in cases])
        else:
            metafunc.parametrize(name, [pytest.param(None, marks=pytest.mark.skip(reason=skip.reason), id=skip.id)])
    requested = config.stash[REQUESTED_KEY]
    for s in suites:
        hs.suites.setdefault(s.id, s)
        requested.setdefault(s.id, set()).update(wanted)


class HarnessCoverageWarning(UserWarning):
    """A selected suite has gates but no test requests a case fixture of its kind: nothing judges it."""


def _warn_unjudged(config: pytest.Config) -> None:
    """Warn about suites of the selected folders whose kind's cases no test function asks for."""
    from harness import kinds

    requested = config.stash[REQUESTED_KEY]
    seen = {s.id: s for found in config.stash[SUITES_KEY].values() if isinstance(found, list) for s in found}
    for sid, suite in sorted(seen.items()):
        kind = kinds.find(suite.kind)
        if kind is None or not suite.gates or set(kind.fixtures) & requested.get(sid, set()):
            continue
        wanted = " or ".join(kind.fixtures)
        warnings.warn(HarnessCoverageWarning(
            f"harness: suite {sid} ({suite.path}, kind {suite.kind}) has gates, but no test requests {wanted}, so "
            f"nothing checks them. Fix: add a test such as `def test_{kind.fixtures[0].removesuffix('_case')}"
            f"({kind.fixtures[0]}, harness): harness.check({kind.fixtures[0]})` (the shipped benchmarks/test_*.py "
            "have one per kind), or move the suite out of the folder."), stacklevel=1)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Plan every selected case so generation runs in a few large batches."""
    if SESSION_KEY not in session.config.stash:
        return
    from harness import kinds

    hs = _session(session.config)
    _warn_unjudged(session.config)
    names = kinds.fixtures()
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        for name in names:
            if params.get(name) is not None:   # None: a skipped placeholder
                try:
                    kinds.plan(hs, params[name])
                except HarnessError:
                    pass  # planning only batches generation: the case itself reports the error (exit 4)


@pytest.fixture
def harness(request: pytest.FixtureRequest) -> CaseChecker:
    """Check a suite case: ``harness.check(any_case)`` (or ``harness.check_prompt(prompt_case)``, ...)."""
    return CaseChecker(_session(request.config), request.node)


def _junit_run_properties(config: pytest.Config, doc: dict[str, Any]) -> None:
    """Run-level JUnit <properties> (model, fingerprint, scorer, k, seed, versions, verdict) on the
    testsuite element, when the junitxml plugin is writing a report."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    from harness.measure.results import package_versions
    from harness.gate.verdict import run_verdict

    c = doc["config"]
    props: list[tuple[str, Any]] = []
    for role, m in c["models"].items():
        props += [(f"harness.{role}.model", m.get("path")), (f"harness.{role}.fingerprint", m.get("fingerprint"))]
        if m.get("adapter"):
            props.append((f"harness.{role}.adapter", m["adapter"]))
    if c.get("scorer"):
        props += [("harness.scorer", c["scorer"]["name"]), ("harness.scorer_fallback", c["scorer"]["fallback"])]
    props.append(("harness.seed", c["seed"]))
    props += [(f"harness.{sid}.k", info["decoding"]["samples"]) for sid, info in c["suites"].items()]
    props += [(f"harness.version.{name}", v) for name, v in package_versions().items()]
    props.append(("harness.verdict", run_verdict(doc.get("verdicts", []))["line"]))
    for name, value in props:
        xml.add_global_property(name, value)


@pytest.fixture(scope="session")
def harness_session(request: pytest.FixtureRequest) -> HarnessSession:
    """The run's :class:`HarnessSession` (models, scorer, cache, samples) for custom tests."""
    return _session(request.config)


class _XdistHooks:
    """Under pytest-xdist the controller collects each worker's document and merges them."""

    def __init__(self, hs: HarnessSession) -> None:
        self.hs = hs
        self.worker_docs: list[dict[str, Any]] = []
        self.stopped: str | None = None   # a worker's input error that stopped it

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        import json

        output = getattr(node, "workeroutput", {})
        if output.get("harness"):
            self.worker_docs.append(json.loads(output["harness"]))
        self.stopped = self.stopped or output.get("harness_stopped")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if SESSION_KEY not in config.stash:
        return
    hs = _session(config)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # xdist worker: hand the document to the controller
        import json

        if hs.has_results():
            workeroutput["harness"] = json.dumps(hs.document())
        workeroutput["harness_stopped"] = config.stash[OUTPUTS_KEY].stopped
        hs.close()
        return
    xdist_hooks = config.pluginmanager.get_plugin("harness-xdist")
    doc = hs.final_document(xdist_hooks.worker_docs if xdist_hooks is not None else ())
    if doc is None:
        hs.close()
        return
    outputs = config.stash[OUTPUTS_KEY]
    outputs.document = doc
    if xdist_hooks is not None and xdist_hooks.stopped:   # a worker stopped on an input error: exit 4
        outputs.stopped = xdist_hooks.stopped
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
    _junit_run_properties(config, doc)
    o = config.option
    written, failed = [], []
    from harness.measure.results import write_results

    if o.scorer_check:
        from harness.scorer_check import record_agreement

        record_agreement(hs, doc, o.scorer_check)
    if o.results_json:   # --save-baseline was folded into it at configure time
        try:
            write_results(o.results_json, doc)
            written.append(f"--results-json: wrote {o.results_json}")
        except (OSError, HarnessError) as exc:
            failed.append(f"--results-json {o.results_json}: could not write ({exc}); nothing else was lost")
    if o.results_csv:
        from harness.report.tables import write_csv

        try:
            write_csv(doc, o.results_csv)
            written.append(f"--results-csv: wrote {o.results_csv}")
        except (OSError, HarnessError) as exc:
            failed.append(f"--results-csv {o.results_csv}: could not write ({exc})")
    if o.report_md:
        from harness.report import as_saved, write_markdown

        try:
            write_markdown(o.report_md, as_saved(doc))
            written.append(f"--report-md: wrote {o.report_md}")
        except (OSError, HarnessError) as exc:
            failed.append(f"--report-md {o.report_md}: could not write ({exc})")
    outputs.written, outputs.failed = written, failed
    if failed:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
    hs.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if SESSION_KEY not in config.stash:
        return
    outputs = config.stash[OUTPUTS_KEY]
    doc = outputs.document
    if doc is None:
        return
    tr = terminalreporter
    tr.section("harness summary")
    from harness.report.model import run_warnings
    from harness.report.summary import closing_lines, plain, robustness_lines, summary_lines

    if config.get_verbosity() >= 0:  # -q: only the verdict, the blocking gates and errors
        for line in summary_lines(doc, verbose=config.get_verbosity() > 0):
            tr.write_line(line, yellow=line.startswith("WARNING"), bold=line.startswith("WARNING"))
        for line in robustness_lines(doc):
            tr.write_line(line)
        for w in run_warnings(doc):
            tr.write_line(f"WARNING: {plain(w)}", yellow=True, bold=True)
        for line in outputs.written:
            tr.write_line(line)
    for line in outputs.failed:
        tr.write_line(f"ERROR: {line}", red=True, bold=True)
    status = int(pytest.ExitCode.INTERNAL_ERROR) if outputs.failed else \
        int(pytest.ExitCode.USAGE_ERROR) if outputs.stopped else int(exitstatus)
    lines = closing_lines(doc, exitstatus=status, stopped=outputs.stopped)
    for i, line in enumerate(lines):
        verdict, exiting = i == 0, line.startswith("harness: exit")
        tr.write_line(line, red=exiting or (verdict and ("BLOCKED" in line or "STOPPED" in line)),
                      green=verdict and "PASSED" in line,
                      bold=verdict or exiting)
