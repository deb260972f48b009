"""Stage 5, palms: the PALMS loop around the gates: Q&A datasets, fine-tuning, SGEAT self-generation, human ratings."""
