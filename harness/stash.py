"""The pytest ``config.stash`` keys of a harness run, shared by the plugin and its pytest-html hooks."""

from __future__ import annotations

import pytest

from harness.run.session import HarnessSession

SESSION_KEY = pytest.StashKey[HarnessSession]()   # the one session object, built in pytest_configure
SUITES_KEY = pytest.StashKey[dict]()               # prepared suites per --suite selection (collection)
