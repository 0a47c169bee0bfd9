"""The `agentkd` command. Heavy modules are imported inside each command, so `--help` is instant.

One module per command group; importing it registers its commands on the shared `app` (in `common`), so the
import order below is the order `--help` lists them in.
"""

from __future__ import annotations

import signal
import sys

from agentkd.cli.common import app

# isort: off
from agentkd.cli import play, collect, eval, demo, bench, store, train, principles, view, serve  # noqa: F401,E501  (registration)
# isort: on

__all__ = ["app", "main"]


def _stop_like_ctrl_c(signum: int, frame: object) -> None:
    signal.raise_signal(signal.SIGINT)


def main() -> None:
    # `kill PID`, `timeout`, a scheduler ending a job: SIGTERM is handled as Ctrl-C, so that a collection or an
    # evaluation stops playing and still stores every episode that finished (the default SIGTERM ends the
    # process where it stands, losing those still waiting for the writer). A second signal stops at once.
    # A shell that starts a job in the background ignores SIGINT in it; SIGTERM must still stop it.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
