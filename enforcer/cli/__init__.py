"""The ``enforcer`` command line: one module per command group, attached by :mod:`enforcer.cli.root`.

``enforcer`` (the console script) is :func:`main`; :data:`cli` is the root click group.
"""

from __future__ import annotations

from enforcer.cli.root import cli, main

__all__ = ["cli", "main"]
