"""Hostile inputs (issue 12): each ends as a one-paragraph HarnessError naming the file and the fix.

Suite YAML (duplicate keys, alias bombs, recursion), cache directories and rows (read-only,
rows the cache never writes), adapters (broken config, missing or pickled weights) and the
fingerprint memo (nothing written outside the cache directory in use).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import harness.plugin  # noqa: F401  (kept in sys.modules between pytester's in-process runs)
import harness.run.session  # noqa: F401
from harness.model import cache as hc
from harness.model import models
from harness.model.cache import DB_NAME, ResultCache
from harness.errors import HarnessError, ModelLoadError, SpecError
from harness.model.models import load_model, model_fingerprint
from harness.suites.specs import discover_suites, load_suite

from conftest import small_values_project  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
CATEGORY = "categories:\n  - id: a\n    prompts:\n      - {id: p, text: hi}\n"
GEN = {"text": "hi", "n_prompt_tokens": 2, "n_new_tokens": 1, "truncated": False, "finish_reason": "eos"}
CacheError = getattr(hc, "CacheError", HarnessError)  # getattr: each test fails on its own on old code
TRACEBACK_MARKERS = ("Traceback", "harness/plugin.py", "harness/options.py", "harness/run/", "harness/model/models.py",
                     "harness/suites/specs.py", "harness/model/cache.py")


def _spec_error(path: Path, *expected: str) -> str:
    with pytest.raises(SpecError) as info:
        load_suite(path)
    msg = str(info.value)
    for text in (str(path), "Fix:", *expected):
        assert text in msg, msg
    assert "\n" not in msg, msg
    return msg


def _write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ---- item 7: repeated mapping keys ------------------------------------------------------------
def test_repeated_prompts_key_in_a_category_is_refused(tmp_path):
    path = _write(tmp_path, """\
        suite: s
        kind: values
        categories:
          - id: a
            prompts:
              - {id: p1, text: "one"}
            prompts:
              - {id: p2, text: "two"}
        """)
    _spec_error(path, "duplicate key 'prompts'", "line 7", "line 5")


def test_repeated_top_level_key_is_refused(tmp_path):
    path = _write(tmp_path, "suite: s\nkind: values\nsuite: t\n" + CATEGORY)
    _spec_error(path, "duplicate key 'suite'", "line 3")


def test_anchors_and_merge_keys_are_not_duplicates(tmp_path):
    path = _write(tmp_path, """\
        suite: s
        kind: values
        decoding: &dec {samples: 2, top_p: 0.5}
        gates:
          prompt: &g [{metric: toxicity.max, max: 0.5}]
          category: *g
        categories:
          - id: a
            prompts:
              - &base {id: p, text: hi}
              - {<<: *base, id: q}
        """)
    suite = load_suite(path)
    assert [p.id for p in suite.prompts()] == ["p", "q"]
    assert [p.text for p in suite.prompts()] == ["hi", "hi"]
    assert suite.gates_for("category") == suite.gates_for("prompt")


# ---- item 15: alias bombs, recursion, size ----------------------------------------------------
BOMB = """\
suite: s
kind: bold
options:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

_BOMB_CHILD = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from harness.errors import SpecError
from harness.suites.specs import load_suite
t = time.perf_counter()
try:
    load_suite(sys.argv[1])
