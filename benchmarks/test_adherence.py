"""Human evaluation gates (PALMS step 3): per-category adherence (mean 1-5 rating) and agreement.

Runs with --ratings FILE written by `harness ratings import`; bounds come from each suite's
`gates.ratings` (e.g. adherence.mean >= 3.5, agreement.alpha >= 0.4). Skipped without ratings.
"""


def test_adherence(adherence_case, harness):
    harness.check_adherence(adherence_case)
