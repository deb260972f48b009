"""``harness init [DIR]``: adopt the harness in an existing repository; ``harness cache-key``.

``init`` writes ``benchmarks/`` (a conftest activating the plugin, the test modules, a commented
starter suite, a ``.gitignore`` for outputs) and CI templates (GitHub Actions, GitLab CI). It never
overwrites an existing file unless ``--force`` is given, and then only the files it writes itself.

    $ harness init . --model models/candidate --ci github
    $ harness cache-key --model models/candidate --suite benchmarks/suites
    harness-3f5c0a9e1b2d4c6f
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

TEMPLATES = Path(__file__).parent / "data" / "templates"
CI_CHOICES = ("both", "github", "gitlab", "none")
INCONCLUSIVE_CHOICES = ("fail", "warn", "pass")
GITLAB_JOB = ".gitlab/harness.gitlab-ci.yml"
GITLAB_ROOT = ".gitlab-ci.yml"
GITLAB_INCLUDE = f"include:\n  - local: {GITLAB_JOB}\n"


@dataclass(frozen=True)
class Target:
    """One scaffolded file: its template (under harness/data/templates), destination and group."""

    template: str
    dest: str
    group: str  # benchmarks | github | gitlab


TARGETS = (
    Target("benchmarks/conftest.py.tmpl", "benchmarks/conftest.py", "benchmarks"),
    Target("benchmarks/test_values.py.tmpl", "benchmarks/test_values.py", "benchmarks"),
    Target("benchmarks/test_bias.py.tmpl", "benchmarks/test_bias.py", "benchmarks"),
    Target("benchmarks/test_regression.py.tmpl", "benchmarks/test_regression.py", "benchmarks"),
    Target("benchmarks/suites/starter.yaml.tmpl", "benchmarks/suites/starter.yaml", "benchmarks"),
    Target("benchmarks/gitignore.tmpl", "benchmarks/.gitignore", "benchmarks"),
    Target("ci/github.yml.tmpl", ".github/workflows/harness.yml", "github"),
    Target("ci/gitlab.yml.tmpl", GITLAB_JOB, "gitlab"),
)


@dataclass(frozen=True)
class InitSettings:
    """Values substituted into the CI templates (each a YAML double-quoted string)."""

    model: str = "path/to/your/model"
    baseline: str = "benchmarks/baseline.json"
    install: str = "harness"
    on_inconclusive: str = "warn"

    def substitutions(self) -> dict[str, str]:
        return {"MODEL": self.model, "BASELINE": self.baseline, "INSTALL": self.install,
                "ON_INCONCLUSIVE": self.on_inconclusive}


def render(template: str, settings: InitSettings) -> str:
    """The template's text with every ``"@@NAME@@"`` replaced by a JSON (= YAML) quoted value."""
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    for name, value in settings.substitutions().items():
        if "\n" in value or "\r" in value:
            raise HarnessError(f"--{name.lower().replace('_', '-')} {value!r}: contains a line break. "
                               "Fix: pass a single-line value.")
        text = text.replace(f'"@@{name}@@"', json.dumps(value))
    if "@@" in text:  # a placeholder without its quotes: a template bug, never shipped half-filled
        raise HarnessError(f"template {template} has an unfilled placeholder; please report this bug.")
    return text


def plan(root: Path, ci: str = "both") -> list[Target]:
    """The targets ``init`` writes for a ``--ci`` choice."""
    groups = {"benchmarks"} | ({"github", "gitlab"} if ci == "both" else {ci} - {"none"})
    return [t for t in TARGETS if t.group in groups]


