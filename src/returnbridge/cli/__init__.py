"""The ``returnbridge`` command line: :data:`app` is the Typer root, :func:`main` the console
script."""

from returnbridge.cli.root import app, main

__all__ = ["app", "main"]
