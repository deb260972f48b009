"""The plugin is a guest: installing the package changes no unrelated pytest run (issue 12, items
16-18). The plugin is activated only by a benchmarks folder's conftest (``pytest_plugins``) or
``-p harness.plugin``; these tests run real subprocesses so nothing is shared with this process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNRELATED_CONFTEST = '''
import sys
def pytest_addoption(parser):
    # option names the harness uses for itself: they must not collide
    for name in ("--device", "--model", "--seed", "--samples", "--suite", "--alpha", "--baseline"):
        parser.addoption(name, default="theirs")

def pytest_sessionfinish(session):
    open("modules.txt", "w").write("\\n".join(m for m in sys.modules if m.split(".")[0] == "harness"))
'''


def _pytest(cwd: Path, *args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), "HARNESS_CACHE_DIR": "", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("HARNESS_CACHE_DIR")
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120)


def _unrelated(tmp_path: Path) -> Path:
    project = tmp_path / "unrelated"
    project.mkdir()
    (project / "conftest.py").write_text(UNRELATED_CONFTEST)
    (project / "test_it.py").write_text(
        "def test_own_option(request):\n    assert request.config.getoption('--device') == 'theirs'\n"
        "def test_ok():\n    assert 1 + 1 == 2\n")
    return project


def test_unrelated_project_is_untouched(tmp_path):
    project, home = _unrelated(tmp_path), tmp_path / "home"
    home.mkdir()
    result = _pytest(project, "-p", "no:cacheprovider", "-p", "no:junitxml", "-q", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    # the harness was not even imported, and wrote nothing anywhere
    assert (project / "modules.txt").read_text() == ""
    assert not (home / ".cache").exists()
    plan = _pytest(project, "-p", "no:cacheprovider", "--setup-plan", home=home)
    assert plan.returncode == 0 and "harness" not in plan.stdout.lower()
    # and the session header names no harness plugin
    assert "harness" not in _pytest(project, "-p", "no:cacheprovider", home=home).stdout.lower()


def test_benchmarks_folder_activates_the_plugin(tmp_path):
    """The same environment: a folder whose conftest names the plugin gets its options."""
    project, home = tmp_path / "bench", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    (project / "conftest.py").write_text((ROOT / "benchmarks" / "conftest.py").read_text())
    (project / "test_x.py").write_text("def test_seed(request):\n    assert request.config.getoption('--seed') == 7\n")
    result = _pytest(tmp_path, "bench", "--seed", "7", "-p", "no:cacheprovider", "-q", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    # -p harness.plugin activates it anywhere
    (project / "conftest.py").unlink()
    result = _pytest(tmp_path, "bench", "-p", "harness.plugin", "--seed", "7", "-p", "no:cacheprovider", "-q", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
