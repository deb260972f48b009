"""Stage 3, measure: scorers, toxicity metrics, bias, BOLD, perplexity, and the results document."""
