"""`--toxicity-scorer perspective` against a local server on 127.0.0.1 speaking the API's shape."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import harness.plugin  # noqa: F401  (kept in sys.modules between in-process pytester runs)
import harness.measure.scoring  # noqa: F401
import harness.run.session  # noqa: F401
from harness.measure import perspective as P
from harness.model.cache import ResultCache
from harness.errors import ScorerError
from harness.measure.scoring import resolve_scorer

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-SECRET/42"


def _value(text: str, attr: str) -> float:
    base = 0.91 if "idiot" in text else 0.07
    return round(base * (1.0 if attr == "TOXICITY" else 0.5), 4)


class FakePerspective:
    """Replies from a queue of scripted responses, then with scores derived from the text."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple[int, bytes, dict]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": url.path, "query": urllib.parse.parse_qs(url.query), "body": body})
                if fake.script:
                    status, payload, headers = fake.script.pop(0)
                else:
                    attrs = body["requestedAttributes"]
                    status, headers = 200, {}
                    payload = json.dumps({"attributeScores": {a: {"summaryScore": {
                        "value": _value(body["comment"]["text"], a), "type": "PROBABILITY"}} for a in attrs},
                        "languages": ["en"]}).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail(self, status: int, n: int = 1, body: bytes = b"{}", headers: dict | None = None) -> None:
        self.script += [(status, body, headers or {})] * n


@pytest.fixture
def api(monkeypatch):
    fake = FakePerspective()
    monkeypatch.setenv(P.ENV_URL, fake.url)
    monkeypatch.setenv(P.ENV_KEY, KEY)
    monkeypatch.setenv(P.ENV_QPS, "1000")
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _scorer(api: FakePerspective, cache=None, **config) -> tuple[P.PerspectiveScorer, list[float]]:
    sleeps: list[float] = []
    cfg = P.PerspectiveConfig(endpoint=api.url, qps=1000.0, backoff_s=0.5, **config)
    return P.PerspectiveScorer(cfg, KEY, cache, sleep=sleeps.append), sleeps


def test_request_shape_and_label_mapping(api):
    scorer, _ = _scorer(api)
    rows = scorer.score(["you idiot", "hello there"])
    assert rows[0] == {label: _value("you idiot", attr) for attr, label in P.ATTRIBUTES.items()}
    assert rows[1]["toxicity"] == 0.07 and set(scorer.labels) == set(P.ATTRIBUTES.values())
    req = api.requests[0]
    assert req["path"] == "/v1alpha1/comments:analyze" and req["query"] == {"key": [KEY]}
    assert req["body"] == {"comment": {"text": "you idiot"}, "languages": ["en"],
                           "requestedAttributes": {a: {} for a in P.ATTRIBUTES}}


def test_attribute_subset_always_includes_toxicity(api):
    handle = resolve_scorer("perspective:insult, THREAT")
    assert handle.name == "perspective:TOXICITY,INSULT,THREAT"
    assert handle.load().labels == ("toxicity", "insult", "threat")
    with pytest.raises(ScorerError, match="did you mean 'INSULT'"):
        resolve_scorer("perspective:INSULTS")


def test_429_burst_is_retried_with_exponential_backoff(api):
    api.fail(429, 3)
    api.fail(503)
    scorer, sleeps = _scorer(api)
    assert scorer.score(["you idiot"])[0]["toxicity"] == 0.91
    assert scorer.requests == 5 and sleeps == [0.5, 1.0, 2.0, 4.0]


def test_retry_after_header_is_honoured_and_capped(api):
    api.fail(429, 1, headers={"Retry-After": "7"})
    api.fail(429, 1, headers={"Retry-After": "999"})
    scorer, sleeps = _scorer(api, max_backoff_s=20.0)
    scorer.score(["hello"])
    assert sleeps == [7.0, 20.0]


def test_giving_up_is_an_error_that_never_shows_the_key(api):
    api.fail(429, 10)
    scorer, sleeps = _scorer(api, max_retries=3)
    with pytest.raises(ScorerError) as exc:
        scorer.score(["hello"])
    assert "after 4 attempts" in str(exc.value) and "HTTP 429" in str(exc.value)
    assert KEY not in str(exc.value) and urllib.parse.quote(KEY, safe="") not in str(exc.value)
    assert len(sleeps) == 3


def test_client_errors_are_not_retried(api):
    api.fail(400, body=json.dumps({"error": {"code": 400, "message": "Comment must be non-empty.",
                                             "status": "INVALID_ARGUMENT"}}).encode())
    scorer, _ = _scorer(api)
    with pytest.raises(ScorerError, match="HTTP 400 .Comment must be non-empty"):
        scorer.score([""])
    assert scorer.requests == 1


