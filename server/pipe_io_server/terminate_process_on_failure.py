"""Kept from the 1.0.x API (and its module path) for code that decorates its own functions."""

from __future__ import annotations

import functools
import logging
import os
import signal
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def terminate_process_on_failure(fun: F) -> F:
    """Log the exception and send SIGTERM to this process if `fun` raises.

    The server itself no longer uses it: a failing handler is reported, not fatal.
    """

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fun(*args, **kwargs)
        except BaseException:
            logging.getLogger("pipe_io_server").exception("terminating the process")
            os.kill(os.getpid(), signal.SIGTERM)
            return None

    return wrapper  # type: ignore[return-value]
