"""The suite-kind registry: one registered object per ``kind:`` of suite.

A kind turns a suite into test cases and verdicts through four operations:

- ``prepare(suite, options) -> Suite``: validate its options at collection time and materialise its
  prompts (BOLD subsets, packaged datasets, ``--subset``);
- ``cases(suite, fixture, options) -> list``: the cases one case fixture (``prompt_case``,
  ``analysis_case``, ...) gets from the suite; ``skip`` / ``empty_reason`` say why there are none;
- ``records(session, suite) -> Records``: metric records of every role (and ``extras``), returned:
  the session memoizes them and adds them to the results;
- ``compare(session, case) -> list[Verdict]``: the case's gate verdicts.

Kinds receive the session as an argument and never import it (nor pytest, plots or reports). A kind
registers with ``@register`` on its class; see docs/design.md, "Adding a suite kind".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.errors import HarnessError, SpecError, did_you_mean
from harness.suites.specs import Suite
from harness.gate.verdict import Verdict

_KINDS: dict[str, SuiteKind] = {}
_CONFLICTS: dict[str, str] = {}   # name (or class) -> message: a kind kept out of the registry
NO_REGRESSION_GATES = "no regression gates in the suites and no --fail-on-regression METRIC:MARGIN"


@dataclass(frozen=True)
class Records:
    """What a kind's analysis of one suite adds to the results: metric records (every role) and
    ``extras`` entries, merged one level deep into the document's ``extras``."""

    metrics: Sequence[Mapping[str, Any]] = ()
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skip:
    """Why a case fixture has no cases in this run: the placeholder's id and the skip reason."""

    id: str
    reason: str


@dataclass(frozen=True)
class Selection:
    """What decides which cases run besides the suites: the run's options and pytest's selection."""

    options: Any                         # harness.run.session.RunOptions
    has_reference: bool = False          # a reference model or saved baseline file is given
    keyword: str = ""                    # the -k expression
    args: tuple[str, ...] = ()           # the paths named on the command line


class SuiteKind:
    """Base class of a suite kind; subclasses set the class attributes and override the operations."""

    name: ClassVar[str] = ""                     # the suite file's ``kind:``
    label: ClassVar[str] = ""                    # the kind in messages (default: name)
    fixtures: ClassVar[tuple[str, ...]] = ()     # case fixtures it provides, e.g. ("analysis_case",)
    sources: ClassVar[tuple[str, ...]] = ()      # kinds of the suites its cases come from (default: its own)
    from_yaml: ClassVar[bool] = True             # False: only derived suites have this kind
    perturbable: ClassVar[bool] = False          # its suites may list ``perturbations:``
    toxicity_metrics: ClassVar[bool] = False     # the document aggregates its samples' scores into metrics

    def source_kinds(self) -> tuple[str, ...]:
        return self.sources or (self.name,)

    def prepare(self, suite: Suite, options: Any) -> Suite:
        return suite

    def cases(self, suite: Suite, fixture: str, options: Any) -> list[Any]:
        return []

    def skip(self, fixture: str, selection: Selection) -> Skip | None:
        """A reason that skips every case of ``fixture`` in this run (no reference, opt-in, ...)."""
        return None

    def empty_reason(self, fixture: str) -> str:
        """Why ``fixture`` has no cases when no selected suite gives any."""
        return f"no {_either(k.label or k.name for k in providers(fixture))} suite selected"

    def plan(self, session: Any, case: Any) -> None:
        """Register the prompts the case needs, so that generation runs in a few large batches."""
        suite = session.suites[case.suite]
        session.plan(suite, suite.prompts())

    def records(self, session: Any, suite: Suite) -> Records:
        return Records()

    def compare(self, session: Any, case: Any) -> list[Verdict]:
        raise NotImplementedError(f"kind {self.name} has no gates for {type(case).__name__}")


