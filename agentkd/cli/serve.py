"""`agentkd serve`: a student behind an OpenAI-compatible chat endpoint."""

from __future__ import annotations

import os

import typer

from agentkd.cli.common import _fail, app
from agentkd.errors import AgentKDError
from agentkd.models.student import STUDENT_HELP


@app.command()
def serve(
    student: str = typer.Option(..., help=STUDENT_HELP),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    name: str = typer.Option("student", help="The model name clients ask for (ChatOpenAI(model=NAME))."),
    api_key: str = typer.Option(None, envvar="AGENTKD_SERVE_API_KEY", help="Require this bearer key "
                                "(default: none; also AGENTKD_SERVE_API_KEY)."),
    max_batch: int = typer.Option(32, min=1, help="Conversations generated together at most."),
    max_tokens: int = typer.Option(256, min=1, help="Reply cap when a request gives none."),
    allow_download: bool = typer.Option(False, "--allow-download", help="Let a hub name be downloaded."),
) -> None:
    """Serve a student at http://HOST:PORT/v1 for any OpenAI-compatible client (LangChain's ChatOpenAI,
    the openai package, agentkd's own openai:NAME with OPENAI_BASE_URL)."""
    import uvicorn

    from agentkd.policies.hf import HFGenerator
    from agentkd.serve import build_app

    try:
        generator = HFGenerator(student, allow_download=allow_download, name=name, max_batch_size=max_batch)
    except (AgentKDError, OSError) as exc:
        _fail(str(exc))
    app_ = build_app(generator, model_name=name, api_key=api_key, max_batch=max_batch, max_tokens=max_tokens)
    print(f"serving {student} as {name!r} at http://{host}:{port}/v1 (pid {os.getpid()})", flush=True)
    uvicorn.run(app_, host=host, port=port, log_level="warning")
