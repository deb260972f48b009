"""The ``harness`` command: one argparse subparser per subcommand, its module imported only when used.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` (a module serving
two commands names them ``module:prefix``: ``add_<prefix>_arguments`` and ``run_<prefix>``) and keeps
its heavy imports (torch, transformers, pandas, matplotlib) inside functions, so ``harness --help``
stays fast: it lists the commands without importing any of their modules.

    $ harness compare base.json values.json control.json --format markdown
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

from harness import __version__
from harness.errors import HarnessError, did_you_mean

# subcommand -> (module[:prefix], one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("harness.init_cmd", "scaffold benchmarks/ and CI workflows in an existing repository"),
    "cache-key": ("harness.init_cmd:cache_key", "print the CI cache key of a model and its suites"),
    "compare": ("harness.report.compare_cli", "compare results files with significance tests (base vs values vs control)"),
    "power": ("harness.gate.power", "prompts needed for a decisive regression verdict (power planning)"),
    "export": ("harness.report.export", "export a results file to tidy CSV tables"),
    "report": ("harness.report.cli", "verdict-first HTML / Markdown reports from a saved results file"),
    "finetune": ("harness.palms.finetune", "values-targeted fine-tuning (LoRA, adapters or full)"),
    "self-generate": ("harness.palms.selfgen", "SGEAT: generate, score and keep the least toxic samples"),
    "ratings": ("harness.palms.ratings", "human rating sheets: export blind sheets, import and analyse ratings"),
    "data": ("harness.palms.datasets", "check a values-targeted Q&A dataset (lengths, categories, duplicates)"),
    "scorer-check": ("harness.scorer_check", "agreement of a toxicity scorer with labelled texts or another scorer"),
}


def _entry_points(name: str) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[Any], int]]:
    module_name, _, prefix = COMMANDS[name][0].partition(":")
    module = importlib.import_module(module_name)
    if prefix:
        return getattr(module, f"add_{prefix}_arguments"), getattr(module, f"run_{prefix}")
    return module.add_arguments, module.run


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported to fill in its arguments."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Behaviour gates for language-model releases. The main job runs under pytest: "
        "`pytest benchmarks/ --model PATH`. These commands cover the rest of the loop.",
        epilog="`harness COMMAND --help` describes a command's options.")
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", required=True)
    for name, (_, text) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        if name == command:
            add_arguments, run = _entry_points(name)
            add_arguments(p)
            p.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv[0] if argv and not argv[0].startswith("-") else None
    if name is not None and name not in COMMANDS:
        print(f"harness: error: unknown command '{name}'; {did_you_mean(name, COMMANDS)}. "
              "`harness --help` lists them.", file=sys.stderr)
        return 2
    try:
        args = build_parser(name).parse_args(argv)
    except SystemExit as exc:  # --help/--version exit 0, usage errors 2
        return int(exc.code or 0)
    try:
        return int(args._run(args) or 0)
    except HarnessError as exc:
        print(f"harness {name}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
