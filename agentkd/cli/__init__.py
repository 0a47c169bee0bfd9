"""The `agentkd` command. Heavy modules are imported inside each command, so `--help` is instant.

One module per command group; importing it registers its commands on the shared `app` (in `common`), so the
import order below is the order `--help` lists them in.
"""

from __future__ import annotations

import sys

from agentkd.cli.common import app

# isort: off
from agentkd.cli import play, collect, eval, demo, bench, store, train, principles, view, serve  # noqa: F401,E501  (registration)
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
