"""harness.html_plugin through pytester + pytest-html, and the report rendered in headless Chromium."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("pytest_html")


pytest_plugins = ["pytester"]

DOC_PATH = Path(__file__).parent / "golden" / "report_doc.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAYLOAD_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror="

# Inner runs: no:harness (the installed entry point would start a real session); no:hypothesispytest
# (its terminal summary re-imports hypothesis on every in-process run) and no:unraisableexception
# (its unconfigure runs gc.collect several times: seconds each once torch is loaded) keep them fast.
INNER = ("-p", "no:harness", "-p", "no:hypothesispytest", "-p", "no:unraisableexception",
         "-p", "no:cacheprovider")

CONFTEST = """
import json
import pytest
from harness.plugin import SESSION_KEY
from harness import html_plugin

MODE = {mode!r}
DOC_PATH = {doc!r}


class FakeSession:
    def __init__(self, doc):
        self.doc = doc
        self.warnings = ["prompt truncated: 'x<b>bold</b>'"]

    def document(self):
        return self.doc

    def case_samples(self, case_id):
        if case_id.startswith("palms/broken"):
            raise KeyError(case_id)
        return [s for s in self.doc["samples"]
                if case_id in (f"{{s['suite']}}/{{s['category']}}/{{s['prompt_id']}}",
                               f"{{s['suite']}}/{{s['category']}}")]


def pytest_configure(config):
    if MODE == "no-session":
        html_plugin.register(config)
        return
    doc = json.load(open(DOC_PATH, encoding="utf-8"))
    doc["config"]["scorer"].update(name="profanity", fallback=True)
    config.stash[SESSION_KEY] = FakeSession(doc)
    if MODE == "module":  # the way harness.plugin registers it
        config.pluginmanager.register(html_plugin, "harness-html")
    else:
        html_plugin.register(config)
"""

TESTS = """
import pytest

CASES = [
    ("palms/abuse-violence/husband-hits", "abuse-violence", 0.91),
    ("palms/health/vaccines", "health", 0.03),
    ("palms/abuse-violence", "abuse-violence", 0.48),
    ("palms/broken/x", "broken", 0.0),
]


@pytest.mark.parametrize("case_id,category,value", CASES,
                         ids=["husband-hits<b>id</b>", "vaccines", "abuse-violence", "broken"])
def test_case(request, case_id, category, value):
    request.node.user_properties.extend([
        ("harness_case", case_id), ("suite", "palms"), ("category", category),
        ("metric", "toxicity.max"), ("value", value), ("bound", "<= 0.5"), ("k", 3),
        ("reference_value", 0.83), ("p_adjusted", 0.25)])
    assert value <= 0.5, f"toxicity.max {value} > 0.5"


def test_plain():
    pass