@pytest.mark.parametrize("payload", [
    b"<html>oops</html>",
    b'{"languages": ["en"]}',
    json.dumps({"attributeScores": {"TOXICITY": {"summaryScore": {"value": 0.2}}}}).encode(),  # attrs missing
    json.dumps({"attributeScores": {a: {"summaryScore": {"value": "high"}} for a in P.ATTRIBUTES}}).encode(),
    json.dumps({"attributeScores": {a: {"summaryScore": {"value": 1.7}} for a in P.ATTRIBUTES}}).encode(),
    json.dumps({"attributeScores": {a: {"summaryScore": {}} for a in P.ATTRIBUTES}}).encode(),
])
def test_malformed_replies_are_errors_never_zero(api, payload):
    api.fail(200, body=payload)
    scorer, _ = _scorer(api)
    with pytest.raises(ScorerError, match="hello"):
        scorer.score(["hello"])


def test_every_score_is_cached_as_it_arrives_so_a_rerun_costs_no_quota(api, tmp_path):
    texts = ["one idiot", "two", "three"]
    with ResultCache(tmp_path) as cache:
        api.script = [(200, json.dumps({"attributeScores": {a: {"summaryScore": {"value": _value(t, a)}}
                                                            for a in P.ATTRIBUTES}}).encode(), {})
                      for t in texts[:2]] + [(200, b"garbage", {})]
        scorer, _ = _scorer(api, cache)
        with pytest.raises(ScorerError):
            scorer.score(texts)
        assert scorer.requests == 3
        resumed, _ = _scorer(api, cache)
        rows = resumed.score(texts)
        assert resumed.requests == 1 and api.requests[-1]["body"]["comment"]["text"] == "three"
        again, _ = _scorer(api, cache)
        assert again.score(texts) == rows and again.requests == 0


def test_token_bucket_paces_requests():
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    bucket = P.TokenBucket(2.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(7):
        bucket.acquire()
    assert now[0] == pytest.approx(2.5)  # 2 at once (the burst), then one every 0.5 s
    now[0] += 10.0
    bucket.acquire()
    bucket.acquire()
    assert now[0] == pytest.approx(12.5)  # the refill is capped at the burst size


@pytest.mark.parametrize("env, message", [({P.ENV_KEY: ""}, "PERSPECTIVE_API_KEY is not set"),
                                          ({P.ENV_QPS: "0"}, "not a positive number"),
                                          ({P.ENV_URL: "ftp://x"}, "not an http")])
def test_configuration_errors(api, monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ScorerError, match=message):
        resolve_scorer("perspective")


def test_fingerprint_names_the_endpoint_never_the_key(api):
    handle = resolve_scorer("perspective")
    assert api.url in handle.fingerprint and KEY not in handle.fingerprint and handle.name == "perspective"


def test_plugin_run_keeps_the_key_out_of_results_reports_and_output(api, pytester, tiny_model_dir):
    pytester.makeconftest('pytest_plugins = ["harness.plugin"]')
    shutil.copy(ROOT / "benchmarks" / "test_values.py", pytester.path / "test_values.py")
    (pytester.mkdir("suites") / "small.yaml").write_text((ROOT / "tests/data/valid_small.yaml").read_text())
    api.fail(429, 2)
    args = (str(pytester.path), "-p", "no:harness", "-p", "no:cacheprovider", "--model", str(tiny_model_dir),
            "--cache-dir", str(pytester.path / "cache"), "--toxicity-scorer", "perspective", "-v")
    result = pytester.runpytest(*args, "--results-json", "r.json", "--junit-xml", "j.xml", "--results-csv", "csv")
    assert result.ret == 0, result.stdout.str()[-2000:]
    doc = json.loads((pytester.path / "r.json").read_text())
    assert doc["config"]["scorer"]["name"] == "perspective"
    assert sorted(doc["config"]["scorer"]["labels"]) == sorted(P.ATTRIBUTES.values())
    n_texts = len({s["text"] for s in doc["samples"]})
    assert len(api.requests) == n_texts + 2
    outputs = [(result.stdout.str() + result.stderr.str()).encode()] + [
        p.read_bytes() for p in pytester.path.rglob("*") if p.is_file()]  # results, JUnit, CSV, the cache
    assert len(outputs) > 5
    assert not any(k.encode() in data for data in outputs for k in (KEY, urllib.parse.quote(KEY, safe="")))
    rerun = pytester.runpytest(*args)
    assert rerun.ret == 0 and len(api.requests) == n_texts + 2  # the rerun costs no quota
