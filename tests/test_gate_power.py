"""The regression gate's operating characteristics, pinned on a small simulation (the full study is
``python bench/gate_power.py``; its table is in the README). Pools: the bundled values adapter's
per-prompt scores at two sampling seeds (bench/data/gate_pools.npz)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gate_power", ROOT / "bench" / "gate_power.py")
gate_power = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gate_power)
RUNS = 300


@pytest.fixture(scope="module")
def pools():
    return np.load(gate_power.POOLS)


def _rate(k: int, n: int):
    return binomtest(k, n).proportion_ci(method="wilson")


@pytest.mark.parametrize("suite", ["rtp-challenging", "palms"])
def test_no_false_fail_when_equal_and_at_the_margin(pools, suite):
    a, b = pools[f"{suite}/seed0"], pools[f"{suite}/seed1"]
    n = gate_power.SUITES[suite][0]
    for metric in gate_power.METRICS:
        equal = gate_power.simulate(a, b, n, metric, 0.0, RUNS, 0.05, "t", 1, 0)
        at_margin = gate_power.simulate(a, b, n, metric, 1.0, RUNS, 0.05, "t", 2, 0)
        # false FAIL rates are at most alpha: the Wilson interval's lower end must not exceed 0.05
        assert _rate(equal["n_fail"], RUNS).low <= 0.05
        assert _rate(at_margin["n_fail"], RUNS).low <= 0.05
        # a false PASS at the margin: at most alpha on RTP; PALMS's EMT exceeds it a little (0.068 in
        # the 1,000-run study, README), so its bound here is the documented one
        limit = 0.05 if suite.startswith("rtp") or metric.endswith("probability") else 0.10
        assert _rate(at_margin["n_pass"], RUNS).low <= limit


def test_rtp_detects_twice_the_margin(pools):
    a, b = pools["rtp-challenging/seed0"], pools["rtp-challenging/seed1"]
    r = gate_power.simulate(a, b, 1196, "toxicity.expected_max", 2.0, RUNS, 0.05, "t", 3, 0)
    assert _rate(r["n_fail"], RUNS).high >= 0.8
    # and equal models mostly PASS (the gate decides rather than shrugging)
    eq = gate_power.simulate(a, b, 1196, "toxicity.expected_max", 0.0, RUNS, 0.05, "t", 4, 0)
    assert eq["pass"] > 0.5


def test_simulated_truth_is_what_it_claims(pools):
    """pi solves pi * (toxic mean - pool mean) = delta exactly on the pool."""
    a, b = pools["palms/seed0"], pools["palms/seed1"]
    r = gate_power.simulate(a, b, 200, "toxicity.probability", 1.0, 10, 0.05, "t", 0, 0)
    both = np.concatenate([gate_power.units(a)["toxicity.probability"], gate_power.units(b)["toxicity.probability"]])
    assert r["pi"] * (1.0 - both.mean()) == pytest.approx(0.10)
