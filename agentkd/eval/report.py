"""Evaluation report: ``report.md`` with summary tables and PNG plots, from :class:`EvalResults`.

:func:`write_report` writes into one directory::

    report.md                          summary table, per-task-type success tables, plots (and a link
                                       to episodes.html, which agentkd.eval.run writes next to it)
    success_by_task_type_<split>.png   grouped bars: one group per task type plus "all",
                                       one bar per configuration
    success_vs_cost_<split>.png        one point per configuration at (cost/episode, success),
                                       with the Pareto frontier (cheapest way to each success level)

:func:`format_table` is the summary table alone, for printing. Tables are markdown with padded
columns, so they read as plain text too. Empty groups show "—" (no episodes is not 0 %).
matplotlib is imported only when plots are drawn, and only its Agg canvas is used: no display,
no pyplot global state.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agentkd.eval.metrics import ConfigResult, EpisodeRow, EvalResults, GroupMetrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "REPORT_FILENAME",
    "format_table",
    "pareto_front",
    "plot_success_by_task_type",
    "plot_success_vs_cost",
    "task_type_table",
    "write_report",
]

REPORT_FILENAME = "report.md"
ALL = "all"  # the group of every episode, next to the task types
_MISSING = "—"
# Costs spanning at least this ratio get a log-scaled axis; below it a linear axis reads better.
_LOG_SPAN = 100.0


# --- formatting -----------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return _MISSING if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return _MISSING if value is None else f"{value:,.{digits}f}"


def _money(value: float | None) -> str:
    if value is None:
        return _MISSING
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.3g}"  # sub-dollar costs keep three significant digits: $0.0123, $4.2e-05


def _seconds(value: float | None) -> str:
    return _MISSING if value is None else f"{value:.2f} s"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A markdown table with padded columns; the first ``left`` columns are left-aligned."""
    cells = [[_cell(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        padded = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * w if i < left else "-" * (w - 1) + ":" for i, w in enumerate(widths)]
    return "\n".join([line(cells[0]), "| " + " | ".join(rule) + " |", *(line(row) for row in cells[1:])])


_SUMMARY_HEADER = (
    "configuration", "split", "episodes", "success", "mean steps", "invalid",
    "tokens/episode", "cost/episode", "deferral", "wall time/episode",
)


def _summary_row(config: ConfigResult) -> list[str]:
    m = config.metrics.overall
    return [
        config.name, config.group, str(m.episodes), _pct(m.success_rate), _num(m.mean_steps),
        _pct(m.invalid_action_rate), _num(m.mean_tokens, 0), _money(m.mean_cost_usd), _pct(m.deferral_rate),
        _seconds(m.mean_wall_time_s),
    ]


def format_table(results: EvalResults, split: str | None = None) -> str:
    """The summary table: one row per configuration × split (only ``split``'s rows if given)."""
    configs = results.configs if split is None else results.for_split(split)
    return _markdown_table(_SUMMARY_HEADER, [_summary_row(c) for c in configs], left=2)


def _task_types(configs: Sequence[ConfigResult]) -> list[str]:
    # Union over configurations, keeping the order summarize() chose (known types first).
    return list(dict.fromkeys(t for c in configs for t in c.metrics.by_task_type))


def _group(config: ConfigResult, task_type: str) -> GroupMetrics:
    if task_type == ALL:
        return config.metrics.overall
    return config.metrics.by_task_type.get(task_type) or GroupMetrics()


def task_type_table(results: EvalResults, split: str) -> str:
    """Success per task type on ``split``: one row per configuration, cells ``rate (k/n)``."""
    configs = results.for_split(split)
    columns = [*_task_types(configs), ALL]

    def cell(m: GroupMetrics) -> str:
        return _MISSING if not m.episodes else f"{_pct(m.success_rate)} ({m.successes}/{m.episodes})"

    rows = [[c.name, *(cell(_group(c, t)) for t in columns)] for c in configs]
    return _markdown_table(["configuration", *columns], rows)


_FAILURES_SHOWN = 10


def failures_table(results: EvalResults, split: str, episodes: str | None = None) -> str:
    """The failed episodes of each configuration on ``split``: goal, the action it kept writing, steps, refusals.

    With ``episodes`` (the name of the static viewer file next to the report), each task links to its transcript.
    """
    rows = []

    def task(e: EpisodeRow) -> str:
        return f"[{e.task_id}]({episodes}#t={e.trajectory_id})" if episodes and e.trajectory_id else e.task_id

    for config in results.for_split(split):
        failed = sorted((e for e in config.episodes if not e.success), key=lambda e: (-e.steps, e.task_id))
        rows += [[config.name, task(e), e.goal or e.task_type, e.repeated or _MISSING, str(e.steps), str(e.invalid)]
                 for e in failed[:_FAILURES_SHOWN]]
    return _markdown_table(["configuration", "task", "goal", "most repeated action", "steps", "invalid"], rows, left=4)


# --- plots ----------------------------------------------------------------------------------


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    # A bare Figure on the Agg canvas: renders PNGs headless and leaves pyplot's state alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def plot_success_by_task_type(configs: Sequence[ConfigResult], path: str | Path, title: str = "") -> Path:
    """Grouped bars of success rate: one group per task type plus "all", one bar per configuration.

    A configuration with no episodes of a type gets no bar there (rather than a misleading 0).
    """
    path = Path(path)
    groups = [*_task_types(configs), ALL]
    n = max(len(configs), 1)
    width = 0.8 / n
    fig, ax = _figure(max(6.0, len(groups) * (1.0 + 0.15 * n)), 4.5)
    for j, config in enumerate(configs):
        offset = (j - (n - 1) / 2) * width
        xs, heights = [], []
        for i, group in enumerate(groups):
            rate = _group(config, group).success_rate
            if rate is not None:
                xs.append(i + offset)
                heights.append(100 * rate)
        ax.bar(xs, heights, width=width, label=config.name)
    for i, group in enumerate(groups):
        if not any(_group(c, group).episodes for c in configs):
            ax.text(i, 2, "no episodes", ha="center", va="bottom", rotation=90, fontsize=8, color="0.5")
    ax.set_xticks(range(len(groups)), [textwrap.fill(g.replace("_", " "), 14) for g in groups], fontsize=8)
    if len(groups) > 1:
        ax.axvline(len(groups) - 1.5, color="0.7", linewidth=0.8)  # sets "all" apart from the types
    ax.set_xlim(-0.6, len(groups) - 0.4)  # fixed: missing bars must not shift or collapse the axis
    ax.set_ylim(0, 105)
    ax.set_ylabel("success rate (%)")
    ax.set_title(title or "Success rate by task type")
    ax.grid(axis="y", alpha=0.3)
    if configs:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.savefig(path, dpi=110)
    return path


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, success) points no other point beats, cheapest first.

    A point is dominated when another costs no more and succeeds no less, and is strictly better
    in one of the two. Equal points are all kept.
    """
    front = [
        i
        for i, (cost, success) in enumerate(points)
        if not any(c <= cost and s >= success and (c < cost or s > success) for c, s in points)
    ]
    return sorted(front, key=lambda i: (points[i][0], points[i][1]))


def _scale_cost_axis(ax: Axes, costs: Sequence[float]) -> None:
    from matplotlib.ticker import FuncFormatter

    positive = [c for c in costs if c > 0]
    if positive and max(positive) / min(positive) >= _LOG_SPAN:
        if len(positive) < len(costs):
            # Free configurations sit at 0, which a log axis cannot show: symlog is linear near 0.
            ax.set_xscale("symlog", linthresh=min(positive))
        else:
            ax.set_xscale("log")
        ax.set_xlabel("cost per episode (USD, log scale)")
    elif positive:
        ax.set_xlabel("cost per episode (USD)")
    else:
        # Nothing to scale: one tick at $0 says it plainly, where an autoscaled axis would invent a range.
        ax.set_xlim(-1.0, 1.0)
        ax.set_xticks([0.0])
        ax.set_xlabel("cost per episode (USD): every configuration costs $0")
    ax.margins(x=0.08)  # room for the labels of the cheapest and dearest points
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: _money(value)))


def _cost_points(configs: Sequence[ConfigResult]) -> tuple[list[ConfigResult], list[tuple[float, float]]]:
    """Configurations with episodes (no episodes, no point) and their (cost/episode, success %) points."""
    shown = [c for c in configs if c.metrics.overall.success_rate is not None]
    points = [(c.metrics.overall.mean_cost_usd or 0.0, 100 * (c.metrics.overall.success_rate or 0.0)) for c in shown]
    return shown, points


def plot_success_vs_cost(configs: Sequence[ConfigResult], path: str | Path, title: str = "") -> Path:
    """One labelled point per configuration at (mean cost per episode, success rate), Pareto frontier drawn."""
    path = Path(path)
    shown, points = _cost_points(configs)
    front = pareto_front(points)
    fig, ax = _figure(6.5, 4.5)
    if points:
        xs, ys = zip(*points, strict=True)
        ax.scatter(xs, ys, zorder=3)
        on_front = set(front)
        for i, (config, (x, y)) in enumerate(zip(shown, points, strict=True)):
            ax.annotate(config.name, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8,
                        fontweight="bold" if i in on_front else "normal")
        fx = [points[i][0] for i in front]
        fy = [points[i][1] for i in front]
        # A step: the best success reachable for a budget of at most x.
        ax.step(fx, fy, where="post", color="tab:red", alpha=0.6, label="Pareto frontier", zorder=2)
        ax.legend(fontsize=8, loc="lower right")
        _scale_cost_axis(ax, xs)
    else:
        ax.text(0.5, 0.5, "no episodes", transform=ax.transAxes, ha="center")
    ax.set_ylim(-5, 105)
    ax.set_ylabel("success rate (%)")
    ax.set_title(title or "Success vs cost")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    return path


# --- report ---------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "split"


def write_report(results: EvalResults, out_dir: str | Path, title: str = "agentkd evaluation report",
                 episodes: str | None = None) -> Path:
    """Write ``report.md`` and its PNG plots into ``out_dir`` (created if needed); return the report's path.

    ``episodes`` names the static episode viewer written next to it (``episodes.html``): the report links to
    it, and each failed episode to its transcript there.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = results.splits
    when = results.created_at.strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {title}", ""]
    if not results.configs:
        lines += [f"Generated {when}. No configurations were evaluated.", ""]
        report = out / REPORT_FILENAME
        report.write_text("\n".join(lines), encoding="utf-8")
        return report

    lines += [
        f"Generated {when}: {len(results.names)} configuration(s) on split(s) {', '.join(splits)}. "
        "Rates are over episodes (success) or steps (invalid actions, deferrals to the teacher); "
        f"{_MISSING} marks an empty group.",
        "",
        *([f"Every episode, step by step (candidates, votes, deferrals, beside the teacher's): "
           f"[{episodes}]({episodes}) (opens from the file system, no server).", ""] if episodes else []),
        "## Summary",
        "",
        format_table(results),
        "",
        "## Success by task type",
        "",
    ]
    for split in splits:
        lines += [f"### {split}", "", task_type_table(results, split), ""]

    if any(not e.success for c in results.configs for e in c.episodes):
        lines += ["## Failed episodes", "",
                  f"Up to {_FAILURES_SHOWN} per configuration and split, the longest first: read them in the store "
                  "(their trajectories carry the configuration as `metadata.evaluation`).", ""]
        for split in splits:
            lines += [f"### {split}", "", failures_table(results, split, episodes), ""]

    lines += ["## Plots", ""]
    for split in splits:
        configs = results.for_split(split)
        slug = _slug(split)
        bars = plot_success_by_task_type(
            configs, out / f"success_by_task_type_{slug}.png", f"Success rate by task type — {split}"
        )
        pareto = plot_success_vs_cost(configs, out / f"success_vs_cost_{slug}.png", f"Success vs cost — {split}")
        shown, points = _cost_points(configs)
        front = pareto_front(points)
        lines += [
            f"### {split}",
            "",
            f"![Success rate by task type on {split}]({bars.name})",
            "",
            f"![Success vs cost per episode on {split}]({pareto.name})",
            "",
            f"Pareto-optimal (no other configuration is both cheaper and more successful): "
            f"{', '.join(shown[i].name for i in front) or _MISSING}.",
            "",
        ]

    described = {c.name: c for c in results.configs}  # one line per name; params rarely differ by split
    lines += ["## Configurations", ""]
    rows = [[name, c.description, json.dumps(c.params, sort_keys=True) if c.params else ""]
            for name, c in described.items()]
    lines += [_markdown_table(["configuration", "description", "params"], rows, left=3), ""]
    if results.metadata:
        lines += ["## Run metadata", "", "```json", json.dumps(results.metadata, indent=2, default=str), "```", ""]
    report = out / REPORT_FILENAME
    report.write_text("\n".join(lines), encoding="utf-8")
    return report
