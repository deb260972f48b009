"""Co-occurrence bias probes (GPT-3), BOLD subsets and held-out perplexity.

One case per category and one per suite for every suite of kind cooccurrence, bold or perplexity
in ./suites, gated by the suite's `gates.category` / `gates.suite`. Perplexity regressions against
a reference run in test_regression.py.
"""


def test_analysis(analysis_case, harness):
    harness.check_analysis(analysis_case)
