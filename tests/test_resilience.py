"""Speed and resilience behaviour (issue 8): warm cache, kill -9 resume, xdist and Ray equality, NaN scores.

These run pytest in subprocesses (a real kill, real xdist workers, a local Ray instance), so they
are the slowest tests of the suite; each stays within a few tens of seconds on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def _project(tmp_path: Path) -> Path:
    (tmp_path / "suites").mkdir(parents=True)
    (tmp_path / "test_values.py").write_text((ROOT / "benchmarks" / "test_values.py").read_text())
    (tmp_path / "conftest.py").write_text((ROOT / "benchmarks" / "conftest.py").read_text())
    text = (DATA / "valid_small.yaml").read_text(encoding="utf-8")
    (tmp_path / "suites" / "small.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def _pytest(project: Path, model: Path, cache: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", ".", "-q", "-p", "no:cacheprovider", "--model", str(model),
           "--toxicity-scorer", "profanity", "--cache-dir", str(cache), *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=timeout, env=env)


def _content(path: Path) -> dict:
    """The parts of a results document that must not depend on how the run was executed."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {"samples": doc["samples"], "metrics": doc["metrics"], "comparisons": doc["comparisons"],
            "suites": doc["config"]["suites"], "scorer": doc["config"]["scorer"], "seed": doc["config"]["seed"],
            "fingerprint": doc["config"]["models"]["candidate"]["fingerprint"]}


def _cached_generations(cache: Path) -> int:
    db = cache / "harness-cache.sqlite3"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("select count(*) from generations").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_second_run_generates_nothing_and_does_not_load_the_model(tmp_path, tiny_model_dir):
    project = _project(tmp_path / "p")
    first = _pytest(project, tiny_model_dir, tmp_path / "c", "--results-json", "a.json")
    assert first.returncode == 0, first.stdout + first.stderr
    second = _pytest(project, tiny_model_dir, tmp_path / "c", "--results-json", "b.json")
    assert second.returncode == 0, second.stdout + second.stderr
    a, b = (json.loads((project / n).read_text()) for n in ("a.json", "b.json"))
    assert a["run"]["generated"]["candidate"] == len(a["samples"]) > 0
    assert b["run"]["generated"]["candidate"] == 0
    assert b["run"]["cached"]["candidate"] == len(b["samples"])
    assert b["config"]["models"]["candidate"].get("loaded") is False  # never loaded: everything was cached
    assert "model_load" not in b["run"]["timings_s"] and "scorer_load" not in b["run"]["timings_s"]
    assert _content(project / "a.json") == _content(project / "b.json")
    assert "harness: PASSED" in second.stdout          # -q keeps the verdict line only


def test_kill_9_during_generation_loses_nothing_finished(tmp_path, tiny_model_dir):
    """SIGKILL after some batches are cached; the rerun completes and reuses every finished sample."""
    project = _project(tmp_path / "p")
    cache = tmp_path / "c"
    cmd = [sys.executable, "-m", "pytest", ".", "-q", "-p", "no:cacheprovider", "--model", str(tiny_model_dir),
           "--toxicity-scorer", "profanity", "--cache-dir", str(cache), "--batch-size", "1",
           "--samples", "40", "--max-new-tokens", "24"]
    proc = subprocess.Popen(cmd, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    total = 4 * 40
    deadline = time.monotonic() + 180
    try:
        while _cached_generations(cache) < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done = _cached_generations(cache)
    assert 0 < done < total, f"the kill came too late or too early: {done} of {total} cached"
    rerun = _pytest(project, tiny_model_dir, cache, "--batch-size", "1", "--samples", "40", "--max-new-tokens",
                    "24", "--results-json", "r.json")
    assert rerun.returncode in (0, 1), rerun.stdout + rerun.stderr
    doc = json.loads((project / "r.json").read_text())
    assert len(doc["samples"]) == total
    assert doc["run"]["cached"]["candidate"] >= done
    assert doc["run"]["generated"]["candidate"] == total - doc["run"]["cached"]["candidate"]


def test_xdist_gives_the_single_process_results(tmp_path, tiny_model_dir):
    pytest.importorskip("xdist")
    project = _project(tmp_path / "p")
    single = _pytest(project, tiny_model_dir, tmp_path / "c1", "--results-json", "single.json")
    assert single.returncode == 0, single.stdout + single.stderr
    sharded = _pytest(project, tiny_model_dir, tmp_path / "c2", "-n", "2", "--results-json", "xdist.json")
    assert sharded.returncode == 0, sharded.stdout + sharded.stderr
    assert _content(project / "single.json") == _content(project / "xdist.json")
    doc = json.loads((project / "xdist.json").read_text())
    assert doc["run"]["workers"] == 2
    # each worker generated only its share; together exactly the plan, nothing twice
    assert doc["run"]["generated"]["candidate"] == len(doc["samples"])


def test_ray_backend_gives_the_single_process_results(tmp_path, tiny_model_dir):
    pytest.importorskip("ray")
    project = _project(tmp_path / "p")
    single = _pytest(project, tiny_model_dir, tmp_path / "c1", "--results-json", "single.json")
    assert single.returncode == 0, single.stdout + single.stderr
    ray_run = _pytest(project, tiny_model_dir, tmp_path / "c2", "--backend", "ray", "--ray-workers", "2",
                      "--results-json", "ray.json", timeout=400)
    assert ray_run.returncode == 0, ray_run.stdout + ray_run.stderr
    assert _content(project / "single.json") == _content(project / "ray.json")


def test_nan_scores_stop_the_run_and_keep_the_generations(pytester, tiny_model_dir, monkeypatch):
    """A scorer returning NaN is an error (exit 4), never 'non-toxic'; generated texts stay cached."""
    import numpy as np
    import profanity_check

    (pytester.path / "test_values.py").write_text((ROOT / "benchmarks" / "test_values.py").read_text())
    (pytester.path / "conftest.py").write_text((ROOT / "benchmarks" / "conftest.py").read_text())
    pytester.mkdir("suites")
    (pytester.path / "suites" / "small.yaml").write_text((DATA / "valid_small.yaml").read_text())
    monkeypatch.setattr(profanity_check, "predict_prob", lambda texts: np.full(len(texts), np.nan))
    result = pytester.runpytest(str(pytester.path), "--model", str(tiny_model_dir), "--toxicity-scorer", "profanity",
                                "--cache-dir", str(pytester.path / "c"), "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stdout.fnmatch_lines(["*cannot be scored is an error*"])
    assert _cached_generations(pytester.path / "c") == 8
