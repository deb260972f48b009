"""Content-addressed sample and score cache on SQLite (WAL); the keys are :mod:`harness.model.keys`
(docs/design.md "Sample seeds and cache keys": sha256 hex of canonical JSON).

>>> import tempfile
>>> from harness.model.keys import generation_key
>>> gen = {"text": "hello", "n_prompt_tokens": 2, "n_new_tokens": 1, "truncated": False, "finish_reason": "eos"}
>>> with ResultCache(tempfile.mkdtemp()) as cache:
...     key = generation_key("sha256:m", "Hi", {"samples": 1}, False, seed=0, sample_index=0)
...     cache.put_generations({key: gen})
...     cache.get_generations([key, "missing"]) == {key: gen}
True
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.model.cache_checks import (BUSY_TIMEOUT_S, DB_NAME, PROBLEMS, bad_rows_message, database_message,
                                   is_read_only, read_only_message)
from harness.errors import HarnessError

SCHEMA_VERSION = 1
"""Stored in ``PRAGMA user_version``; a cache file of another version is refused."""

MAX_PARAMS = 500
TABLES = ("generations", "scores")


class CacheError(HarnessError):
    """The cache directory or database cannot be used (read-only, not a cache, rows it never writes)."""


# Connections inherited across fork() are never closed in the child: closing one could drop
# POSIX locks the child holds through its own connection (SQLite's documented fork hazard).
_ABANDONED: list[sqlite3.Connection] = []


def default_cache_dir() -> Path:
    """$HARNESS_CACHE_DIR, else $XDG_CACHE_HOME/harness, else ~/.cache/harness.

    >>> isinstance(default_cache_dir(), Path)
    True
    """
    explicit = os.environ.get("HARNESS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "harness"
    return Path.home() / ".cache" / "harness"


@dataclasses.dataclass(frozen=True)
class CacheStats:
    """Row counts plus this process's hit/miss counters (for the run summary).

    >>> CacheStats(path=None, generations=0, scores=0).generation_hits
    0
    """

    path: str | None
    generations: int
    scores: int
    generation_hits: int = 0
    generation_misses: int = 0
    score_hits: int = 0
    score_misses: int = 0


def _chunks(items: Sequence[Any], size: int = MAX_PARAMS) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _unique(keys: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(keys))


class ResultCache:
    """SQLite cache of generations and scores under ``directory`` (created if missing).

    Safe across threads (one lock), worker processes (WAL, busy timeout, a connection per
    process, reopened after fork) and crashes (each put commits before it returns).

    >>> import tempfile
    >>> with ResultCache(tempfile.mkdtemp()) as c:
    ...     c.put_scores({"k": {"toxicity": 0.1}})
    ...     (c.get_scores(["k", "x"]), c.hits["scores"], c.misses["scores"])
    ({'k': {'toxicity': 0.1}}, 1, 1)
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory).expanduser()
        self.path = self.directory / DB_NAME
        self.hits = {t: 0 for t in TABLES}
        self.misses = {t: 0 for t in TABLES}
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._closed = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise CacheError(f"the cache directory {self.directory} is not a directory (a file has that name); pass "
                             "--cache-dir (or set HARNESS_CACHE_DIR) to a directory, or run with --no-cache") from None
        except OSError as exc:
            raise CacheError(
                f"cannot create the cache directory {self.directory} ({exc}); set HARNESS_CACHE_DIR "
                "to a writable directory, pass --cache-dir, or run with --no-cache") from None
        if self.path.is_dir():
            raise CacheError(f"the cache database {self.path} is a directory, not a file; pass --cache-dir "
                             "(or set HARNESS_CACHE_DIR) to another directory, or run with --no-cache")
        if is_read_only(self.directory):
            raise CacheError(read_only_message(self.directory, "no write permission"))
        with self._lock:
            self._connect()

    # -- connection management -------------------------------------------------------------

    def _corrupt(self, exc: BaseException) -> CacheError:
        return CacheError(database_message(self.directory, exc))

    def _connect(self) -> None:
        """Open this process's connection, set WAL pragmas and create the tables."""
        conn = None
        try:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S,
                                   isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self._set_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"cache schema version {version}, expected {SCHEMA_VERSION}")
            if version == 0:
                conn.execute("BEGIN IMMEDIATE")
                for table in TABLES:
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} "
                                 "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            else:  # a read-only database (file, mount) refuses this write now, not after a long generation
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
            for table in TABLES:  # validates the columns of an existing file
                conn.execute(f"SELECT key, value, created FROM {table} LIMIT 0").fetchall()
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise self._corrupt(exc) from exc
        self._conn = conn
        self._pid = os.getpid()

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs a brief exclusive lock; retry while other processes hold it.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":
            raise sqlite3.DatabaseError(f"cannot switch to WAL journal mode (got {mode!r})")

    def _connection(self) -> sqlite3.Connection:
        """The connection of the current process; call with the lock held."""
        if self._closed:
            raise CacheError(f"the cache {self.path} was used after close(); open a new ResultCache")
        if self._conn is None:
            self._connect()
        assert self._conn is not None
        return self._conn

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # forked: the parent's lock and connection are not ours
            if self._conn is not None:
                _ABANDONED.append(self._conn)
            self._conn = None
            self._lock = threading.Lock()
            self._pid = os.getpid()

    # -- generic get / put -----------------------------------------------------------------

    def _get(self, table: str, keys: Sequence[str]) -> dict[str, dict]:
        self._check_fork()
        wanted = _unique(keys)
        found: dict[str, dict] = {}
        bad: dict[str, str] = {}
        with self._lock:
            conn = self._connection()
            try:
                for chunk in _chunks(wanted):
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(
                        f"SELECT key, value FROM {table} WHERE key IN ({marks})", tuple(chunk))
                    for key, value in rows:
                        try:
                            found[key] = json.loads(value)
                        except (TypeError, ValueError):
                            bad[key] = "not JSON"
                            continue
                        problem = PROBLEMS[table](found[key])
                        if problem:
                            bad[key] = problem
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(exc) from exc
            if bad:
                raise CacheError(bad_rows_message(self.path, table, bad))
            self.hits[table] += len(found)
            self.misses[table] += len(wanted) - len(found)
        return found

    def _put(self, table: str, items: Mapping[str, Mapping[str, Any]]) -> None:
        self._check_fork()
        if not items:
            return
        now = time.time()
        rows = [(key, json.dumps(value, separators=(",", ":"), ensure_ascii=False), now)
                for key, value in items.items()]
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        f"INSERT OR REPLACE INTO {table} (key, value, created) VALUES (?, ?, ?)", rows)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(exc) from exc

    # -- public API ------------------------------------------------------------------------

    def get_generations(self, keys: Sequence[str]) -> dict[str, dict]:
        """Cached generations for ``keys`` (missing keys are absent); counts hits/misses."""
        return self._get("generations", keys)

    def put_generations(self, items: Mapping[str, Mapping[str, Any]]) -> None:
        """Store ``{key: generation dict}`` in one committed transaction."""
        self._put("generations", items)

    def get_scores(self, keys: Sequence[str]) -> dict[str, dict]:
        """Cached score dicts for ``keys`` (missing keys are absent); counts hits/misses."""
        return self._get("scores", keys)

    def put_scores(self, items: Mapping[str, Mapping[str, Any]]) -> None:
        """Store ``{key: {label: score}}`` in one committed transaction."""
        self._put("scores", items)

    def stats(self) -> CacheStats:
        """Row counts of both tables plus this instance's hit/miss counters."""
        self._check_fork()
        with self._lock:
            conn = self._connection()
            try:
                counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(exc) from exc
        return CacheStats(
            path=str(self.path), generations=counts["generations"], scores=counts["scores"],
            generation_hits=self.hits["generations"], generation_misses=self.misses["generations"],
            score_hits=self.hits["scores"], score_misses=self.misses["scores"])

    def close(self) -> None:
        """Close this process's connection; further use raises CacheError. Idempotent."""
        self._check_fork()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._closed = True

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        """Pickles as its directory (for spawned workers); the copy opens its own connection."""
        return {"directory": str(self.directory)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["directory"])

    def __repr__(self) -> str:
        return f"ResultCache({str(self.directory)!r})"