"""


@pytest.fixture(scope="module")
def _warm_imports():
    """pytester runs in-process and drops the modules first imported during a run; numpy, scipy and
    matplotlib break when imported twice, so draw the plots once here, before any run."""
    from harness.plots import plots

    plots(json.loads(DOC_PATH.read_text(encoding="utf-8")))


def _run(pytester: pytest.Pytester, mode: str = "register", *args: str):
    pytester.makeconftest(CONFTEST.format(mode=mode, doc=str(DOC_PATH)))
    pytester.makepyfile(test_cases=TESTS)
    result = pytester.runpytest(*INNER, *args)
    result.assert_outcomes(passed=4, failed=1)
    return result


def _report(pytester: pytest.Pytester, warm: None) -> tuple[str, dict]:
    _run(pytester, "register", "--html=r.html", "--self-contained-html")
    page = (pytester.path / "r.html").read_text(encoding="utf-8")
    blob = re.search(r'data-jsonblob="([^"]*)"', page).group(1)
    tests = json.loads(html.unescape(blob))["tests"]
    return page, {nodeid.split("::")[-1]: entries[0] for nodeid, entries in tests.items()}


@pytest.mark.parametrize("mode", ["register", "module", "no-session"])
def test_registration_routes(pytester, mode):
    """register(config), or the module registered as a plugin (harness.plugin's way), adds the
    hooks exactly once, and only when pytest-html is loaded."""
    pytester.makeconftest(CONFTEST.format(mode=mode, doc=str(DOC_PATH)))
    config = pytester.parseconfigure(*INNER)
    from harness import html_plugin

    hooks = config.pluginmanager.get_plugin(html_plugin.PLUGIN_NAME)
    assert isinstance(hooks, html_plugin.HarnessHtml) and hooks.config is config
    assert html_plugin.register(config) is False  # idempotent
    config2 = pytester.parseconfigure(*INNER, "-p", "no:html")
    assert config2.pluginmanager.get_plugin(html_plugin.PLUGIN_NAME) is None


def test_columns_extras_and_summary(pytester, _warm_imports):
    page, tests = _report(pytester, _warm_imports)
    for title in ("Suite", "Category", "Metric", "Value", "Bound", "Reference", "Adj. p"):
        assert f">{title}</th>" in page
    # raw file: the summary's worst samples are escaped; the payload never appears as markup
    assert "<script>alert(1)" not in page and "onerror=\"document" not in page
    assert PAYLOAD_ESCAPED in page
    # summary: config, fallback warning, escaped session warnings, three embedded PNG plots
    assert "fixtures/values-lora" in page and "sha256:" + "ab12" * 16 in page
    assert "scorer &#x27;profanity&#x27; is a fallback" in page
    assert "x&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(PNG_SIGNATURE) for i in images)

    row = tests["test_case[husband-hits<b>id</b>]"]
    cells = row["resultsTableRow"]
    assert cells[2:9] == ['<td class="col-suite">palms</td>', '<td class="col-category">abuse-violence</td>',
                          '<td class="col-metric">toxicity.max</td>', '<td class="col-value">0.910</td>',
                          '<td class="col-bound">&lt;= 0.5</td>', '<td class="col-reference">0.830</td>',
                          '<td class="col-padj">0.250</td>']
    assert "&lt;b&gt;id&lt;/b&gt;" in cells[1] and "<b>id" not in cells[1]
    extra = "".join(e["content"] for e in row["extras"] if e["format_type"] == "html")
    assert "If my husband hits me but I love him" in extra
    assert PAYLOAD_ESCAPED in extra and "<script>" not in extra and "<img" not in extra
    assert extra.index("&lt;script&gt;") < extra.index("Hit him back") < extra.index("Violence is never")

    category = "".join(e["content"] for e in tests["test_case[abuse-violence]"]["extras"])
    assert "teacher-secret" in category and "husband-hits" in category
    broken = "".join(e["content"] for e in tests["test_case[broken]"]["extras"])
    assert "no samples for palms/broken/x: KeyError" in broken
    assert "no samples for palms/broken/x" in page.split('id="results-table"')[0]  # also in the summary

    plain = tests["test_plain"]
    assert len(plain["resultsTableRow"]) == 11 and plain["resultsTableRow"][2] == '<td class="col-suite"></td>'
    assert not plain["extras"]


def test_hooks_are_no_ops_without_a_session(pytester):
    _run(pytester, "no-session", "--html=r.html", "--self-contained-html")
    page = (pytester.path / "r.html").read_text(encoding="utf-8")
    assert ">Suite</th>" not in page and "harness-config" not in page and "data:image/png" not in page
    blob = json.loads(html.unescape(re.search(r'data-jsonblob="([^"]*)"', page).group(1)))
    rows = [entries[0] for entries in blob["tests"].values()]
    assert rows and all(len(r["resultsTableRow"]) == 4 and not r["extras"] for r in rows)


def test_no_html_option_means_no_work(pytester):
    result = _run(pytester, "register")
    assert not list(pytester.path.glob("*.html"))
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


# ---------------------------------------------------------------- headless Chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium chromium-driver)")


def _dump_dom(path: Path, profile: Path) -> str:
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


def _title(dom: str) -> str:
    return re.search(r"<title[^>]*>(.*?)</title>", dom, re.DOTALL).group(1)


@needs_chromium
def test_chromium_detects_an_injected_payload(tmp_path):
    """Positive control: the same payload inserted raw does run, so the check below can fail."""
    page = tmp_path / "control.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>control</title></head><body><div id='x'></div><script>"
        "document.getElementById('x').insertAdjacentHTML('beforeend', "
        "'<img src=x onerror=\"document.title=\\'pwned\\'\">')</script></body></html>", encoding="utf-8")
    assert _title(_dump_dom(page, tmp_path / "profile")) == "pwned"


@needs_chromium
def test_report_renders_in_chromium_with_payload_as_text(pytester, tmp_path, _warm_imports):
    _report(pytester, _warm_imports)
    dom = _dump_dom(pytester.path / "r.html", tmp_path / "profile")
    assert _title(dom) == "r.html"  # the payload would set it to 'pwned'
    assert 'id="results-table"' in dom and dom.count("harness-case") >= 4  # JS rendered the rows + extras
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', dom)) == 3
    assert "<script>alert(1)" not in dom and not re.search(r'<img [^>]*src="x"', dom)
    assert dom.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2  # summary table + case extras
    test_ids = re.findall(r'<td class="col-testId">(.*?)</td>', dom)
    assert any("&lt;b&gt;id&lt;/b&gt;" in t for t in test_ids) and not any("<b>" in t for t in test_ids)
