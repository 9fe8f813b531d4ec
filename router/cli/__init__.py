"""The `switchyard` command line (``main``): serve, check-config, keys, usage, reports, policies..."""

from router.cli.main import cli, main

__all__ = ["cli", "main"]
