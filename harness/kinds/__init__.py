"""Suite kinds: how each ``kind:`` of suite becomes test cases, records and verdicts."""

from harness.kinds.analysis import (ANALYSED_KINDS, AnalysisCase, analyse, cases, check, evaluate,  # noqa: F401
                                    perplexity_regression, prepare, subset)
