"""``agentkd view``: a read-only web app over an experience store (Starlette on uvicorn).

Routes:

``/``
    the table of trajectories, with filters (env, split, task type, policy, outcome, evaluation run)
    and a search over goals; ``/?run=sc@8&success=no`` opens it filtered.
``/t/{id}``
    one trajectory as a transcript, with links to compare it with the other runs of its task.
``/compare?a=ID&b=ID``
    two trajectories side by side, the first diverging step marked.

The app only reads: it lists trajectories once and lists them again when the store's count changes
(a running collection or evaluation adds to it), and reads a trajectory afresh for its page.
"""

from __future__ import annotations

import threading
from typing import Any

from agentkd.errors import AgentKDError
from agentkd.schema import Trajectory
from agentkd.view.render import render_compare, render_index, render_trajectory
from agentkd.view.summary import Row, partners, principle_texts

__all__ = ["Catalog", "ViewerError", "create_app", "serve"]


class ViewerError(AgentKDError):
    """The viewer cannot start (e.g. the port is taken)."""


class Catalog:
    """The table's rows of a store, listed again only when the store's count changes."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._rows: list[Row] = []
        self._count = -1
        self._lock = threading.Lock()

    def rows(self) -> list[Row]:
        with self._lock:
            count = self.store.count()
            if count != self._count:
                self._rows = sorted((Row.of(t) for t in self.store.iterate()),
                                    key=lambda r: (r.env, r.split, r.task_id, not r.is_teacher, r.run, r.policy))
                self._count = count
            return self._rows

    def get(self, trajectory_id: str) -> Trajectory | None:
        return self.store.get(trajectory_id)

    def principles(self, *trajectories: Trajectory) -> dict[str, str]:
        """Text of the principles shown in these trajectories' prompts, by id (those still in the store)."""
        return principle_texts(self.store, trajectories)


def create_app(store: Any, *, source: str = "") -> Any:
    """The Starlette application over ``store`` (an :class:`~agentkd.store.ExperienceStore`)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    catalog = Catalog(store)

    def not_found(what: str) -> HTMLResponse:
        return HTMLResponse(f"<!doctype html><title>not found</title><p>{what} is not in this store. "
                            '<a href="/">All trajectories</a></p>', status_code=404)

    def index(request: Request) -> HTMLResponse:
        return HTMLResponse(render_index(catalog.rows(), source=source))

    def trajectory(request: Request) -> HTMLResponse:
        tid = request.path_params["trajectory_id"]
        traj = catalog.get(tid)
        if traj is None:
            return not_found(f"Trajectory {tid!r}")
        return HTMLResponse(render_trajectory(traj, partners(Row.of(traj), catalog.rows()),
                                              catalog.principles(traj)))

    def compare(request: Request) -> HTMLResponse:
        a_id, b_id = request.query_params.get("a", ""), request.query_params.get("b", "")
        a, b = catalog.get(a_id), catalog.get(b_id)
        if a is None or b is None:
            return not_found(f"Trajectory {(a_id if a is None else b_id)!r}")
        return HTMLResponse(render_compare(a, b, catalog.principles(a, b)))

    return Starlette(routes=[
        Route("/", index),
        Route("/t/{trajectory_id:str}", trajectory),
        Route("/compare", compare),
    ])


def serve(store: Any, host: str = "127.0.0.1", port: int = 8765, *, source: str = "") -> None:
    """Serve the viewer until interrupted."""
    import socket

    import uvicorn

    with socket.socket() as probe:  # a clear error instead of uvicorn's exit when the port is taken
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ViewerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port") from exc
    uvicorn.run(create_app(store, source=source), host=host, port=port, log_level="warning")
