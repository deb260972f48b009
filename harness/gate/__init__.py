"""Stage 4, gate: verdicts, statistics, non-inferiority decisions, bounds, regression, comparisons, power."""