except SpecError as exc:
    print(f"{time.perf_counter() - t:.3f}")
    print(exc)
    # VmHWM: peak memory of this program (ru_maxrss would include the forking parent's peak on Linux)
    status = open("/proc/self/status").read() if sys.platform == "linux" else ""
    peak = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
    print(peak[0] if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_billion_laughs_is_refused_fast_in_little_memory(tmp_path):
    path = _write(tmp_path, BOMB)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", _BOMB_CHILD, str(path)], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0 and proc.stdout.count("\n") == 3, proc.stdout + proc.stderr[-2000:]
    seconds, message, max_rss_kb = proc.stdout.splitlines()
    assert float(seconds) < 2.0
    assert int(max_rss_kb) < 300_000  # under 300 MB (the old loader went past 3 GB)
    assert str(path) in message and "aliases" in message and "Fix:" in message


def test_large_scalar_repeated_through_aliases_is_refused(tmp_path):
    big = "x" * 200_000
    refs = ", ".join(["*t"] * 500)  # 500 x 200 kB = 100 MB of text once expanded
    path = _write(tmp_path, f"suite: s\nkind: bold\noptions:\n  t: &t {big}\n  u: [{refs}]\n")
    t = time.perf_counter()
    _spec_error(path, "aliases")
    assert time.perf_counter() - t < 2.0


def test_recursive_alias_is_refused(tmp_path):
    path = _write(tmp_path, "suite: s\nkind: bold\noptions:\n  a: &a [1, *a]\n")
    _spec_error(path, "line 4", "refers to itself")


def test_deep_nesting_is_refused(tmp_path):
    path = _write(tmp_path, "suite: s\nkind: bold\noptions:\n  x: " + "[" * 3000 + "]" * 3000 + "\n")
    _spec_error(path, "nested")


def test_oversized_file_is_refused_before_parsing(tmp_path, monkeypatch):
    from harness.suites import safe_yaml as suite_yaml

    monkeypatch.setattr(suite_yaml, "MAX_FILE_BYTES", 1000)
    path = _write(tmp_path, "suite: s\nkind: values\ndescription: " + "x" * 2000 + "\n" + CATEGORY)
    _spec_error(path, "bytes", "split")


# ---- other suite-file crash paths (sweep) -----------------------------------------------------
def test_suite_path_that_is_a_directory(tmp_path):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "odd.yaml").mkdir()
    _spec_error(tmp_path / "suites" / "odd.yaml", "directory")
    with pytest.raises(SpecError, match="odd.yaml"):
        discover_suites([tmp_path / "suites"])


def test_unreadable_suite_file(tmp_path, monkeypatch):
    path = _write(tmp_path, "suite: s\nkind: values\n" + CATEGORY)

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    _spec_error(path, "cannot read", "Permission denied")


@pytest.mark.parametrize("value", ['"no"', "1", "[true]"])
def test_non_boolean_relative_is_refused(tmp_path, value):
    path = _write(tmp_path, "suite: s\nkind: values\ngates:\n  regression:\n"
                            f"    - {{metric: toxicity.expected_max, margin: 0.1, relative: {value}}}\n" + CATEGORY)
    _spec_error(path, "gates.regression[0].relative", "true or false")


# ---- item 13: read-only cache directory -------------------------------------------------------
def _read_only_msg(exc: BaseException, directory: Path) -> str:
    msg = str(exc)
    assert str(directory) in msg and "read-only" in msg, msg
    assert "--no-cache" in msg and "--cache-dir" in msg, msg
    assert "delete" not in msg.lower(), msg
    return msg


def _deny_writes(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """os.access as on a read-only mount or directory (root ignores chmod, so chmod cannot show it)."""
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and Path(path).resolve().is_relative_to(directory.resolve()):
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("populated", [False, True])
def test_read_only_cache_directory_is_not_called_corrupt(tmp_path, monkeypatch, populated):
    directory = tmp_path / "cache"
    if populated:
        with ResultCache(directory) as c:
            c.put_scores({"k": {"toxicity": 0.5}})
    _deny_writes(monkeypatch, directory)
    with pytest.raises(HarnessError) as info:
        ResultCache(directory)
    _read_only_msg(info.value, directory)
    if populated:  # nothing was touched
        with sqlite3.connect(directory / DB_NAME) as raw:
            assert raw.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 1


def test_sqlite_read_only_database_is_not_called_corrupt(tmp_path, monkeypatch):
    """SQLite itself refusing writes (read-only file, mount or bind), simulated with mode=ro."""
    with ResultCache(tmp_path) as c:
        c.put_scores({"k": {"toxicity": 0.5}})
    real_connect = sqlite3.connect
    monkeypatch.setattr(hc.sqlite3, "connect",
                        lambda path, **kw: real_connect(f"file:{path}?mode=ro", uri=True, **kw))
    with pytest.raises(HarnessError) as info:
        with ResultCache(tmp_path) as c:
            c.put_scores({"j": {"toxicity": 0.1}})
    _read_only_msg(info.value, tmp_path)
    monkeypatch.undo()
    with ResultCache(tmp_path) as c:
        assert c.get_scores(["k"]) == {"k": {"toxicity": 0.5}}


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions (covered by the tests above)")
def test_chmod_read_only_cache_directory(tmp_path):
    directory = tmp_path / "cache"
    with ResultCache(directory) as c:
        c.put_scores({"k": {"toxicity": 0.5}})
    directory.chmod(0o555)
    try:
        with pytest.raises(HarnessError) as info:
            ResultCache(directory)
        _read_only_msg(info.value, directory)
    finally:
        directory.chmod(0o755)


# ---- other cache crash paths (sweep) ----------------------------------------------------------
def test_cache_directory_that_is_a_file(tmp_path):
    (tmp_path / "cache").write_text("x")
    with pytest.raises(HarnessError) as info:
        ResultCache(tmp_path / "cache")
    msg = str(info.value)
    assert str(tmp_path / "cache") in msg and "not a directory" in msg and "--cache-dir" in msg


def test_cache_database_path_that_is_a_directory(tmp_path):
    (tmp_path / DB_NAME).mkdir()
    with pytest.raises(HarnessError) as info:
        ResultCache(tmp_path)
    msg = str(info.value)
    assert str(tmp_path / DB_NAME) in msg and "is a directory" in msg and "--cache-dir" in msg


# ---- item 14: cache rows the cache never writes -----------------------------------------------
def _tamper(directory: Path, table: str, value: str, key: str = "k") -> None:
    with sqlite3.connect(directory / DB_NAME) as raw:
        raw.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, 0)", (key, value))


