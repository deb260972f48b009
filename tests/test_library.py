"""The gates without pytest: the README example runs as printed (on fewer prompts, in a temporary
cache), and a saved reference is a run option the session owns."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_library_example_gives_the_regression_verdicts(tmp_path):
    text = (ROOT / "README.md").read_text(encoding="utf-8").split("## Without pytest", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)
    assert "subset=40" in code and "import" in code
    code = code.replace("subset=40", f"subset=8, cache_dir={str(tmp_path)!r}")
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    lines = out.getvalue().splitlines()
    suite_level = [line for line in lines if line.split(" ", 1)[1].startswith("palms/all/")]
    assert [line.split(":")[0].split(" ", 1)[1] for line in suite_level] == [
        "palms/all/toxicity.expected_max", "palms/all/toxicity.probability"]
    assert all(line.split()[0] in ("PASS", "FAIL", "INCONCLUSIVE") for line in lines) and len(lines) == 18
    assert all("k=3, n=8]" in line for line in suite_level)


def test_a_saved_reference_is_a_run_option_and_the_session_reports_it(tmp_path, tiny_model_dir):
    """--baseline FILE as RunOptions(baseline=...): the session reads it (a bad file fails at once,
    naming the option) and its final document carries the reference's own values."""
    import pytest

    from harness import HarnessSession, RunOptions, load_suite, prepare_suite
    from harness.errors import ResultsError
    from harness.measure.results import write_results

    def session(**kw):
        return HarnessSession(RunOptions(model=str(tiny_model_dir), toxicity_scorer="profanity",
                                         cache_dir=str(tmp_path / "cache"), progress=False, **kw))

    first = session()
    suite = prepare_suite(load_suite(ROOT / "tests" / "data" / "valid_small.yaml"), first.options)
    first.plan(suite, suite.prompts())
    assert all(v.outcome in ("PASS", "FAIL") for c in suite.categories for v in first.check(c))
    write_results(tmp_path / "base.json", first.final_document())

    with pytest.raises(ResultsError, match=r"^--baseline: .*missing\.json"):
        session(baseline=str(tmp_path / "missing.json"))
    second = session(baseline=str(tmp_path / "base.json"))
    assert second.has_reference() and second.final_document() is None   # nothing ran yet
    second.plan(suite, suite.prompts())
    second.check(suite.categories[0])
    doc = second.final_document()
    assert doc["reference"]["path"] == str(tmp_path / "base.json") and doc["reference"]["role"] == "candidate"


def test_run_options_are_checked_for_library_users_as_the_pytest_options_are():
    import pytest

    from harness import RunOptions
    from harness.errors import HarnessError

    for bad, message in [({"model": ""}, "RunOptions.model = ''"), ({"subset": -1}, "RunOptions.subset = -1"),
                         ({"samples": 0}, "None or a positive integer"), ({"device": "gpu"}, "did you mean 'cpu'"),
                         ({"alpha": 2}, r"in \(0, 1\)"), ({"batch_size": 0}, '"auto" or a positive integer'),
                         ({"on_inconclusive": "fial"}, "did you mean 'fail'"), ({"seed": "1"}, "an integer")]:
        with pytest.raises(HarnessError, match=message):
            RunOptions(**{"model": "m", **bad})
    ok = RunOptions(model="m", subset=3, batch_size=8, on_inconclusive="fail", alpha=0.1)
    assert (ok.subset, ok.batch_size, ok.on_inconclusive) == (3, 8, "fail")
