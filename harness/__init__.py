"""The harness: a pytest plugin that gates language-model releases on behaviour.

The names a library user imports, without pytest (each loads its stage on first use, so
``import harness`` stays cheap)::

    from harness import HarnessSession, RunOptions, load_suite, compare_runs, Verdict

>>> import harness
>>> harness.load_suite.__module__
'harness.suites.specs'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute): the thin public face over the stage folders
_PUBLIC = {
    "load_suite": ("harness.suites.specs", "load_suite"),
    "discover_suites": ("harness.suites.specs", "discover_suites"),
    "prepare_suite": ("harness.kinds", "prepare"),
    "register_perturbation": ("harness.suites.perturb", "register"),
    "Verdict": ("harness.gate.verdict", "Verdict"),
    "GateFailure": ("harness.gate.verdict", "GateFailure"),
    "compare_runs": ("harness.gate.compare", "compare_runs"),
    "read_results": ("harness.measure.results", "read_results"),
    "SuiteKind": ("harness.kinds", "SuiteKind"),
    "register_kind": ("harness.kinds", "register"),
    "HarnessSession": ("harness.run.session", "HarnessSession"),
    "RunOptions": ("harness.run.options", "RunOptions"),
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        module, attribute = _PUBLIC[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