def scaffold(root: Path | str, settings: InitSettings = InitSettings(), ci: str = "both",
             force: bool = False) -> tuple[list[str], list[str]]:
    """Write the scaffold under ``root``; returns (written paths, notes). All or nothing without ``force``."""
    root = Path(root)
    if not root.is_dir():
        raise HarnessError(f"{root}: not a directory. Fix: pass the root of an existing repository "
                           "(or create the directory first).")
    targets = plan(root, ci)
    texts = {t.dest: render(t.template, settings) for t in targets}
    gitlab_root = root / GITLAB_ROOT
    write_gitlab_root = any(t.group == "gitlab" for t in targets) and not gitlab_root.exists()
    if write_gitlab_root:
        texts[GITLAB_ROOT] = "# Written by `harness init`: the behaviour-gate job lives in the included file.\n" \
                             + GITLAB_INCLUDE
    clashes = [dest for dest in texts if (root / dest).exists() or (root / dest).is_symlink()]
    if clashes and not force:
        raise HarnessError(f"{len(clashes)} file(s) already exist under {root}: {', '.join(clashes)}. "
                           "Nothing was written. Fix: move them away, or pass --force to overwrite these files "
                           "(your other files are never touched).")
    for dest in clashes:
        if not (root / dest).is_file() or (root / dest).is_symlink():
            raise HarnessError(f"{root / dest} exists and is not a regular file; --force only "
                               "replaces regular files. Fix: move it away. Nothing was written.")
    for dest, text in texts.items():
        path = root / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    notes = []
    if any(t.group == "gitlab" for t in targets) and not write_gitlab_root:
        existing = gitlab_root.read_text(encoding="utf-8", errors="replace")
        if GITLAB_JOB not in existing:
            notes.append(f"{GITLAB_ROOT} exists and was left alone: add these lines to it to run the job:\n"
                         + GITLAB_INCLUDE)
    return list(texts), notes


def next_steps(settings: InitSettings, ci: str) -> list[str]:
    steps = [f"run the gates locally: pytest benchmarks/ --model={settings.model} "
             "--results-json=benchmarks/reports/results.json"]
    if settings.baseline:
        steps.append(f"save the baseline the CI compares against (from the model you ship today), and commit it:\n"
                     f"  pytest benchmarks/ --model=PRODUCTION_MODEL --results-json={settings.baseline}")
    if ci != "none":
        steps.append("check HARNESS_MODEL, HARNESS_BASELINE and HARNESS_INSTALL (where pip finds the harness) "
                     "at the top of the CI file(s)")
    return steps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", default=".", help="repository root (default: the current directory)")
    parser.add_argument("--model", default=InitSettings.model, help="model the CI evaluates (in the CI files)")
    parser.add_argument("--baseline", default=InitSettings.baseline,
                        help="baseline results file the CI compares against ('' for none)")
    parser.add_argument("--install", default=InitSettings.install, help="pip requirement the CI installs the "
                        "harness from, e.g. git+https://example.org/harness.git@v0.1.0 (default: harness)")
    parser.add_argument("--on-inconclusive", default=InitSettings.on_inconclusive, choices=INCONCLUSIVE_CHOICES,
                        help="what the CI does with an INCONCLUSIVE regression verdict (default: warn)")
    parser.add_argument("--ci", default="both", choices=CI_CHOICES, help="CI templates to write (default: both)")
    parser.add_argument("--force", action="store_true", help="overwrite files init writes that already exist")


def run(args: argparse.Namespace) -> int:
    settings = InitSettings(model=args.model, baseline=args.baseline, install=args.install,
                            on_inconclusive=args.on_inconclusive)
    written, notes = scaffold(args.dir, settings, args.ci, args.force)
    for dest in written:
        print(f"wrote {Path(args.dir) / dest}")
    for note in notes:
        print(f"note: {note}", end="" if note.endswith("\n") else "\n")
    print("next:")
    for step in next_steps(settings, args.ci):
        print(f"- {step}")
    return 0


# ---- harness cache-key ----------------------------------------------------------------------------
def cache_key(model: str, adapter: str | None = None, suites: list[str] | None = None) -> str:
    """``harness-<16 hex>`` over the model fingerprint, the suites' ids/versions/spec hashes and the
    cache format, so a CI cache is restored for the same model and suites (entries are content-addressed,
    so an older cache restored by prefix is still correct)."""
    from harness.model import cache, keys
    from harness.model.models import model_fingerprint
    from harness.suites.specs import discover_suites

    specs = sorted(f"{s.id}@{s.version}:{s.spec_hash}" for s in discover_suites(suites or ["benchmarks/suites"]))
    payload = {"model": model_fingerprint(model, adapter), "suites": specs,
               "cache": [keys.GEN_VERSION, cache.SCHEMA_VERSION]}
    return "harness-" + hashlib.sha256(keys.canonical_json(payload).encode()).hexdigest()[:16]


def add_cache_key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model directory (or a hub id in the local cache)")
    parser.add_argument("--adapter", help="PEFT adapter directory applied to --model")
    parser.add_argument("--suite", action="append", default=None,
                        help="suite file or directory (repeatable; default benchmarks/suites)")


def run_cache_key(args: argparse.Namespace) -> int:
    print(cache_key(args.model, args.adapter, args.suite))
    return 0
