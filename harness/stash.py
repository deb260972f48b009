"""The pytest ``config.stash`` keys of a harness run, shared by the plugin and its pytest-html hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.run.session import HarnessSession

SESSION_KEY = pytest.StashKey[HarnessSession]()   # the one session object, built in pytest_configure
SUITES_KEY = pytest.StashKey[dict]()               # prepared suites per --suite selection (collection)
REQUESTED_KEY = pytest.StashKey[dict]()            # suite id -> the case fixtures tests request with it


@dataclass
class RunOutputs:
    """What the plugin made of the run at session finish: the final results document and the
    "wrote PATH" / "could not write" lines of its output files (for the terminal summary)."""

    document: dict[str, Any] | None = None
    written: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stopped: str | None = None     # the input error that stopped the run part-way (exit 4)


OUTPUTS_KEY = pytest.StashKey[RunOutputs]()
