"""Stage 7, run: the session that plans, generates and scores a run and owns its state."""