@pytest.mark.parametrize("value, problem", [
    ("{}", "'text'"),
    ('"just text"', "not a JSON object"),
    (json.dumps({**GEN, "text": 3}), "'text'"),
    (json.dumps({**GEN, "n_new_tokens": "2"}), "'n_new_tokens'"),
    (json.dumps({**GEN, "n_prompt_tokens": -1}), "'n_prompt_tokens'"),
    (json.dumps({**GEN, "truncated": 0}), "'truncated'"),
    (json.dumps({k: v for k, v in GEN.items() if k != "finish_reason"}), "'finish_reason'"),
    ("{not json", "not JSON"),
])
def test_invalid_generation_row_is_a_cache_error(tmp_path, value, problem):
    with ResultCache(tmp_path) as c:
        c.put_generations({"good": GEN})
        _tamper(tmp_path, "generations", value)
        with pytest.raises(CacheError) as info:
            c.get_generations(["good", "k"])
        assert c.get_generations(["good"]) == {"good": GEN}
    msg = str(info.value)
    for text in (str(tmp_path / DB_NAME), problem, "--no-cache", "--cache-dir", "DELETE FROM generations",
                 "'k'"):
        assert text in msg, msg


@pytest.mark.parametrize("value, problem", [
    ('{"toxicity": "0.5"}', "'toxicity'"),
    ('{"toxicity": NaN}', "'toxicity'"),
    ('{"toxicity": true}', "'toxicity'"),
    ("{}", "no scores"),
    ("[0.5]", "not a JSON object"),
])
def test_invalid_score_row_is_a_cache_error(tmp_path, value, problem):
    with ResultCache(tmp_path) as c:
        _tamper(tmp_path, "scores", value)
        with pytest.raises(CacheError) as info:
            c.get_scores(["k"])
    msg = str(info.value)
    for text in (str(tmp_path / DB_NAME), problem, "--no-cache", "DELETE FROM scores"):
        assert text in msg, msg


def test_integer_scores_are_valid(tmp_path):
    with ResultCache(tmp_path) as c:
        _tamper(tmp_path, "scores", '{"toxicity": 0, "insult": 1e-3}')
        assert c.get_scores(["k"]) == {"k": {"toxicity": 0, "insult": 1e-3}}


# ---- items 10, 11: broken adapters ------------------------------------------------------------
@pytest.fixture
def adapter_copy(tiny_lora_dir, tmp_path):
    dst = tmp_path / "adapter"
    shutil.copytree(tiny_lora_dir, dst)
    return dst


def _edit_config(adapter: Path, **changes) -> None:
    path = adapter / "adapter_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    for key, value in changes.items():
        if value is ...:
            del cfg[key]
    path.write_text(json.dumps(cfg))


