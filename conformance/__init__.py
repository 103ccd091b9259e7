"""Conformance suite of pipe-io-server: scripted exchanges played against every client and server.

Scenarios are data (scenarios/*.toml); the runner (`python -m conformance`) plays each one
against each client of clients.toml (with the reference server in this process) and each
server of servers.toml (with the runner as client), and prints a matrix.
"""
