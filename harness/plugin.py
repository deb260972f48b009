"""pytest wiring: options, fixtures and hooks. Domain logic lives in the plain modules.

Activation: this plugin is not registered in every pytest run of an environment. A benchmarks
folder activates it with ``pytest_plugins = ["harness.plugin"]`` in its ``conftest.py`` (what
``benchmarks/conftest.py`` and ``harness init`` do), or a run passes ``-p harness.plugin``.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from harness.checker import CaseChecker, HarnessPowerWarning  # noqa: F401  (re-exported)
from harness.gate.verdict import ON_INCONCLUSIVE
from harness.errors import HarnessError, did_you_mean
from harness.run.session import HarnessSession, RunOptions
from harness.stash import SESSION_KEY, SUITES_KEY

SCORER_CHOICES = ("auto", "profanity", "detoxify", "detoxify-original", "detoxify-unbiased", "detoxify-multilingual")


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
    from harness.gate.noninferiority import parse_metric_margin

    try:
        return parse_metric_margin(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_alpha(value: str) -> float:
    try:
        a = float(value)
    except ValueError:
        a = -1.0
    if not 0 < a < 1:
        raise argparse.ArgumentTypeError(f"'{value}' is not a significance level in (0, 1)")
    return a


def parse_perturb(value: str) -> tuple[str, ...]:
    """``NAME[,NAME]``, ``all`` or ``none`` (names are checked once plugins have registered theirs)."""
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"'{value}' names no perturbation (e.g. --perturb typos,upper or all)")
    return names


def _perturb_names(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """--perturb as names: None = the suites' own lists, () = none, all = every registered one."""
    if value is None:
        return None
    from harness.kinds import robustness
    from harness.suites import perturb

    names = () if value == ("none",) else tuple(perturb.names()) if value == ("all",) else value
    try:
        robustness.check_names(names)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    return names


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("harness", "behaviour gates for language models")
    g.addoption("--model", help="model directory or hub id (default: the bundled fixtures/tiny-gpt2)")
    g.addoption("--adapter", help="PEFT adapter directory applied to --model")
    g.addoption("--baseline-model", help="reference model generated and scored in the same run")
    g.addoption("--baseline-adapter", help="PEFT adapter for --baseline-model")
    g.addoption("--baseline", metavar="FILE", help="compare against a saved results file (--results-json)")
    g.addoption("--save-baseline", metavar="PATH", help="deprecated alias of --results-json (the same document)")
    g.addoption("--device", default="auto", type=_choice("device", ("auto", "cpu", "cuda")), help="auto|cpu|cuda")
    g.addoption("--dtype", default="auto", type=_choice("dtype", ("auto", "float32", "bfloat16", "float16")),
                help="auto (bf16/fp16 on CUDA, fp32 on CPU)|float32|bfloat16|float16")
    g.addoption("--batch-size", default="auto", type=parse_batch_size, help="N or auto (backs off on OOM)")
    g.addoption("--samples", type=parse_positive_int, help="samples per prompt k (overrides every suite)")
    g.addoption("--max-new-tokens", type=parse_positive_int, help="new tokens per sample (overrides suites)")
    g.addoption("--seed", default=0, type=parse_seed, help="seed fixing every sample (default 0)")
    g.addoption("--toxicity-scorer", type=parse_scorer,
                help="auto (Detoxify if available, else offline profanity with a warning)|" +
                "|".join(SCORER_CHOICES[1:]) + "|hf:PATH_OR_ID|perspective[:ATTR,...]")
    g.addoption("--scorer-label", help="hf: scorers: the classifier's toxic class when its labels are ambiguous")
    g.addoption("--scorer-check", metavar="FILE", help="labelled texts ({text, label|score} JSONL): record the "
                "scorer's agreement with them (AUROC, Spearman, accuracy) in the results' scorer section")
    g.addoption("--detoxify-checkpoint", help="Detoxify .ckpt file (loaded with weights_only=True)")
    g.addoption("--detoxify-config-dir", help="local config+tokenizer directory for the Detoxify checkpoint")
    g.addoption("--score-batch-size", default="auto", type=parse_batch_size,
                help="Detoxify scoring batch: N texts or auto (a padded-token budget; backs off on CUDA OOM)")
    g.addoption("--scorer-precision", default="fp32", type=_choice("scorer-precision", ("fp32", "bf16", "int8")),
                help="Detoxify precision: fp32 (default)|bf16|int8 (CPU); part of the scorer fingerprint, "
                "agreement with fp32 recorded in the results")
    g.addoption("--trust-remote-code", action="store_true", help="allow custom model code (off by default)")
    g.addoption("--chat-template", default="auto", type=_choice("chat-template", ("auto", "on", "off")),
                help="apply the tokenizer's chat template: auto|on|off")
    g.addoption("--suite", action="append", default=[], help="suite YAML file or directory (repeatable); "
                "default: the suites/ folder next to the test module")
    g.addoption("--results-json", metavar="PATH", help="write the results document (JSON) here; "
                "--baseline FILE reads it")
    g.addoption("--results-csv", metavar="DIR", help="write tidy CSV tables (samples, metrics) here")
    g.addoption("--report-md", metavar="PATH", help="write the Markdown report (verdict, gate table) here, "
                "e.g. \"$GITHUB_STEP_SUMMARY\"")
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
    g.addoption("--alpha", type=parse_alpha, help="significance level (default 0.05)")
    g.addoption("--correction", default="holm", type=_choice("correction", ("holm", "bh")),
                help="multiple-comparison correction within each family (suite level; categories): holm|bh")
    g.addoption("--on-inconclusive", type=_choice("on-inconclusive", ON_INCONCLUSIVE),
                help="what an INCONCLUSIVE regression/analysis/ratings gate does: fail|warn|pass (default: each "
                "gate's on_inconclusive, else ini harness_on_inconclusive, else warn)")
    g.addoption("--subset", type=parse_positive_int, metavar="N",
                help="values suites with more than N prompts run a seeded, stratified, nested subset of N")
    g.addoption("--perturb", type=parse_perturb, metavar="NAME[,NAME]",
                help="robustness cases for every values suite under these prompt perturbations (all = every "
                "registered one, none = no robustness cases); default: each suite's perturbations:, opt-in")
    for name, help_text in INI_OPTIONS.items():
        parser.addini(name, help_text, default=None)


