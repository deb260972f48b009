"""The ``harness`` command: subcommands dispatch to plain modules, imported only when used.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` and keeps its
heavy imports (torch, transformers, pandas, matplotlib) inside functions, so ``harness --help``
stays fast.

    $ harness compare base.json values.json control.json --format markdown
"""

from __future__ import annotations

import argparse
import importlib
import sys

from harness import __version__
from harness.errors import HarnessError, did_you_mean

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "compare": ("harness.compare", "compare results files with significance tests (base vs values vs control)"),
    "export": ("harness.reports", "export a results file to tidy CSV tables"),
    "report": ("harness.report.cli", "verdict-first HTML / Markdown reports from a saved results file"),
    "finetune": ("harness.finetune", "values-targeted fine-tuning (LoRA, adapters or full)"),
    "self-generate": ("harness.selfgen", "SGEAT: generate, score and keep the least toxic samples"),
    "ratings": ("harness.ratings", "human rating sheets: export blind sheets, import and analyse ratings"),
    "data": ("harness.datasets", "check a values-targeted Q&A dataset (lengths, categories, duplicates)"),
    "fixtures": ("harness.fixtures", "build the bundled tiny models and data under fixtures/"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Behaviour gates for language-model releases. The main job runs under pytest: "
        "`pytest benchmarks/ --model PATH`. These subcommands cover the rest of the loop.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument("command", nargs="?", help="; ".join(f"{k}: {v[1]}" for k, v in COMMANDS.items()))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "--version"):
        _top_parser().parse_args(argv or ["--help"])
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"harness: unknown command '{name}'; {did_you_mean(name, COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"harness {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except HarnessError as exc:
        print(f"harness {name}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