def _model_error(model: Path, adapter: Path, *expected: str) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_model(str(model), adapter=str(adapter), device="cpu")
    msg = str(info.value)
    for text in ("Fix:", *expected):
        assert text in msg, msg
    assert "does not fit" not in msg, msg
    return msg


@pytest.mark.parametrize("text, expected", [("{not json", "not valid JSON"), ("[1, 2]", "not a JSON object")])
def test_adapter_config_that_is_not_a_json_object(tiny_model_dir, adapter_copy, text, expected):
    (adapter_copy / "adapter_config.json").write_text(text)
    _model_error(tiny_model_dir, adapter_copy, str(adapter_copy / "adapter_config.json"), expected)


@pytest.mark.parametrize("field, value, expected", [
    ("r", "four", "'r'"), ("r", -1, "'r'"), ("lora_alpha", "x", "'lora_alpha'"),
    ("peft_type", "NOPE", "'peft_type'"), ("peft_type", ..., "'peft_type'"),
    ("target_modules", 3, "'target_modules'"), ("lora_dropout", "high", "'lora_dropout'"),
])
def test_adapter_config_with_wrong_field_values(tiny_model_dir, adapter_copy, field, value, expected):
    _edit_config(adapter_copy, **{field: value})
    _model_error(tiny_model_dir, adapter_copy, str(adapter_copy / "adapter_config.json"), expected)


def test_adapter_without_weights(tiny_model_dir, adapter_copy):
    (adapter_copy / "adapter_model.safetensors").unlink()
    _model_error(tiny_model_dir, adapter_copy, str(adapter_copy), "adapter_model.safetensors",
                 "adapter_model.bin")


def test_truncated_adapter_weights(tiny_model_dir, adapter_copy):
    weights = adapter_copy / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    _model_error(tiny_model_dir, adapter_copy, str(weights), "damaged")


def _pickled_bin(adapter: Path) -> Path:
    import pathlib

    import torch
    from safetensors.torch import load_file

    weights = adapter / "adapter_model.safetensors"
    state = load_file(weights)
    weights.unlink()
    torch.save({**state, "note": pathlib.PurePosixPath("made by an old tool")}, adapter / "adapter_model.bin")
    return adapter / "adapter_model.bin"


def test_pickled_adapter_bin_is_a_model_load_error(tiny_model_dir, adapter_copy):
    path = _pickled_bin(adapter_copy)
    _model_error(tiny_model_dir, adapter_copy, str(path), "pickle", "weights_only",
                 "adapter_model.safetensors")


def test_tensor_only_adapter_bin_still_loads(tiny_model_dir, adapter_copy):
    import torch
    from safetensors.torch import load_file

    weights = adapter_copy / "adapter_model.safetensors"
    torch.save(load_file(weights), adapter_copy / "adapter_model.bin")
    weights.unlink()
    lm = load_model(str(tiny_model_dir), adapter=str(adapter_copy), device="cpu")
    assert lm.adapter == str(adapter_copy)


# ---- item 18: the fingerprint memo stays in the cache directory in use --------------------------
def _files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def test_fingerprint_memo_goes_to_the_given_directory_only(tiny_model_dir, tmp_path, monkeypatch):
    default = tmp_path / "default-cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(default))
    monkeypatch.setattr(models, "_PROCESS_MEMO", {}, raising=False)
    chosen = tmp_path / "chosen"
    fp = model_fingerprint(str(tiny_model_dir), memo_dir=chosen)
    assert _files_under(chosen) == [chosen / "fingerprints.json"]
    assert _files_under(default) == []
    assert model_fingerprint(str(tiny_model_dir)) == fp  # the old call still works (default directory)
    assert _files_under(default) == [default / "fingerprints.json"]


def test_fingerprint_without_memo_dir_writes_nothing(tiny_model_dir, tmp_path, monkeypatch):
    default = tmp_path / "default-cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(default))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(models, "_PROCESS_MEMO", {}, raising=False)
    opened: list[str] = []
    real_open = models.Path.open

    def counting_open(self, *args, **kwargs):
        opened.append(self.name)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(models.Path, "open", counting_open)
    fp = model_fingerprint(str(tiny_model_dir), memo_dir=None)
    assert "model.safetensors" in opened
    opened.clear()
    assert model_fingerprint(str(tiny_model_dir), memo_dir=None) == fp
    assert "model.safetensors" not in opened  # memoized in this process
    assert _files_under(default) == [] and _files_under(tmp_path / "home") == []
    assert fp == model_fingerprint(str(tiny_model_dir), memo_dir=tmp_path / "other")


