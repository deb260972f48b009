"""The package's import graph against the stage order in docs/design.md (ast only, nothing imported).

A module may import its own stage and earlier stages, never later ones; no import circle, even
through lazy imports inside functions; only the top stage imports pytest.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "harness"
DESIGN = ROOT / "docs" / "design.md"


def stage_table(text: str) -> list[tuple[str, list[str], list[str]]]:
    """(stage, places, may import) rows of the "## Stages" table; places are `harness/...` paths."""
    section = text.split("## Stages", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("stage", "") or set(cells[0]) <= {"-"}:
            continue
        places = re.findall(r"`(harness/[^`]*)`", cells[1])
        allowed = [a.strip() for a in cells[3].split(",") if a.strip() not in ("-", "")]
        rows.append((cells[0], places, allowed))
    return rows


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every harness module ``path`` imports, at any depth of the file (lazy imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def stage_of(name: str, path: Path, table) -> str:
    rel = path.relative_to(ROOT).as_posix()
    for stage, places, _ in table:
        for place in places:
            if rel == place or (place.endswith("/") and rel.startswith(place)):
                return stage
    raise AssertionError(f"{rel} is in no stage of docs/design.md's stage table: add it there")


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, set(known)) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_stage_table_lists_every_stage_once_in_order():
    table = stage_table(DESIGN.read_text(encoding="utf-8"))
    names = [stage for stage, _, _ in table]
    assert names[0] == "base" and names[-1] == "top" and len(set(names)) == len(names) >= 8
    for i, (stage, places, allowed) in enumerate(table):
        assert places, f"stage {stage} names no place"
        if stage != "top":
            assert allowed == names[:i], f"stage {stage} may also import {allowed}, expected {names[:i]}"


def test_every_module_is_in_a_stage_and_imports_only_its_own_or_earlier_stages():
    table = stage_table(DESIGN.read_text(encoding="utf-8"))
    allowed = {stage: {stage, *names} for stage, _, names in table}
    allowed["top"] = {stage for stage, _, _ in table}
    paths = modules()
    stage = {name: stage_of(name, path, table) for name, path in paths.items()}
    wrong = [f"{name} ({stage[name]}) imports {dep} ({stage[dep]})"
             for name, deps in graph().items() for dep in sorted(deps)
             if stage[dep] not in allowed[stage[name]] and not dep == "harness"]
    assert not wrong, "imports against the stage order of docs/design.md:\n" + "\n".join(wrong)


def test_no_import_circles():
    assert cycles(graph()) == []


def test_only_the_top_stage_imports_pytest():
    table = stage_table(DESIGN.read_text(encoding="utf-8"))
    offenders = []
    for name, path in modules().items():
        if stage_of(name, path, table) == "top":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "pytest" or n.startswith(("pytest.", "_pytest")) for n in names):
                offenders.append(name)
    assert offenders == []


def test_the_checker_finds_a_circle_and_an_upward_import(tmp_path):
    """The graph walker itself: a lazy import inside a function is an edge; a 3-cycle is found."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    src = tmp_path / "harness" / "gate" / "x.py"
    src.parent.mkdir(parents=True)
    src.write_text("def f():\n    from harness.report import tables\n    from . import y\n")
    known = {"harness.report.tables", "harness.report", "harness.gate.y", "harness.gate.x"}
    assert imports_of("harness.gate.x", src, known) == {"harness.report.tables", "harness.gate.y"}


def test_the_public_face_resolves_every_name_lazily():
    """`import harness` loads no stage; each public name resolves to its stage's object."""
    import subprocess
    import sys

    code = ("import sys, harness; before = sorted(m for m in sys.modules if m.startswith('harness.'));"
            "objs = [getattr(harness, n) for n in harness.__all__]; print(before, len(objs))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    import harness

    assert out.split() == ["[]", str(len(harness.__all__))]
    assert harness.RunOptions.__module__ == "harness.run.options"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        harness.nope  # noqa: B018
