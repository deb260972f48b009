"""The harness's pytest options: registration, parsing (validated when parsed), ini defaults, and
:func:`run_options`, which turns a pytest config into the session's :class:`RunOptions`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError, did_you_mean
from harness.gate.verdict import ON_INCONCLUSIVE
from harness.run.session import RunOptions

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


def add_options(parser: pytest.Parser) -> None:
    """Register the command-line options and ini settings (called by the plugin's pytest_addoption)."""
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


def run_options(config: pytest.Config) -> RunOptions:
    """The run's :class:`RunOptions` from the command line and ini settings, validated: conflicting or
    unusable options are a pytest.UsageError (exit 4) before anything is collected or generated."""
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
        found = "a directory, not a results file" if Path(o.baseline).is_dir() else "file not found"
        raise pytest.UsageError(f"--baseline {o.baseline}: {found}. Write one with --results-json FILE "
                                "on a run of the reference model.")
    results_flag = _fold_save_baseline(config)
    for flag, value in ((results_flag, o.results_json), ("--report-md", o.report_md)):
        _check_output_path(flag, value)
        if value and o.baseline and Path(value).expanduser().resolve() == Path(o.baseline).expanduser().resolve():
            raise pytest.UsageError(f"{flag} {value} is also --baseline: this run would overwrite the reference it "
                                    "compares against. Fix: write this run's results to another path (and replace "
                                    "the baseline after reviewing them).")
    _check_output_path("--results-csv", o.results_csv, directory=True)
    if o.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError("--device cuda: no CUDA device is available to torch on this machine "
                                    f"(torch {torch.__version__}). Fix: --device auto or cpu, or install a CUDA build "
                                    "of torch on a machine with a GPU.")
    scorer = o.toxicity_scorer or _ini(config, "harness_toxicity_scorer", parse_scorer) or "auto"
    try:
        options = RunOptions(
            model=model, adapter=o.adapter, baseline_model=o.baseline_model, baseline_adapter=o.baseline_adapter,
            baseline=o.baseline,
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
    except HarnessError as exc:   # a value no option parser checks (e.g. an ini setting)
        raise pytest.UsageError(str(exc)) from None
    return options