@pytest.mark.parametrize("memo", ["[1, 2]", '{"x": 1}', "not json", "ENTRY"])
def test_damaged_fingerprint_memo_is_ignored(tiny_model_dir, tmp_path, memo):
    expected = model_fingerprint(str(tiny_model_dir), memo_dir=None)
    weights = str((tiny_model_dir / "model.safetensors").resolve())
    if memo == "ENTRY":  # an entry without the fields the memo writes
        memo = json.dumps({weights: {"size": (tiny_model_dir / "model.safetensors").stat().st_size}})
    (tmp_path / "fingerprints.json").write_text(memo)
    assert model_fingerprint(str(tiny_model_dir), memo_dir=tmp_path) == expected


# ---- end to end: exit codes and no traceback ----------------------------------------------------
def _project(pytester: pytest.Pytester, suite_text: str | None = None) -> Path:
    return small_values_project(pytester.path, suite_text)


def _run(pytester: pytest.Pytester, model: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest(str(pytester.path), "--model", str(model), "--toxicity-scorer", "profanity",
                              "--cache-dir", str(pytester.path / "cache"), "-p", "no:cacheprovider", *args)


def _no_traceback(result: pytest.RunResult) -> str:
    out = result.stdout.str() + result.stderr.str()
    for marker in TRACEBACK_MARKERS:
        assert marker not in out, f"{marker!r} in output:\n{out}"
    return out


def test_duplicate_key_suite_is_a_collection_error(pytester, tiny_model_dir):
    text = (DATA / "valid_small.yaml").read_text()
    _project(pytester, text.replace("kind: values\n", "kind: values\nsuite: s2\n"))
    result = _run(pytester, tiny_model_dir)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert "duplicate key 'suite'" in _no_traceback(result)


def test_tampered_cache_rows_stop_the_run_with_exit_4(pytester, tiny_model_dir):
    _project(pytester)
    assert _run(pytester, tiny_model_dir, "-k", "cat-a").ret == 0
    with sqlite3.connect(pytester.path / "cache" / DB_NAME) as raw:
        raw.execute("UPDATE generations SET value = '{}'")
    result = _run(pytester, tiny_model_dir, "-k", "cat-a")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = _no_traceback(result)
    assert str(pytester.path / "cache" / DB_NAME) in out and "--no-cache" in out


def test_read_only_cache_stops_the_run_with_exit_4(pytester, tiny_model_dir, monkeypatch):
    _project(pytester)
    (pytester.path / "cache").mkdir()
    _deny_writes(monkeypatch, pytester.path / "cache")
    result = _run(pytester, tiny_model_dir, "-k", "cat-a")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = _no_traceback(result)
    assert "read-only" in out and "delete" not in out


def test_pickled_adapter_stops_the_run_with_exit_4(pytester, tiny_model_dir, adapter_copy):
    path = _pickled_bin(adapter_copy)
    _project(pytester)
    result = _run(pytester, tiny_model_dir, "--adapter", str(adapter_copy), "-k", "cat-a")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = _no_traceback(result)
    assert str(path) in out and "safetensors" in out


@pytest.mark.parametrize("args", [("--no-cache",), ("--cache-dir", "chosen")])
def test_no_cache_and_cache_dir_write_nothing_to_the_default_cache(pytester, tiny_model_dir, monkeypatch, args):
    default = pytester.path / "default-cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(default))
    monkeypatch.setattr(models, "_PROCESS_MEMO", {}, raising=False)
    _project(pytester)
    result = pytester.runpytest(str(pytester.path), "--model", str(tiny_model_dir), "--toxicity-scorer", "profanity",
                                "-p", "no:cacheprovider", "-k", "cat-a", *args)
    assert result.ret == 0
    assert _files_under(default) == []
    if "--cache-dir" in args:
        assert (pytester.path / "chosen" / models.MEMO_NAME).is_file()
