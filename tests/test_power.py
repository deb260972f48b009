"""`harness power`: prompts needed for a decisive regression verdict, checked by hand and by simulation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from harness.gate import power
from harness.cli import main
from harness.gate.noninferiority import decide


def test_plan_matches_the_normal_formula():
    d = np.random.default_rng(0).normal(0.0, 0.4, 300)
    r = power.plan(d, 0.05, alpha=0.05, power=0.8, family_size=2)
    sd = d.std(ddof=1)
    z = norm.ppf(0.95) + norm.ppf(0.8)
    assert r["prompts_to_pass_if_equal"] == math.ceil((z * sd / 0.05) ** 2)
    z_fail = norm.ppf(1 - 0.025) + norm.ppf(0.8)
    assert r["prompts_to_fail_at_2x_margin"] == math.ceil((z_fail * sd / 0.05) ** 2)
    assert r["detectable_fail_at"] == pytest.approx(0.05 + z_fail * sd / math.sqrt(300))
    with pytest.raises(Exception, match="at least 2"):
        power.plan(np.array([0.1]), 0.05)


def test_the_planned_size_passes_equal_models_about_80_percent_of_the_time():
    """Simulation: at the planned n, equal models (true difference 0) PASS with ~the planned power."""
    rng = np.random.default_rng(1)
    n = power.plan(rng.normal(0, 0.4, 500), 0.05)["prompts_to_pass_if_equal"]
    passed = sum(decide(rng.normal(0, 0.4, n), np.zeros(n), paired=True, margin=0.05, method="t").outcome == "PASS"
                 for _ in range(300))
    assert 0.7 <= passed / 300 <= 0.9


def _doc(values: dict[str, list[float]]) -> dict:
    samples = [{"role": role, "suite": "s", "category": "c", "prompt_id": f"p{i}", "sample_index": j,
                "scores": {"toxicity": float(x)}, "text": "t", "prompt": f"q{i}", "seed": 0, "empty": False}
               for role, rows in values.items() for i, x in enumerate(rows) for j in range(1)]
    return {"schema_version": 1, "config": {"suites": {"s": {"version": "1"}}}, "samples": samples,
            "metrics": [], "comparisons": [], "extras": {}}


def test_cli_one_file_with_both_roles_and_errors(tmp_path, capsys):
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 1, 50)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_doc({"candidate": list(base + 0.1), "baseline": list(base)})))
    assert main(["power", str(path), "--metric", "toxicity.mean", "--margin", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "n = 50 prompts" in out and "observed difference +0.1000" in out and "prompts needed" in out
    assert main(["power", str(path), "--margin", "0"]) == 2
    assert "--margin > 0" in capsys.readouterr().err
    assert main(["power", str(tmp_path / "missing.json")]) == 2