INI_OPTIONS = {
    "harness_model": "default --model (path relative to the ini file's folder, or a hub id)",
    "harness_cache_dir": "default --cache-dir",
    "harness_alpha": "default --alpha",
    "harness_on_inconclusive": "default --on-inconclusive: fail|warn|pass",
    "harness_toxicity_scorer": "default --toxicity-scorer",
}


def _ini(config: pytest.Config, name: str, parse: Any = str) -> Any:
    raw = config.getini(name)
    if raw in (None, "", []):
        return None
    try:
        return parse(str(raw).strip())
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"ini option {name} = {raw!r} in {config.inipath}: {exc}") from None


def default_model() -> Path | None:
    here = Path(__file__).resolve().parent.parent / "fixtures" / "tiny-gpt2"
    return here if here.is_dir() else None


def _check_output_path(flag: str, value: str | None, directory: bool = False) -> None:
    """Fail at start-up, not after the whole run, when an output cannot be written."""
    if not value:
        return
    import os

    path = Path(value).expanduser()
    parent = path if directory else path.parent
    problem = None
    if not directory and path.is_dir():
        problem = "is a directory"
    elif directory and path.exists() and not path.is_dir():
        problem = "exists and is not a directory"
    else:
        probe = parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            problem = f"{probe} is not a directory"
        elif not os.access(probe, os.W_OK | os.X_OK):
            problem = f"{probe} is not writable"
    if problem:
        raise pytest.UsageError(f"{flag} {value}: cannot write there ({problem}). Fix: pass a writable "
                                f"{'directory' if directory else 'file path'}.")


