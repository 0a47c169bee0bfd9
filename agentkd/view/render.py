"""HTML of the viewer's pages from Jinja2 templates: the table, one transcript, two side by side, and
``episodes.html``, the same pages in one file that works from the file system.

The templates (``agentkd/view/templates/``) inline their CSS and JavaScript, so a page needs nothing
but itself. Links differ by mode: the server's pages link to ``/t/ID`` and ``/compare?a=…&b=…``, the
static file to ``#t=ID`` and ``#c=A,B``, which its script turns into the same views.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agentkd.schema import Trajectory
from agentkd.view.summary import Row, first_divergence, partner_map, step_facts

__all__ = ["EPISODES_FILENAME", "render_compare", "render_index", "render_static", "render_trajectory",
           "write_episodes"]

EPISODES_FILENAME = "episodes.html"
_TEMPLATES = Path(__file__).with_name("templates")
#: Filters of the table: (row field, label). Their options are the values found in the rows.
FILTERS = (("env", "env"), ("split", "split"), ("task_type", "task type"), ("policy", "policy"),
           ("run", "evaluation run"))


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["step_facts"] = step_facts
    env.filters["pct"] = lambda value: "—" if value is None else f"{100 * value:.0f}%"
    env.filters["logprob"] = lambda value: "—" if value is None else f"{value:.3f}"
    return env


def _links(static: bool) -> dict[str, Any]:
    if static:
        return {"href_t": lambda tid: f"#t={quote(tid)}", "href_c": lambda a, b: f"#c={quote(a)},{quote(b)}",
                "href_index": "#", "static": True}
    return {"href_t": lambda tid: f"/t/{quote(tid)}", "href_c": lambda a, b: f"/compare?a={quote(a)}&b={quote(b)}",
            "href_index": "/", "static": False}


def _options(rows: Sequence[Row]) -> list[tuple[str, str, list[str]]]:
    return [(key, label, sorted({str(getattr(r, key)) for r in rows})) for key, label in FILTERS]


def _render(template: str, static: bool, **context: Any) -> str:
    context.setdefault("source", "")
    return _environment().get_template(template).render(**_links(static), **context)


def render_index(rows: Sequence[Row], *, title: str = "agentkd trajectories", source: str = "") -> str:
    """The table of trajectories with its filters and goal search (the server's home page)."""
    return _render("index.html", False, title=title, source=source, rows=rows, options=_options(rows),
                   pairs=partner_map(rows))


def render_trajectory(traj: Trajectory, partners: Sequence[Row] = (),
                      principles: Mapping[str, str] | None = None) -> str:
    """One trajectory as a transcript; ``partners`` are offered for a side-by-side comparison and
    ``principles`` maps the ids of shown principles to their text."""
    return _render("trajectory.html", False, title=traj.goal, traj=traj, row=Row.of(traj), partners=partners,
                   principles=dict(principles or {}))


def render_compare(a: Trajectory, b: Trajectory, principles: Mapping[str, str] | None = None) -> str:
    """Two trajectories side by side, step by step, with the first diverging step marked."""
    return _render("compare.html", False, title=f"{a.task_id}: compare", a=a, b=b, row_a=Row.of(a), row_b=Row.of(b),
                   diverge=first_divergence(a.steps, b.steps), principles=dict(principles or {}))


def render_static(trajectories: Sequence[Trajectory], *, title: str = "agentkd episodes", source: str = "",
                  principles: Mapping[str, str] | None = None) -> str:
    """Every page in one self-contained file: the table, each transcript, and each trajectory beside its
    teacher's (the comparisons are assembled by the page's script from the transcripts it holds)."""
    rows = [Row.of(t) for t in trajectories]
    pairs = partner_map(rows)
    by_id = {t.trajectory_id: t for t in trajectories}
    divergences = {f"{a},{b.trajectory_id}": first_divergence(by_id[a].steps, by_id[b.trajectory_id].steps)
                   for a, b in pairs.items()}
    return _render("static.html", True, title=title, source=source, rows=rows, options=_options(rows), pairs=pairs,
                   trajectories=trajectories, principles=dict(principles or {}),
                   divergences=json.dumps(divergences))


def write_episodes(trajectories: Sequence[Trajectory], path: str | Path, *, title: str = "agentkd episodes",
                   source: str = "", principles: Mapping[str, str] | None = None) -> Path:
    """Write :func:`render_static` to ``path`` (usually ``episodes.html`` next to ``report.md``)."""
    path = Path(path)
    path.write_text(render_static(trajectories, title=title, source=source, principles=principles), encoding="utf-8")
    return path
