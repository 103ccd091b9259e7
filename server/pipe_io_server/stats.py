"""Counters that make every discarded or repeated byte visible to the application."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Stats:
    received: int = 0  # messages handed to handle_message (or the recv_message queue)
    sent: int = 0  # messages accepted by send_message, dropped_at_stop included
    redelivered: int = 0  # messages written again because their reader left before taking them
    tails_discarded: int = 0  # unterminated tails left by clients that closed in_pipe
    oversized_discarded: int = 0  # incoming messages longer than max_message_size
    handler_errors: int = 0  # exceptions raised by handle_message
    dropped_at_stop: int = 0  # outbound messages never written because the server stopped
    unhandled_at_stop: int = 0  # messages read from in_pipe, not handled because stop() came
    # Why the server stopped itself: what a server thread could not handle (a BaseException
    # from handle_message, an internal error). None while running and after a plain stop().
    error: str | None = None
