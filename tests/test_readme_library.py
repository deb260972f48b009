"""The README's "Without pytest" example runs as printed (on fewer prompts, in a temporary cache)."""

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
