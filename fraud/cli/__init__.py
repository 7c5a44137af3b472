"""The `fraud` command."""

from fraud.cli.app import main

__all__ = ["main"]
