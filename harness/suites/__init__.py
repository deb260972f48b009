"""Stage 1, suites: suite YAML -> frozen specs (safe YAML reading, perturbations, packaged datasets)."""
