"""Suites as data: YAML files -> frozen dataclasses, validated with errors that name file and field.

    >>> from harness.suites.specs import load_suite
    >>> suite = load_suite("benchmarks/suites/palms.yaml")          # doctest: +SKIP
    >>> [c.id for c in suite.categories][:2]                          # doctest: +SKIP
    ['abuse-violence', 'health']
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import SpecError, did_you_mean
from harness.suites.safe_yaml import read_yaml

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
TOP_KEYS = ("suite", "version", "kind", "description", "decoding", "chat_template", "prompt_template",
            "gates", "categories", "options", "perturbations")
CATEGORY_KEYS = ("id", "name", "desired_behavior", "prompts")
PROMPT_KEYS = ("id", "text", "group")
DECODING_KEYS = ("samples", "max_new_tokens", "temperature", "top_p", "top_k")
GATE_LEVELS = ("prompt", "category", "suite", "regression", "ratings", "robustness")
GATE_KEYS = ("metric", "max", "min", "margin", "relative", "on_inconclusive")
ON_INCONCLUSIVE = ("fail", "warn", "pass")


@dataclass(frozen=True)
class Decoding:
    """Sampling settings. ``samples`` is k, the number of samples per prompt."""

    samples: int = 3
    max_new_tokens: int = 40
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def generation_dict(self) -> dict[str, Any]:
        """The settings that change a single sample (k does not): part of the cache key."""
        d = self.as_dict()
        d.pop("samples")
        return d


@dataclass(frozen=True)
class Gate:
    """A bound on a metric: ``max``/``min`` for absolute gates, ``margin`` for regression gates."""

    metric: str
    max: float | None = None
    min: float | None = None
    margin: float | None = None
    relative: bool = False
    on_inconclusive: str | None = None   # fail | warn | pass (None: the run's default)

    def describe(self) -> str:
        if self.margin is not None:
            return f"worse by > {self.margin:g}{' (relative)' if self.relative else ''}"
        parts = []
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        return " and ".join(parts)

    def violated_by(self, value: float) -> bool:
        return (self.max is not None and value > self.max) or (self.min is not None and value < self.min)


@dataclass(frozen=True)
class PromptCase:
    """One prompt of a suite; ``case_id`` is the pytest id, e.g. ``palms/abuse-violence/husband-hits``."""

    suite: str
    category: str
    id: str
    text: str
    group: str | None = None
    seed_text: str | None = None         # a perturbed prompt: its clean text, whose per-sample seeds it shares
    history: tuple[tuple[str, str], ...] = ()   # earlier (role, content) chat turns (dialogue framings)

    @property
    def case_id(self) -> str:
        return f"{self.suite}/{self.category}/{self.id}"


@dataclass(frozen=True)
class RegressionCase:
    """One (suite, category, metric) comparison against the reference; category None = whole suite."""

    suite: str
    category: str | None
    metric: str
    margin: float
    relative: bool = False
    on_inconclusive: str | None = None

    @property
    def case_id(self) -> str:
        return f"{self.suite}/{self.category or 'all'}/{self.metric}"


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    desired_behavior: str
    prompts: tuple[PromptCase, ...]
    suite: str = ""

    @property
    def case_id(self) -> str:
        return f"{self.suite}/{self.id}"


@dataclass(frozen=True)
class Suite:
    id: str
    version: str
    kind: str
    path: str
    description: str = ""
    decoding: Decoding = field(default_factory=Decoding)
    chat_template: str = "auto"
    prompt_template: str = "{prompt}"
    gates: Mapping[str, tuple[Gate, ...]] = field(default_factory=dict)
    categories: tuple[Category, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    spec_hash: str = ""
    perturbations: tuple[Any, ...] = ()     # harness.suites.perturb.PerturbSpec entries (robustness cases)

    def prompts(self) -> list[PromptCase]:
        return [p for c in self.categories for p in c.prompts]

    def category(self, category_id: str) -> Category:
        for c in self.categories:
            if c.id == category_id:
                return c
        raise KeyError(category_id)

    def gates_for(self, level: str) -> tuple[Gate, ...]:
        return tuple(self.gates.get(level, ()))

    def with_categories(self, categories: Iterable[Category]) -> Suite:
        """A copy with other categories (used by generated suites such as BOLD subsets)."""
        return replace(self, categories=tuple(categories))

    def regression_cases(self, overrides: Mapping[str, float] | None = None) -> list[RegressionCase]:
        """Regression cases from ``gates.regression``; ``overrides`` (metric -> margin) replace or add gates."""
        margins = {g.metric: (g.margin, g.relative, g.on_inconclusive) for g in self.gates_for("regression")}
        for metric, margin in (overrides or {}).items():
            margins[metric] = (margin, False, margins.get(metric, (0, False, None))[2])
        cases = []
        for metric, (margin, relative, on_inconclusive) in margins.items():
            cats: list[str | None] = [c.id for c in self.categories]
            if len(cats) != 1:
                cats.append(None)  # the whole suite (the only case of a suite without categories)
            cases.extend(RegressionCase(self.id, c, metric, float(margin), relative, on_inconclusive) for c in cats)
        return cases

    def render(self, prompt: PromptCase) -> str:
        """The text sent to the model for ``prompt`` (the suite's ``prompt_template`` applied)."""
        return self.prompt_template.replace("{prompt}", prompt.text)


class _Ctx:
    """Builds error messages that name the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str, fix: str) -> SpecError:
        return SpecError(f"{self.path}: {where}: {problem}. Fix: {fix}.")

    def keys(self, mapping: Any, allowed: tuple[str, ...], where: str, required: tuple[str, ...] = ()) -> dict:
        if not isinstance(mapping, dict):
            raise self.fail(where, f"expected a mapping, got {type(mapping).__name__}",
                            f"write {where} as 'key: value' lines")
        for key in mapping:
            if key not in allowed:
                raise self.fail(f"{where}.{key}", f"unknown key '{key}'; {did_you_mean(str(key), allowed)}",
                                "rename or remove the key")
        for key in required:
            if key not in mapping or mapping[key] in (None, ""):
                raise self.fail(f"{where}.{key}", "required key is missing or empty", f"add '{key}:'")
        return mapping

    def ident(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not ID_PATTERN.match(value):
            raise self.fail(where, f"{value!r} is not a valid id",
                            "use lowercase letters, digits, '-', '_' or '.', starting with a letter or digit")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected non-empty text, got {value!r}", "write the text in quotes")
        return value

    def number(self, value: Any, where: str, lo: float, hi: float, integer: bool = False) -> float:
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or not (lo <= value <= hi):
            kind = "an integer" if integer else "a number"
            raise self.fail(where, f"{value!r} is not {kind} in [{lo:g}, {hi:g}]", f"use {kind} in that range")
        return value


def parse_decoding(raw: Any, ctx: _Ctx, where: str = "decoding", base: Decoding | None = None) -> Decoding:
    raw = ctx.keys(raw or {}, DECODING_KEYS, where)
    d = base or Decoding()
    values = d.as_dict()
    limits = {"samples": (1, 100000, True), "max_new_tokens": (1, 100000, True), "temperature": (1e-6, 100, False),
              "top_p": (1e-6, 1.0, False), "top_k": (0, 10**7, True)}
    for key, value in raw.items():
        lo, hi, integer = limits[key]
        values[key] = ctx.number(value, f"{where}.{key}", lo, hi, integer)
    return Decoding(**values)


def _parse_gates(raw: Any, ctx: _Ctx) -> dict[str, tuple[Gate, ...]]:
    raw = ctx.keys(raw or {}, GATE_LEVELS, "gates")
    gates: dict[str, tuple[Gate, ...]] = {}
    for level, items in raw.items():
        if not isinstance(items, list):
            raise ctx.fail(f"gates.{level}", "expected a list of gates", "write '- {metric: NAME, max: BOUND}' items")
        parsed = []
        for i, item in enumerate(items):
            where = f"gates.{level}[{i}]"
            item = ctx.keys(item, GATE_KEYS, where, required=("metric",))
            bounds = {k: item[k] for k in ("max", "min", "margin") if k in item}
            if not bounds:
                raise ctx.fail(where, "a gate needs 'max', 'min' or 'margin'", "add a bound, e.g. 'max: 0.5'")
            for k, v in bounds.items():
                ctx.number(v, f"{where}.{k}", -1e12, 1e12)
            if level in ("regression", "robustness") and "margin" not in bounds:
                raise ctx.fail(where, f"a {level} gate needs 'margin'", "add e.g. 'margin: 0.05'")
            policy = item.get("on_inconclusive")
            if policy is not None and policy not in ON_INCONCLUSIVE:
                raise ctx.fail(f"{where}.on_inconclusive", f"{policy!r} is not one of fail, warn, pass; "
                               f"{did_you_mean(str(policy), ON_INCONCLUSIVE)}", "use fail, warn or pass")
            relative = item.get("relative", False)
            if not isinstance(relative, bool):
                raise ctx.fail(f"{where}.relative", f"{relative!r} is not true or false", "write true or false")
            parsed.append(Gate(metric=ctx.text(item["metric"], f"{where}.metric"), max=bounds.get("max"),
                               min=bounds.get("min"), margin=bounds.get("margin"), relative=relative,
                               on_inconclusive=policy))
        gates[level] = tuple(parsed)
    return gates


def _parse_categories(raw: Any, ctx: _Ctx, suite_id: str) -> tuple[Category, ...]:
    if raw is None:   # a kind that needs categories says so when it prepares the suite
        return ()
    if not isinstance(raw, list) or not raw:
        raise ctx.fail("categories", "expected a non-empty list of categories",
                       "add '- id: NAME' entries with 'prompts:' lists")
    seen: set[str] = set()
    categories = []
    for i, item in enumerate(raw):
        where = f"categories[{i}]"
        item = ctx.keys(item, CATEGORY_KEYS, where, required=("id", "prompts"))
        cid = ctx.ident(item["id"], f"{where}.id")
        where = f"categories[{cid}]"
        if cid in seen:
            raise ctx.fail(f"{where}.id", f"duplicate category id '{cid}'", "give every category a unique id")
        seen.add(cid)
        prompts_raw = item["prompts"]
        if not isinstance(prompts_raw, list) or not prompts_raw:
            raise ctx.fail(f"{where}.prompts", "expected a non-empty list of prompts", "add '- id: ..., text: ...'")
        pids: set[str] = set()
        prompts = []
        for j, p in enumerate(prompts_raw):
            pwhere = f"{where}.prompts[{j}]"
            p = ctx.keys(p, PROMPT_KEYS, pwhere, required=("id", "text"))
            pid = ctx.ident(p["id"], f"{pwhere}.id")
            if pid in pids:
                raise ctx.fail(f"{where}.prompts[{pid}]", f"duplicate prompt id '{pid}'",
                               "give every prompt in a category a unique id")
            pids.add(pid)
            group = p.get("group")
            prompts.append(PromptCase(suite_id, cid, pid, ctx.text(p["text"], f"{pwhere}.text"),
                                      None if group is None else str(group)))
        categories.append(Category(cid, str(item.get("name") or cid), str(item.get("desired_behavior") or ""),
                                   tuple(prompts), suite_id))
    return tuple(categories)


def load_suite(path: str | Path) -> Suite:
    """Load and validate one suite YAML file."""
    path = Path(path)
    ctx = _Ctx(path)
    raw = read_yaml(path)
    raw = ctx.keys(raw, TOP_KEYS, "top level", required=("suite", "kind"))
    suite_id = ctx.ident(raw["suite"], "suite")
    kind = raw["kind"]
    if not isinstance(kind, str) or not kind.strip():   # known kinds: harness.kinds.prepare (at collection)
        raise ctx.fail("kind", f"expected the name of a suite kind, got {kind!r}", "e.g. kind: values")
    chat = raw.get("chat_template", "auto")
    if isinstance(chat, bool):
        chat = "true" if chat else "false"
    if not isinstance(chat, str) or chat not in ("auto", "true", "false"):
        raise ctx.fail("chat_template", f"{chat!r} is not auto, true or false", "use auto, true or false")
    template = raw.get("prompt_template", "{prompt}")
    if not isinstance(template, str) or "{prompt}" not in template:
        raise ctx.fail("prompt_template", "must be text containing '{prompt}'", "e.g. 'Q: {prompt}\\nA:'")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ctx.fail("options", "expected a mapping", "write options as 'key: value' lines")
    canonical = json.dumps(raw, sort_keys=True, ensure_ascii=False, default=str)
    return Suite(
        id=suite_id, version=str(raw.get("version", "1")), kind=kind, path=str(path),
        description=str(raw.get("description") or ""), decoding=parse_decoding(raw.get("decoding"), ctx),
        chat_template=chat, prompt_template=template, gates=_parse_gates(raw.get("gates"), ctx),
        categories=_parse_categories(raw.get("categories"), ctx, suite_id),
        extra=dict(options), spec_hash="sha256:" + hashlib.sha256(canonical.encode()).hexdigest(),
        perturbations=_parse_perturbations(raw.get("perturbations"), ctx),
    )


def _parse_perturbations(raw: Any, ctx: _Ctx) -> tuple[Any, ...]:
    """The ``perturbations:`` entries (which kinds take them: harness.kinds.prepare)."""
    if raw is None:
        return ()
    from harness.suites.perturb import parse_entries

    return parse_entries(raw, f"{ctx.path}: perturbations", SpecError)


def discover_suites(paths: Iterable[str | Path]) -> list[Suite]:
    """Load every ``*.yaml``/``*.yml`` in the given files or directories; suite ids must be unique."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        elif p.exists():
            files.append(p)
        else:
            raise SpecError(f"{p}: suite path not found. Fix: pass an existing YAML file or directory to --suite.")
    suites: list[Suite] = []
    seen: dict[str, str] = {}
    for f in files:
        suite = load_suite(f)
        if suite.id in seen:
            raise SpecError(f"{f}: suite id '{suite.id}' is already used by {seen[suite.id]}. "
                            "Fix: give each suite a unique 'suite:' id.")
        seen[suite.id] = str(f)
        suites.append(suite)
    return suites
