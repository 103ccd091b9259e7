"""pipe-io-server: a message queue over two named pipes, one message per line."""

__version__ = "2.0.0.dev0"

from .backlog import BacklogFull
from .compat import terminate_process_on_failure
from .server import PipeIOServer, PipeReaderServer, PipeWriterServer
from .stats import Stats

__all__ = [
    "BacklogFull",
    "PipeIOServer",
    "PipeReaderServer",
    "PipeWriterServer",
    "Stats",
    "terminate_process_on_failure",
]
