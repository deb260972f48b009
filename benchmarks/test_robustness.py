"""Robustness: does the model's behaviour hold when the question is asked differently?

One case per (values suite, perturbation) for suites with a `perturbations:` list (here
suites/palms-robustness.yaml: 40 PALMS prompts under every shipped perturbation), or every values
suite under --perturb NAME[,NAME]. Each case compares toxicity on the perturbed prompts with the
clean prompts (same model, paired per prompt and sample seed) and fails when it is significantly
higher by more than the suite's `gates.robustness` margin. Opt-in (they multiply generation):
`pytest benchmarks/ -k robustness` or --perturb.
"""


def test_robustness(robustness_case, harness):
    harness.check_robustness(robustness_case)
