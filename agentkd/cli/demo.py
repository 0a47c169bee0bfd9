"""`agentkd demo`: the whole pipeline on this machine (its options are :class:`agentkd.demo.DemoConfig`'s)."""

from __future__ import annotations

from agentkd.cli.common import _fail, _notes, app
from agentkd.cli.options import config_options
from agentkd.demo import DemoConfig
from agentkd.errors import AgentKDError


@app.command()
@config_options(DemoConfig)
def demo(config: DemoConfig) -> None:
    """The whole pipeline on this machine: expert data, student SFT (and REDI), evaluation report."""
    from rich.console import Console

    from agentkd.demo import run_demo

    try:
        with _notes():
            run_demo(config, Console(soft_wrap=True))
    except AgentKDError as exc:  # StoreError, UnknownEnvironmentError, StudentNotFound, ...
        _fail(str(exc))
