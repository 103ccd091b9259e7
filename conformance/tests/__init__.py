"""The suite's own tests: broken clients caught, ports on the command line, reports."""