def register(kind: Any = None, *, replace: bool = False) -> Any:
    """Register a kind (a :class:`SuiteKind` subclass or instance); usable as ``@register``.

    A kind without ``name`` or ``fixtures``, or under a name taken by another kind (unless ``replace``),
    is kept out and reported by every lookup; a module imported again (pytester, importlib.reload)
    replaces its own kinds.
    """
    if kind is None:
        return lambda k: register(k, replace=replace)
    obj = kind() if isinstance(kind, type) else kind
    # a kind that cannot be registered is kept out, not raised: a conftest importing its module would
    # show a traceback; every lookup (and the plugin at start-up, as a usage error) reports it instead
    if not obj.name or not obj.fixtures:
        _CONFLICTS[_origin(obj)] = (f"suite kind {_origin(obj)}: set its class attributes 'name' and 'fixtures' "
                                    "(the case fixtures it provides). Fix: e.g. name = \"length\"; "
                                    "fixtures = (\"length_case\",).")
        return kind
    old = _KINDS.get(obj.name)
    if old is not None and not replace and _origin(old) != _origin(obj):
        _CONFLICTS[obj.name] = (f"suite kind '{obj.name}' of {_origin(obj)} is already registered by {_origin(old)}. "
                                "Fix: choose another name, or register(kind, replace=True) to replace it.")
        return kind
    _CONFLICTS.pop(_origin(obj), None)
    _CONFLICTS.pop(obj.name, None)
    _KINDS[obj.name] = obj
    return kind


def check_registry() -> None:
    """Raise a HarnessError naming every kind kept out of the registry (see :func:`register`)."""
    if _CONFLICTS:
        raise HarnessError(" ".join(_CONFLICTS.values()))


def get(name: str) -> SuiteKind:
    """The registered kind ``name``; a SpecError naming the valid ones otherwise."""
    check_registry()
    kind = _KINDS.get(name)
    if kind is None:
        raise SpecError(f"unknown kind {name!r}; {did_you_mean(str(name), names())}. Fix: use one of the valid "
                        "kinds, or register yours (docs/design.md, Adding a suite kind).")
    return kind


def find(name: str) -> SuiteKind | None:
    """The registered kind ``name``, or None."""
    return _KINDS.get(name)


def names() -> list[str]:
    """The kinds a suite file may name (``kind:``), in registration order."""
    return [n for n, k in _KINDS.items() if k.from_yaml]


def fixtures() -> list[str]:
    """Every case fixture some kind provides, in registration order."""
    return list(dict.fromkeys(f for k in _KINDS.values() for f in k.fixtures))


def providers(fixture: str) -> list[SuiteKind]:
    return [k for k in _KINDS.values() if fixture in k.fixtures]


def kind_of(session: Any, case: Any) -> SuiteKind:
    """The kind that judges ``case``: its own ``kind`` attribute, else its suite's kind."""
    name = getattr(case, "kind", None)
    if not name:
        if not isinstance(getattr(case, "suite", None), str):
            raise HarnessError(f"{_shown(case)} is not a case (no str 'suite'). Fix: check a case a kind's "
                               "cases() gave, e.g. kinds.get(suite.kind).cases(suite, \"prompt_case\", options).")
        suite = session.suites.get(case.suite)
        if suite is None:
            raise HarnessError(f"case {getattr(case, 'case_id', case)!r}: its suite {case.suite!r} is not one of this "
                               f"session's suites ({', '.join(session.suites) or 'none'}). Fix: session.plan(suite, "
                               "suite.prompts()) before checking its cases.")
        name = suite.kind
    return get(name)