class NullCache:
    """The ``--no-cache`` stand-in: same interface, stores nothing, every lookup misses.

    >>> c = NullCache()
    >>> c.put_generations({"k": {}}); c.get_generations(["k"]), c.misses["generations"]
    ({}, 1)
    """

    directory = None
    path = None

    def __init__(self) -> None:
        self.hits = {t: 0 for t in TABLES}
        self.misses = {t: 0 for t in TABLES}

    def _miss(self, table: str, keys: Sequence[str]) -> dict[str, dict]:
        self.misses[table] += len(_unique(keys))
        return {}

    def get_generations(self, keys: Sequence[str]) -> dict[str, dict]:
        """Always ``{}``."""
        return self._miss("generations", keys)

    def put_generations(self, items: Mapping[str, Mapping[str, Any]]) -> None:
        """Discards ``items``."""

    def get_scores(self, keys: Sequence[str]) -> dict[str, dict]:
        """Always ``{}``."""
        return self._miss("scores", keys)

    def put_scores(self, items: Mapping[str, Mapping[str, Any]]) -> None:
        """Discards ``items``."""

    def stats(self) -> CacheStats:
        """Zero rows; miss counters of this instance."""
        return CacheStats(path=None, generations=0, scores=0,
                          generation_misses=self.misses["generations"],
                          score_misses=self.misses["scores"])

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> NullCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "NullCache()"