class HarnessDeprecationWarning(DeprecationWarning):
    """A harness option that still works but will be removed; shown in pytest's warnings summary."""


SAVE_BASELINE_DEPRECATED = ("harness: --save-baseline is deprecated: use --results-json PATH (the same document); "
                            "--baseline FILE reads it")


def _fold_save_baseline(config: pytest.Config) -> str:
    """Fold the deprecated alias --save-baseline into --results-json (afterwards only ``results_json``
    holds the path); return the flag the user gave for it, for error messages."""
    o = config.option
    alias, o.save_baseline = o.save_baseline, None
    if not alias:
        return "--results-json"
    if o.results_json and Path(o.results_json).expanduser().resolve() != Path(alias).expanduser().resolve():
        raise pytest.UsageError(f"--results-json {o.results_json} and --save-baseline {alias} name two files for "
                                "one results document. Fix: pass --results-json PATH alone (--save-baseline is "
                                "its deprecated alias).")
    try:
        if getattr(config, "workerinput", None) is None:   # once: not again from each pytest-xdist worker
            config.issue_config_time_warning(HarnessDeprecationWarning(SAVE_BASELINE_DEPRECATED), stacklevel=2)
    except HarnessDeprecationWarning as exc:   # -W error: a usage error, not a traceback
        raise pytest.UsageError(f"{exc} (an error under this run's warning filters).") from None
    flag = "--results-json" if o.results_json else "--save-baseline"
    o.results_json = o.results_json or alias
    return flag


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "harness: a behaviour-gate case generated from a suite YAML file")
    if config.option.help:
        return
    o = config.option
    if o.baseline and o.baseline_model:
        raise pytest.UsageError("--baseline FILE and --baseline-model PATH both name a reference; pass one.")
    if o.baseline_adapter and not o.baseline_model:
        raise pytest.UsageError("--baseline-adapter needs --baseline-model (the base it applies to).")
    if o.no_cache and o.cache_dir:
        raise pytest.UsageError("--no-cache and --cache-dir both given; pass one.")
    model = o.model
    ini_model = _ini(config, "harness_model")
    if model is None and ini_model:
        model = ini_model if not (config.inipath and (config.inipath.parent / ini_model).exists()) \
            else str(config.inipath.parent / ini_model)
    if model is None:
        found = default_model() or (Path(str(config.rootpath)) / "fixtures" / "tiny-gpt2")
        model = str(found)
    for flag, value in (("--model", model), ("--baseline-model", o.baseline_model)):
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
        raise pytest.UsageError(f"--baseline {o.baseline}: file not found. Write one with --results-json FILE "
                                "on a run of the reference model.")
    results_flag = _fold_save_baseline(config)
    for flag, value in ((results_flag, o.results_json), ("--report-md", o.report_md)):
        _check_output_path(flag, value)
    _check_output_path("--results-csv", o.results_csv, directory=True)
    if o.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError("--device cuda: no CUDA device is available to torch on this machine "
                                    f"(torch {torch.__version__}). Fix: --device auto or cpu, or install a CUDA build "
                                    "of torch on a machine with a GPU.")
    scorer = o.toxicity_scorer or _ini(config, "harness_toxicity_scorer", parse_scorer) or "auto"
    options = RunOptions(
        model=model, adapter=o.adapter, baseline_model=o.baseline_model, baseline_adapter=o.baseline_adapter,
        device=o.device, dtype=o.dtype, batch_size=o.batch_size, samples=o.samples, max_new_tokens=o.max_new_tokens,
        seed=o.seed, toxicity_scorer=scorer, scorer_label=o.scorer_label,
        detoxify_checkpoint=o.detoxify_checkpoint,
        detoxify_config_dir=o.detoxify_config_dir, score_batch_size=o.score_batch_size,
        scorer_precision=o.scorer_precision, trust_remote_code=o.trust_remote_code,
        chat_template=o.chat_template, cache_dir=o.cache_dir or _ini(config, "harness_cache_dir"),
        use_cache=not o.no_cache, progress=config.get_verbosity() >= 0, backend=o.backend,
        ray_address=o.ray_address, ray_workers=o.ray_workers,
        alpha=o.alpha or _ini(config, "harness_alpha", parse_alpha) or 0.05, correction=o.correction,
        fail_on_regression=tuple(o.fail_on_regression),
        on_inconclusive=o.on_inconclusive,
        on_inconclusive_default=_ini(config, "harness_on_inconclusive", _choice("on-inconclusive", ON_INCONCLUSIVE)),
        ratings=o.ratings, ratings_model=o.ratings_model, subset=o.subset, bold_per_group=o.bold_per_group,
        perturb=_perturb_names(o.perturb))
    hs = HarnessSession(options)
    try:  # new scorers and the labelled file fail here, before any generation
        from harness.measure.scoring import check_scorer_options

        check_scorer_options(scorer, o.score_batch_size, o.scorer_precision)
        if o.scorer_label or scorer.startswith(("hf:", "perspective")):
            hs.scorer_handle()
        if o.scorer_check:
            from harness.scorer_check import read_labelled

            read_labelled(o.scorer_check)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    if o.baseline:
        from harness.measure.results import read_results

        try:
            hs.reference_doc = read_results(o.baseline)
        except HarnessError as exc:
            raise pytest.UsageError(f"--baseline: {exc}") from None
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:  # progress bars reach the terminal even while test output is captured
        hs.progress_context = capman.global_and_fixture_disabled
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # a pytest-xdist worker: generate its share, read the rest from the cache
        hs.shard = (int(workerinput["workerid"].lstrip("gw") or 0), int(workerinput["workercount"]))
    config.stash[SESSION_KEY] = hs
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(hs), "harness-xdist")
    config.stash[SUITES_KEY] = {}
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
    for s in suites:
        hs.suites.setdefault(s.id, s)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Plan every selected case so generation runs in a few large batches."""
    if SESSION_KEY not in session.config.stash:
        return
    from harness import kinds

    hs = _session(session.config)
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
    hs = _session(config)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # xdist worker: hand the document to the controller
        import json

        if hs.has_results():
            workeroutput["harness"] = json.dumps(hs.document())
        hs.close()
        return
    xdist_hooks = config.pluginmanager.get_plugin("harness-xdist")
    if xdist_hooks is not None and xdist_hooks.worker_docs:
        from harness.measure.results import merge_documents

        doc = merge_documents(xdist_hooks.worker_docs)
    elif hs.has_results():
        doc = hs.document()
    else:
        hs.close()
        return
    if hs.reference_doc is not None:   # the saved baseline's own values, for the reports' reference column
        from harness.gate.regression import saved_reference

        doc["reference"] = saved_reference(hs.reference_doc, config.option.baseline)
    hs.final_document = doc
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
    hs.outputs_written, hs.outputs_failed = written, failed
    if failed:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
    hs.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if SESSION_KEY not in config.stash:
        return
    hs = _session(config)
    doc = hs.final_document
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
        for line in hs.outputs_written:
            tr.write_line(line)
    for line in hs.outputs_failed:
        tr.write_line(f"ERROR: {line}", red=True, bold=True)
    status = int(pytest.ExitCode.INTERNAL_ERROR) if hs.outputs_failed else int(exitstatus)
    lines = closing_lines(doc, exitstatus=status)
    for i, line in enumerate(lines):
        verdict, exiting = i == 0, line.startswith("harness: exit")
        tr.write_line(line, red=exiting or (verdict and "BLOCKED" in line), green=verdict and "PASSED" in line,
                      bold=verdict or exiting)