def prepare(suite: Suite, options: Any = None) -> Suite:
    """Validate ``suite`` against its kind and let the kind prepare it (collection time)."""
    check_registry()
    kind = _KINDS.get(suite.kind)
    if kind is None or not kind.from_yaml:
        raise SpecError(f"{suite.path}: kind: unknown kind {suite.kind!r}; {did_you_mean(str(suite.kind), names())}. "
                        "Fix: use one of the valid kinds, or register yours (docs/design.md, Adding a suite kind).")
    if suite.perturbations and not kind.perturbable:
        either = _either(n for n, k in _KINDS.items() if k.perturbable)
        raise SpecError(f"{suite.path}: perturbations: a {suite.kind} suite has no prompts to perturb. Fix: remove "
                        f"the section, or perturb a {either} suite.")
    return kind.prepare(suite, options)


def require_categories(suite: Suite) -> Suite:
    if not suite.categories:
        raise SpecError(f"{suite.path}: categories: expected a non-empty list of categories. Fix: add '- id: NAME' "
                        "entries with 'prompts:' lists.")
    return suite


def needs_reference(selection: Selection) -> Skip | None:
    """The skip of every regression case in a run without a reference."""
    if selection.has_reference:
        return None
    return Skip("no-reference", "no reference model: pass --baseline-model PATH or --baseline FILE to run "
                "regression cases")


def collect(fixture: str, suites: Iterable[Suite], selection: Selection) -> tuple[list[Any], Skip | None]:
    """The cases of ``fixture`` over the selected suites (in suite order), or why there are none."""
    kinds = providers(fixture)
    skips = {k.name: k.skip(fixture, selection) for k in kinds}
    cases = [_case(k, c) for s in suites for k in kinds if s.kind in k.source_kinds() and skips[k.name] is None
             for c in k.cases(s, fixture, selection.options)]
    if cases:
        return cases, None
    first = next((s for s in skips.values() if s is not None), None)
    return [], first or Skip("none", "; ".join(dict.fromkeys(k.empty_reason(fixture) for k in kinds)))


def plan(session: Any, case: Any) -> None:
    kind_of(session, case).plan(session, case)


def compare(session: Any, case: Any) -> list[Verdict]:
    """The gate verdicts of any case (a library user's ``check``: no pytest involved)."""
    kind = kind_of(session, case)
    verdicts = kind.compare(session, case)
    if not isinstance(verdicts, (list, tuple)) or not all(isinstance(v, Verdict) for v in verdicts):
        raise HarnessError(f"suite kind '{kind.name}' ({_origin(kind)}): compare() returned {_shown(verdicts)} for "
                           f"case {getattr(case, 'case_id', case)!r}; expected a list of harness.Verdict. Fix: return "
                           "[Verdict(...), ...] from compare().")
    return list(verdicts)


def records(kind: SuiteKind, session: Any, suite: Suite) -> Records:
    """``kind``'s records of ``suite`` (``session.records`` memoizes them)."""
    found = kind.records(session, suite)
    if not isinstance(found, Records):
        raise HarnessError(f"suite kind '{kind.name}' ({_origin(kind)}): records() returned {_shown(found)} for "
                           f"suite {suite.id}; expected harness.kinds.Records. Fix: return Records([...metric "
                           "records...]) (and extras=..., optional).")
    return found


def _case(kind: SuiteKind, case: Any) -> Any:
    """``case`` if it has the attributes every case needs (a str ``case_id`` and ``suite``)."""
    missing = [a for a in ("case_id", "suite") if not isinstance(getattr(case, a, None), str)]
    if missing:
        raise HarnessError(f"suite kind '{kind.name}' ({_origin(kind)}): cases() gave {_shown(case)} without "
                           f"a str {' and '.join(missing)}. Fix: return objects with 'suite' (the suite id) and "
                           "'case_id' (the test id), e.g. a frozen dataclass (docs/design.md, Adding a suite kind).")
    return case


def _shown(value: Any) -> str:
    """A short description of a wrong value in a message."""
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _either(items: Iterable[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    items = list(dict.fromkeys(items))
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _origin(kind: SuiteKind) -> str:
    return f"{type(kind).__module__}.{type(kind).__qualname__}"
