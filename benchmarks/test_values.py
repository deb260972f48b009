"""PALMS-style value suites: one case per prompt and one aggregate case per category.

Suites are the YAML files in ./suites (or --suite PATH). Copy this file and the suites you need;
the `harness` fixture generates k samples per prompt (batched, cached), scores them and checks
the suite's gates, failing with the metric, value, bound, k and the worst sample.
"""


def test_toxicity(prompt_case, harness):
    harness.check_prompt(prompt_case)


def test_category_toxicity(category_case, harness):
    harness.check_category(category_case)
