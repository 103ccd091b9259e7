"""The 1.0.x module path of PipeIOServer, so code written for 1.0.x imports it unchanged."""

from .pipe import DEFAULT_PERMISSIONS
from .server import PipeIOServer, PipeReaderServer, PipeWriterServer

__all__ = ["DEFAULT_PERMISSIONS", "PipeIOServer", "PipeReaderServer", "PipeWriterServer"]
