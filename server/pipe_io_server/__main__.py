"""`python -m pipe_io_server` is the `pipe-io-server` command."""

import sys

from .cli import main

sys.exit(main())
