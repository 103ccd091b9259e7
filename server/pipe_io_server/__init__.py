"""pipe-io-server: a message queue over two named pipes, one message per line."""

__version__ = "2.0.0.dev0"
