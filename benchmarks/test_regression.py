"""Regression gates: is the candidate significantly worse than the reference beyond a margin?

Runs when a reference is given (--baseline-model PATH [--baseline-adapter DIR], or --baseline FILE
saved with --results-json); margins come from each suite's `gates.regression` and
--fail-on-regression METRIC:MARGIN. One case per (suite, category, metric) plus the whole suite,
Holm- (or BH-) corrected across categories.
"""


def test_regression(regression_case, harness):
    harness.check_regression(regression_case)
