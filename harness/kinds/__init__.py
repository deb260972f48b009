"""Suite kinds as registered objects: how each ``kind:`` of suite becomes cases, records and verdicts.

The built-in kinds: ``values`` (:mod:`harness.kinds.values`), ``cooccurrence``, ``bold``,
``perplexity`` and the robustness cases over values suites (:mod:`harness.kinds.robustness`, kind
``perturbed``). A new kind is one module with a :class:`SuiteKind` subclass under ``@register``,
imported before collection (e.g. listed in the benchmarks' ``conftest.py`` ``pytest_plugins``);
see docs/design.md, "Adding a suite kind".

    >>> from harness import kinds
    >>> kinds.names()
    ['values', 'cooccurrence', 'bold', 'perplexity']
    >>> kinds.get("valeus")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    harness.errors.SpecError: unknown kind 'valeus'; valid: bold, cooccurrence, perplexity, values (did you mean 'values'?)...
"""

from harness.kinds.registry import (Records, Selection, Skip, SuiteKind, check_registry, collect, compare, find,
                                    fixtures, get, kind_of, names, plan, prepare, providers, records,
                                    register)
from harness.kinds import values, cooccurrence, bold, perplexity, robustness  # noqa: E402  (registers them, in order)
from harness.kinds.analysis import AnalysisCase  # noqa: E402
from harness.kinds.values import AdherenceCase, subset  # noqa: E402

__all__ = ["AdherenceCase", "AnalysisCase", "Records", "Selection", "Skip", "SuiteKind", "bold", "check_registry",
           "collect", "compare",
           "cooccurrence", "find", "fixtures", "get", "kind_of", "names", "perplexity", "plan", "prepare",
           "providers", "records", "register", "robustness", "subset", "values"]
