"""The 1.0.x module path of PipeReaderServer, so code written for 1.0.x imports it unchanged."""

from .pipe import DEFAULT_PERMISSIONS, Pipe
from .server import PipeReaderServer

__all__ = ["DEFAULT_PERMISSIONS", "Pipe", "PipeReaderServer"]
