"""Benchmarks of the server against pipe-io-server 1.0.3 and the floors: `python -m bench`."""
