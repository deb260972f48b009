"""Reading a suite file's YAML safely: size limit, no repeated keys, no alias bombs, no self-references.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.yaml"
    >>> _ = path.write_text("suite: s\\nsuite: t\\n")
    >>> read_yaml(path)                                   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    harness.errors.SpecError: ...: line 2, column 1: duplicate key 'suite' (first at line 1); ...
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from harness.errors import SpecError

MAX_FILE_BYTES = 5 * 2**20
"""A suite file larger than this is refused before parsing (5 MiB holds ~50,000 prompts)."""
MAX_NODES = 1_000_000
MAX_TEXT = 20 * 2**20
MAX_DEPTH = 100
"""Limits on the document once its aliases (``*name``) are expanded: values, characters of text, nesting."""


def _fail(path: Path, where: str, problem: str, fix: str) -> SpecError:
    return SpecError(f"{path}: {where}: {problem}. Fix: {fix}.")


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: Any, mark: Any) -> None:
        super().__init__(key)
        self.key, self.first, self.mark = key, first, mark


@functools.lru_cache(maxsize=1)
def _loader() -> type:
    """A SafeLoader that refuses repeated mapping keys (YAML would silently keep only the last)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict:
            first: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<: *base' merges may be overridden by explicit keys
                key = self.construct_object(key_node)
                if key in first:
                    raise _DuplicateKey(key, first[key], key_node.start_mark)
                first[key] = key_node.start_mark
            return super().construct_mapping(node, deep)

    return Loader


def _check_expansion(root: Any, path: Path) -> None:
    """Refuse alias bombs, deep nesting and self-referencing aliases before anything is expanded.

    Measures every node of the composed graph once (aliases share nodes), so this is linear in
    the file, while the expanded document can be exponentially larger."""
    import yaml

    def kids(node: Any) -> list:
        if isinstance(node, yaml.SequenceNode):
            return node.value
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return []

    measured: dict[int, tuple[int, int, int]] = {}  # id(node) -> (values, characters, depth) once expanded
    open_nodes: set[int] = set()  # nodes whose children are still being measured: the current path
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        k = id(node)
        if not done:
            if k in open_nodes:
                raise _fail(path, f"line {node.start_mark.line + 1}", "an alias here refers to itself or to a "
                            "mapping or list that contains it, so the document is infinite", "remove that alias")
            if k not in measured:
                open_nodes.add(k)
                stack.append((node, True))
                stack.extend((c, False) for c in kids(node))
            continue
        open_nodes.discard(k)
        parts = [measured[id(c)] for c in kids(node)]
        text = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
        size = (1 + sum(p[0] for p in parts), text + sum(p[1] for p in parts),
                1 + max((p[2] for p in parts), default=0))
        measured[k] = size
        if size[2] > MAX_DEPTH:
            raise _fail(path, f"line {node.start_mark.line + 1}", f"the value starting here is nested more than "
                        f"{MAX_DEPTH} levels deep", "flatten it")
        if size[0] > MAX_NODES or size[1] > MAX_TEXT:
            raise _fail(path, f"line {node.start_mark.line + 1}", f"the value starting here expands to more than "
                        f"{MAX_NODES:,} values or {MAX_TEXT // 2**20} MiB of text once its aliases ('*name') are "
                        "resolved", "write the data out without repeated aliases, or split it into several suite files")


def _read_text(path: Path) -> str:
    try:
        if path.is_dir():
            raise _fail(path, "suite file", "this is a directory, not a YAML file",
                        "pass a YAML file, or the directory that holds the suite files")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _fail(path, "suite file", f"{size:,} bytes is more than the {MAX_FILE_BYTES:,} bytes a suite "
                        "file may have", "split the prompts into several suite files")
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: suite file not found. Fix: check the path given to --suite.") from None
    except OSError as exc:
        raise _fail(path, "suite file", f"cannot read it ({exc.strerror or exc})",
                    "check the file's permissions, or pass another --suite") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not valid UTF-8 (byte {exc.start}). Fix: save the file as UTF-8.") from None


def read_yaml(path: Path) -> Any:
    """The single YAML document of the suite file ``path`` (None when empty); problems raise SpecError."""
    import yaml

    text = _read_text(path)
    loader = None
    try:
        loader = _loader()(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, path)
        return loader.construct_document(node)
    except _DuplicateKey as dup:
        raise _fail(path, f"line {dup.mark.line + 1}, column {dup.mark.column + 1}",
                    f"duplicate key '{dup.key}' (first at line {dup.first.line + 1}); YAML keeps only the last value "
                    "and would silently drop the first", f"merge the two '{dup.key}:' entries into one, or remove "
                    "one") from None
    except RecursionError:
        raise _fail(path, "suite file", f"nested more than {MAX_DEPTH} levels deep", "flatten the nesting") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. an impossible date like 2020-13-45
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        context = getattr(exc, "context_mark", None)
        if context is not None and mark is not None and context.line != mark.line:
            where += f" (the construct started at line {context.line + 1}, column {context.column + 1})"
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SpecError(f"{path}: malformed YAML at {where}: {problem}. "
                        "Fix: check indentation and quoting there (quote text containing ':' or '#', "
                        "and values that look like dates).") from None
    finally:
        if loader is not None:
            loader.dispose()
