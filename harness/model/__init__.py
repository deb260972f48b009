"""Stage 2, model: loading models and adapters, batched seeded generation, the content-addressed cache."""
