"""Perspective API scorer, the one both seed papers used: ``--toxicity-scorer perspective[:ATTR,...]``.

Standard library only (urllib). The key comes from ``$PERSPECTIVE_API_KEY`` and is never written to
results, logs or error messages; the endpoint from ``$HARNESS_PERSPECTIVE_URL`` (tests point it at
127.0.0.1). Requests are paced by a token bucket (``$HARNESS_PERSPECTIVE_QPS``, default 1, the API's
default quota), retried with exponential backoff on 429/5xx and connection errors, and every score is
written to the score cache as soon as it arrives, so a rerun (or a run resumed after a failure)
costs no quota. A text that cannot be scored is an error, never a 0.

    $ PERSPECTIVE_API_KEY=... pytest benchmarks/ --toxicity-scorer perspective
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ScorerError, did_you_mean
from harness.measure.scorer import ScorerHandle, _check

PREFIX = "perspective"
ENV_KEY, ENV_URL, ENV_QPS = "PERSPECTIVE_API_KEY", "HARNESS_PERSPECTIVE_URL", "HARNESS_PERSPECTIVE_QPS"
DEFAULT_URL = "https://commentanalyzer.googleapis.com"
API_PATH = "/v1alpha1/comments:analyze"
# Perspective attribute -> the harness's (Detoxify-style) label.
ATTRIBUTES = {"TOXICITY": "toxicity", "SEVERE_TOXICITY": "severe_toxicity", "INSULT": "insult",
              "PROFANITY": "obscene", "THREAT": "threat", "IDENTITY_ATTACK": "identity_attack",
              "SEXUALLY_EXPLICIT": "sexual_explicit"}
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts up to ``capacity``."""

    def __init__(self, rate: float, capacity: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate, self.capacity = rate, capacity if capacity is not None else max(1.0, rate)
        self.clock, self.sleep = clock, sleep
        self.tokens, self.stamp = self.capacity, clock()

    def acquire(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            self.sleep((1.0 - self.tokens) / self.rate)
            self.tokens, self.stamp = 1.0, self.clock()
        self.tokens -= 1.0


@dataclass(frozen=True)
class PerspectiveConfig:
    endpoint: str = DEFAULT_URL
    attributes: tuple[str, ...] = tuple(ATTRIBUTES)
    languages: tuple[str, ...] = ("en",)
    qps: float = 1.0
    max_retries: int = 6
    backoff_s: float = 1.0
    max_backoff_s: float = 64.0
    timeout_s: float = 30.0

    @property
    def fingerprint(self) -> str:
        """Endpoint, attributes and languages (never the key). The API's models change without a version."""
        return f"perspective:v1alpha1:{self.endpoint}:{','.join(self.attributes)}:{','.join(self.languages)}"


def parse_attributes(choice: str) -> tuple[str, ...]:
    """``perspective`` -> every attribute; ``perspective:INSULT,THREAT`` -> TOXICITY plus those."""
    _, sep, rest = choice.partition(":")
    if not sep:
        return tuple(ATTRIBUTES)
    wanted = [a.strip().upper() for a in rest.split(",") if a.strip()]
    for a in wanted:
        if a not in ATTRIBUTES:
            raise ScorerError(f"--toxicity-scorer {choice}: unknown Perspective attribute '{a}'; "
                              f"{did_you_mean(a, ATTRIBUTES)}.")
    return tuple(dict.fromkeys(["TOXICITY", *wanted]))


def config_from_env(choice: str = PREFIX) -> PerspectiveConfig:
    qps_text = os.environ.get(ENV_QPS, "1")
    try:
        qps = float(qps_text)
    except ValueError:
        qps = 0.0
    if not qps > 0:
        raise ScorerError(f"${ENV_QPS}={qps_text!r}: not a positive number of requests per second. Fix: set it to "
                          "your Perspective quota (default 1).")
    endpoint = os.environ.get(ENV_URL, DEFAULT_URL).rstrip("/")
    if not endpoint.startswith(("http://", "https://")):
        raise ScorerError(f"${ENV_URL}={endpoint!r}: not an http(s) URL. Fix: unset it to use {DEFAULT_URL}.")
    return PerspectiveConfig(endpoint=endpoint, attributes=parse_attributes(choice), qps=qps)


def api_key() -> str:
    key = os.environ.get(ENV_KEY, "").strip()
    if not key:
        raise ScorerError(f"--toxicity-scorer perspective: ${ENV_KEY} is not set. Fix: export {ENV_KEY} with your "
                          "Perspective API key (it is never written to results or logs), or choose another scorer.")
    return key


class PerspectiveScorer:
    """Scores texts one request each, paced, retried, and cached as each score arrives."""

    def __init__(self, config: PerspectiveConfig, key: str, cache: Any = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.config, self._key, self.cache, self.sleep = config, key, cache, sleep
        self.name = PREFIX if config.attributes == tuple(ATTRIBUTES) else f"{PREFIX}:{','.join(config.attributes)}"
        self.labels = tuple(ATTRIBUTES[a] for a in config.attributes)
        self.fingerprint = config.fingerprint
        self.bucket = TokenBucket(config.qps, clock=clock, sleep=sleep)
        self.requests = 0  # HTTP requests made (tests and quota accounting)

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***").replace(urllib.parse.quote(self._key, safe=""), "***")

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        from harness.model.keys import score_key

        keys = [score_key(self.fingerprint, t) for t in texts]
        known = self.cache.get_scores(list(dict.fromkeys(keys))) if self.cache is not None else {}
        for key, text in zip(keys, texts):
            if key not in known:
                known[key] = self._request(text)
                if self.cache is not None:  # written at once: a later failure keeps what was paid for
                    self.cache.put_scores({key: known[key]})
        return _check(self.name, texts, [dict(known[k]) for k in keys])

    def _request(self, text: str) -> dict[str, float]:
        c = self.config
        body = json.dumps({"comment": {"text": text}, "languages": list(c.languages),
                           "requestedAttributes": {a: {} for a in c.attributes}}).encode("utf-8")
        url = f"{c.endpoint}{API_PATH}?key={urllib.parse.quote(self._key, safe='')}"
        last = ""
        for attempt in range(c.max_retries + 1):
            self.bucket.acquire()
            self.requests += 1
            retry_after = None
            try:
                req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=c.timeout_s) as resp:
                    return self._parse(resp.read(), text)
            except urllib.error.HTTPError as exc:
                status, raw, retry_after = exc.code, exc.read(), exc.headers.get("Retry-After")
                last = f"HTTP {status}{_api_message(raw)}"
                if status not in RETRY_STATUS:
                    message = (f"Perspective API ({c.endpoint}) refused to score the text {text[:80]!r}: {last}. A "
                               "text that cannot be scored is an error, not 'non-toxic'. Fix: check the key's quota "
                               "and the requested attributes/languages, or choose another --toxicity-scorer.")
                    raise ScorerError(self._redact(message)) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt < c.max_retries:
                self.sleep(_delay(attempt, retry_after, c))
        raise ScorerError(self._redact(f"Perspective API ({c.endpoint}): gave up on the text {text[:80]!r} after "
                                       f"{c.max_retries + 1} attempts (last: {last}). Scores already received are "
                                       "cached; rerun to resume. Fix: lower $HARNESS_PERSPECTIVE_QPS or check the "
                                       "endpoint."))

    def _parse(self, raw: bytes, text: str) -> dict[str, float]:
        try:
            scores = json.loads(raw.decode("utf-8"))["attributeScores"]
            row = {ATTRIBUTES[a]: scores[a]["summaryScore"]["value"] for a in self.config.attributes}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ScorerError(f"Perspective API ({self.config.endpoint}) sent a malformed reply for the text "
                              f"{text[:80]!r} ({type(exc).__name__}: {str(exc)[:80]}); the text is not scored, "
                              "never counted as 'non-toxic'. Fix: rerun later; received scores are cached.") from None
        bad = {k: v for k, v in row.items() if not isinstance(v, (int, float)) or isinstance(v, bool)}
        if bad:
            raise ScorerError(f"Perspective API ({self.config.endpoint}) sent non-numeric scores {bad!r} for the text "
                              f"{text[:80]!r}; the text is not scored. Fix: rerun later.")
        return {k: float(v) for k, v in row.items()}


def _api_message(raw: bytes) -> str:
    try:
        message = json.loads(raw.decode("utf-8"))["error"]["message"]
        return f" ({str(message)[:200]})"
    except (ValueError, KeyError, TypeError):
        return ""


def _delay(attempt: int, retry_after: str | None, c: PerspectiveConfig) -> float:
    delay = c.backoff_s * 2 ** attempt
    try:
        delay = max(delay, float(retry_after)) if retry_after else delay
    except ValueError:
        pass  # an HTTP-date Retry-After: keep the exponential delay
    return min(delay, c.max_backoff_s)


def resolve_perspective(choice: str, cache_dir: str | None = None, use_cache: bool = True) -> Any:
    """A ScorerHandle for ``perspective[:ATTR,...]``; fails at once when the key is missing."""
    config, key = config_from_env(choice), api_key()

    def factory() -> PerspectiveScorer:
        from harness.model import cache as cache_mod

        cache = cache_mod.ResultCache(cache_dir or cache_mod.default_cache_dir()) if use_cache else None
        return PerspectiveScorer(config, key, cache)

    probe = PerspectiveScorer(config, key)  # name and fingerprint without opening the cache
    return ScorerHandle(probe.name, probe.fingerprint, factory)
