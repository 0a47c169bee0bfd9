"""`agentkd view`: browse an experience store's trajectories in the browser."""

from __future__ import annotations

import typer

from agentkd.cli.common import DEFAULT_STORE, _fail, _open_store, app


@app.command("view")
def view_cmd(
    store: str = typer.Option(DEFAULT_STORE, help="Store folder or Chroma server URL."),
    port: int = typer.Option(8765, min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: reachable from other machines)."),
) -> None:
    """Serve a read-only web viewer of the store: the trajectories with filters, transcripts, side by side."""
    from agentkd.errors import AgentKDError
    from agentkd.view.app import serve

    experience = _open_store(store)
    print(f"agentkd view: http://{host}:{port}/ ({store}, {experience.count()} trajectories); Ctrl-C stops it",
          flush=True)
    try:
        serve(experience, host=host, port=port, source=store)
    except AgentKDError as exc:
        _fail(str(exc))
