"""Chaos soak of the reference server: `python -m soak --duration 120 --seed 1`."""
