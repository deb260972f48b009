"""The `harness` command: argparse subcommands, usage errors (exit 2), fast help without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)


def test_help_lists_every_command_with_its_summary(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: harness [-h] [--version] COMMAND ..." in out
    for name, (_, text) in COMMANDS.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(name))
        assert line.split()[0] == name
        assert text.split()[0] in out  # the one-line help is printed (argparse may wrap it)


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage: harness" in err and "required: COMMAND" in err


def test_unknown_command_suggests_the_closest(capsys):
    assert main(["complare", "a.json"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'complare'" in err and "did you mean 'compare'?" in err


def test_bad_subcommand_option_is_a_usage_error_of_that_command(capsys):
    assert main(["init", "--ci", "jenkins"]) == 2
    err = capsys.readouterr().err
    assert "usage: harness init" in err and "invalid choice: 'jenkins'" in err


def test_harness_error_exits_2_with_one_paragraph(tmp_path, capsys):
    assert main(["init", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness init: error: ") and "Traceback" not in err and err.count("\n") == 1


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("harness ")


def test_help_imports_no_heavy_module_and_each_command_help_works():
    """`harness --help` imports no subcommand module; `harness CMD --help` imports only CMD's module,
    and none of them pulls in torch or transformers."""
    code = f"""
import json, sys
from harness.cli import COMMANDS, main
assert main(["--help"]) == 0
top = sorted(m for m in sys.modules if m.startswith("harness.") or m.split(".")[0] in ("torch", "transformers"))
codes = {{name: main([name, "--help"]) for name in COMMANDS}}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
print(json.dumps({{"top": top, "codes": codes, "heavy": heavy}}))
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["top"] == ["harness.cli", "harness.errors"]   # stdlib-only modules
    assert report["codes"] == {name: 0 for name in COMMANDS}
    assert report["heavy"] == []


@pytest.mark.parametrize("argv", [["-m", "harness"], ["-m", "harness", "--help"]])
def test_module_entry_point_exit_codes(argv):
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == (0 if "--help" in argv else 2)
