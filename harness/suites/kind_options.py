"""The ``options:`` mapping of a suite, read by its kind: unknown keys and bad values are SpecErrors
naming the file, the key and the fix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from harness.errors import SpecError, did_you_mean

def suite_options(suite) -> dict:
    """The kind-specific options of a suite: ``Suite.extra`` (or its ``options`` mapping)."""
    extra = dict(getattr(suite, "extra", None) or {})
    return dict(extra["options"]) if isinstance(extra.get("options"), Mapping) else extra


def check_option_keys(options: Mapping, allowed: Iterable[str], path, kind: str) -> None:
    """SpecError naming file, key and the valid keys for an unknown ``options`` key."""
    allowed = list(allowed)
    for key in options:
        if key not in allowed:
            raise SpecError(f"{path or '<suite>'}: unknown key 'options.{key}' for kind '{kind}'; "
                            f"{did_you_mean(str(key), allowed)}. Fix: rename or remove it.")


def option_error(path, key: str, problem: str, fix: str) -> SpecError:
    return SpecError(f"{path or '<suite>'}: field 'options.{key}' {problem}. Fix: {fix}.")
