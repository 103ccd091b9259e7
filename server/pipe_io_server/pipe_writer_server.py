"""The 1.0.x module path of PipeWriterServer, so code written for 1.0.x imports it unchanged."""

from .pipe import DEFAULT_PERMISSIONS, Pipe
from .server import PipeWriterServer

__all__ = ["DEFAULT_PERMISSIONS", "Pipe", "PipeWriterServer"]
