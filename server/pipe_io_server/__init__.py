"""pipe-io-server: a message queue over two named pipes, one message per line."""

__version__ = "2.0.0.dev0"

from .backlog import BacklogFull
from .server import PipeIOServer, PipeReaderServer, PipeWriterServer
from .stats import Stats

# Imported from its own submodule, so that importing the submodule later (as 1.0.x code does)
# leaves the package attribute naming the function, not the module.
from .terminate_process_on_failure import terminate_process_on_failure

__all__ = [
    "BacklogFull",
    "PipeIOServer",
    "PipeReaderServer",
    "PipeWriterServer",
    "Stats",
    "terminate_process_on_failure",
]
