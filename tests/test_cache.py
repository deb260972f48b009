"""Tests for harness.model.cache: keys, seeds, SQLite cache roundtrips, concurrency, crashes."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import signal
import sqlite3
import threading
from pathlib import Path

import pytest

from harness.model import cache as hc
from harness.model import keys
from harness.model.cache import DB_NAME, NullCache, ResultCache, default_cache_dir
from harness.model.keys import GEN_VERSION, generation_key, sample_seed, score_key
from harness.errors import HarnessError

DECODING = {"samples": 3, "max_new_tokens": 40, "temperature": 1.0, "top_p": 0.9, "top_k": 0}
GEN = {"text": "t", "n_prompt_tokens": 3, "n_new_tokens": 2, "truncated": False, "finish_reason": "eos"}
BASE = dict(model_fingerprint="sha256:abc", prompt="How do I save my marriage?",
            decoding=DECODING, chat_template=False, seed=0, sample_index=0)


# -- keys and seeds -------------------------------------------------------------------------

def test_generation_key_matches_design_canonical_json():
    expected_json = ('{"chat_template":false,"decoding":{"max_new_tokens":40,"samples":3,'
                     '"temperature":1.0,"top_k":0,"top_p":0.9},"index":0,'
                     '"model":"sha256:abc","prompt":"How do I save my marriage?","seed":0,"v":1}')
    assert GEN_VERSION == 1
    assert generation_key(**BASE) == hashlib.sha256(expected_json.encode()).hexdigest()


def test_score_key_matches_design_and_keeps_unicode():
    expected = hashlib.sha256('{"scorer":"fp","text":"naïve ☃"}'.encode("utf-8")).hexdigest()
    assert score_key("fp", "naïve ☃") == expected


def test_generation_key_stable_and_order_independent():
    k = generation_key(**BASE)
    assert k == generation_key(**BASE)
    reordered = dict(reversed(list(DECODING.items())))
    assert generation_key(**{**BASE, "decoding": reordered}) == k
    assert len(k) == 64 and int(k, 16) >= 0


@pytest.mark.parametrize("field,value", [
    ("model_fingerprint", "sha256:abd"), ("prompt", "How do I save my marriage"),
    ("decoding", {**DECODING, "top_p": 0.95}), ("decoding", {**DECODING, "samples": 4}),
    ("chat_template", True), ("seed", 1), ("sample_index", 1)])
def test_generation_key_changes_with_every_field(field, value):
    assert generation_key(**{**BASE, field: value}) != generation_key(**BASE)


def test_generation_key_changes_with_gen_version(monkeypatch):
    k = generation_key(**BASE)
    monkeypatch.setattr(keys, "GEN_VERSION", 2)
    assert generation_key(**BASE) != k


def test_generation_key_accepts_dataclass_decoding():
    from dataclasses import make_dataclass
    Decoding = make_dataclass("Decoding", list(DECODING), frozen=True)
    assert generation_key(**{**BASE, "decoding": Decoding(**DECODING)}) == generation_key(**BASE)


def test_score_key_changes_with_fields():
    assert score_key("fp", "a") == score_key("fp", "a")
    assert len({score_key("fp", "a"), score_key("fp2", "a"), score_key("fp", "b")}) == 3


def test_sample_seed_formula_and_range():
    digest = hashlib.sha256("7\x1fhello\x1f2".encode()).digest()
    assert sample_seed(7, "hello", 2) == int.from_bytes(digest[:8], "big") % 2**63
    seeds = [sample_seed(s, p, i) for s in (0, 1) for p in ("a", "b", "é") for i in range(50)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**63 for s in seeds)


def test_sample_seed_fits_torch_manual_seed():
    torch = pytest.importorskip("torch")
    seeds = [sample_seed(0, "prompt", i) for i in range(20)]
    assert len(set(seeds)) == 20
    draws = []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        assert g.initial_seed() == s
        draws.append(torch.rand(1, generator=g).item())
    assert len(set(draws)) == 20
    again = torch.rand(1, generator=torch.Generator().manual_seed(seeds[3])).item()
    assert again == draws[3]


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "h"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "h"
    monkeypatch.delenv("HARNESS_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "x" / "harness"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "harness"


# -- ResultCache ------------------------------------------------------------------------------

def test_roundtrip_creates_directory_and_counts(tmp_path):
    directory = tmp_path / "a" / "b"
    gen = {"text": "héllo", "n_prompt_tokens": 3, "n_new_tokens": 2, "truncated": False,
           "finish_reason": "eos"}
    with ResultCache(directory) as c:
        assert (directory / DB_NAME).is_file()
        c.put_generations({"g1": gen})
        c.put_scores({"s1": {"toxicity": 0.25, "insult": 0.0}})
        assert c.get_generations(["g1", "g2", "g1"]) == {"g1": gen}
        assert c.get_scores(["s1"]) == {"s1": {"toxicity": 0.25, "insult": 0.0}}
        assert c.get_scores(["nope"]) == {}
        assert c.hits == {"generations": 1, "scores": 1}
        assert c.misses == {"generations": 1, "scores": 1}
        st = c.stats()
        assert (st.generations, st.scores, st.generation_hits, st.score_misses) == (1, 1, 1, 1)
        assert st.path == str(directory / DB_NAME)
        mode = sqlite3.connect(directory / DB_NAME).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    with ResultCache(str(directory)) as c:  # persists across instances
        assert c.get_generations(["g1"]) == {"g1": gen}
        c.put_generations({"g1": {**gen, "text": "new"}})  # replace is allowed
        assert c.get_generations(["g1"]) == {"g1": {**gen, "text": "new"}}
        c.put_generations({})
        assert c.get_generations([]) == {}


def test_many_keys_are_chunked(tmp_path, monkeypatch):
    queries = []
    with ResultCache(tmp_path) as c:
        items = {f"k{i}": {**GEN, "n_new_tokens": i} for i in range(2345)}
        c.put_generations(items)
        c._conn.set_trace_callback(queries.append)
        got = c.get_generations([*items, "missing"])
        c._conn.set_trace_callback(None)
        assert got == items
        assert c.hits["generations"] == 2345 and c.misses["generations"] == 1
        selects = [q for q in queries if q.startswith("SELECT")]
        assert len(selects) == 5  # ceil(2346 / 500)
        assert [q.count("'") // 2 for q in selects] == [500, 500, 500, 500, 346]
        assert c.stats().generations == 2345


def test_thread_safety(tmp_path):
    with ResultCache(tmp_path) as c:
        def work(t):
            for j in range(20):
                c.put_scores({f"{t}-{j}": {"toxicity": j / 20}})
                assert c.get_scores([f"{t}-{j}"])
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert c.stats().scores == 80


def test_use_after_close_and_idempotent_close(tmp_path):
    c = ResultCache(tmp_path)
    c.close()
    c.close()
    with pytest.raises(HarnessError, match="after close"):
        c.get_scores(["x"])


def test_pickles_as_directory(tmp_path):
    with ResultCache(tmp_path) as c:
        c.put_scores({"k": {"toxicity": 1.0}})
        clone = pickle.loads(pickle.dumps(c))
        assert clone.get_scores(["k"]) == {"k": {"toxicity": 1.0}}
        clone.close()


# -- processes --------------------------------------------------------------------------------

def _writer(directory: str, worker: int, n_batches: int, batch: int, start) -> None:
    start.wait(30)  # both processes create the fresh database at the same moment
    with ResultCache(directory) as c:
        for b in range(n_batches):
            c.put_generations({f"w{worker}-{b}-{i}": {**GEN, "text": f"{worker}-{b}-{i}"}
                               for i in range(batch)})
            c.put_scores({f"shared-{b}": {"toxicity": b / n_batches}})  # overlapping keys
            c.get_generations([f"w{1 - worker}-{b}-0"])


def _put_then_sigkill(directory: str) -> None:
    c = ResultCache(directory)
    c.put_generations({f"k{i}": {**GEN, "text": f"t{i}"} for i in range(100)})
    c.put_scores({"s": {"toxicity": 0.5}})
    os.kill(os.getpid(), signal.SIGKILL)


def test_two_processes_write_concurrently(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    n_batches, batch = 100, 20
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, n_batches, batch, start))
             for w in (0, 1)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with ResultCache(tmp_path) as c:
        keys = [f"w{w}-{b}-{i}" for w in (0, 1) for b in range(n_batches) for i in range(batch)]
        got = c.get_generations(keys)
        assert len(got) == 2 * n_batches * batch
        assert got["w1-7-3"] == {**GEN, "text": "1-7-3"}
        assert c.stats().scores == n_batches


def test_sigkill_after_put_loses_nothing(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    p = ctx.Process(target=_put_then_sigkill, args=(str(tmp_path),))
    p.start()
    p.join(60)
    assert p.exitcode == -signal.SIGKILL
    with ResultCache(tmp_path) as c:
        assert len(c.get_generations([f"k{i}" for i in range(100)])) == 100
        assert c.get_scores(["s"]) == {"s": {"toxicity": 0.5}}


def _forked_put(c: ResultCache) -> None:
    c.put_scores({"from-child": {"toxicity": 0.0}})
    assert c.get_scores(["parent"]) == {"parent": {"toxicity": 1.0}}


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_fork_reopens_connection(tmp_path):
    with ResultCache(tmp_path) as c:
        c.put_scores({"parent": {"toxicity": 1.0}})
        parent_conn = c._conn
        p = multiprocessing.get_context("fork").Process(target=_forked_put, args=(c,))
        p.start()
        p.join(60)
        assert p.exitcode == 0
        assert c._conn is parent_conn
        assert c.get_scores(["from-child"]) == {"from-child": {"toxicity": 0.0}}


# -- errors and NullCache ---------------------------------------------------------------------

def test_corrupt_file_raises_harness_error_naming_file(tmp_path):
    path = tmp_path / DB_NAME
    path.write_bytes(b"this is not a sqlite database at all\n" * 200)
    with pytest.raises(HarnessError) as info:
        ResultCache(tmp_path)
    message = str(info.value)
    assert str(path) in message and "delete" in message and "--no-cache" in message


def test_foreign_sqlite_schema_raises_harness_error(tmp_path):
    path = tmp_path / DB_NAME
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE generations (id INTEGER)")
        conn.execute("CREATE TABLE scores (key TEXT, value TEXT, created REAL)")
    with pytest.raises(HarnessError, match="--no-cache"):
        ResultCache(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(HarnessError, match="schema version 99"):
        ResultCache(tmp_path)


def test_directory_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(HarnessError, match="cannot create the cache directory"):
        ResultCache(tmp_path / "file" / "sub")


def test_damaged_row_is_an_error_until_replaced(tmp_path):
    with ResultCache(tmp_path) as c:
        with sqlite3.connect(Path(tmp_path) / DB_NAME) as raw:
            raw.execute("INSERT INTO scores VALUES ('bad', '{not json', 0)")
        with pytest.raises(hc.CacheError, match="not JSON"):
            c.get_scores(["bad"])
        c.put_scores({"bad": {"toxicity": 0.1}})
        assert c.get_scores(["bad"]) == {"bad": {"toxicity": 0.1}}


def test_null_cache_always_misses():
    with NullCache() as c:
        c.put_generations({"k": {"text": "x"}})
        c.put_scores({"k": {"toxicity": 0.0}})
        assert c.get_generations(["k", "k", "j"]) == {}
        assert c.get_scores(["k"]) == {}
        assert c.hits == {"generations": 0, "scores": 0}
        assert c.misses == {"generations": 2, "scores": 1}
        st = c.stats()
        assert (st.path, st.generations, st.scores, st.generation_misses) == (None, 0, 0, 2)
    public = {n for n in dir(ResultCache) if not n.startswith("_")}
    assert public <= set(dir(NullCache))
