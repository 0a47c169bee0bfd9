"""``agentkd store show ID``: a trajectory's transcript in the terminal, with rich.

The same facts as the browser's transcript (:func:`agentkd.view.summary.step_facts`): each step's
thought, action and observation, the self-consistency candidates with votes and log-probs, the
agreement, a deferral to the teacher and its reason, and the principles and demonstrations shown.
"""

from __future__ import annotations

from typing import Any

from agentkd.policies.prompt import written_action
from agentkd.schema import Trajectory
from agentkd.view.summary import Row, step_facts

__all__ = ["print_transcript"]

_OBSERVATION_LINES = 12  # longer observations are cut in the terminal (the browser shows them whole)


def _cut(text: str, lines: int = _OBSERVATION_LINES) -> str:
    kept = text.splitlines()
    return "\n".join(kept[:lines] + ([f"… ({len(kept) - lines} more lines)"] if len(kept) > lines else []))


def _header(traj: Trajectory, row: Row) -> str:
    from rich.markup import escape

    outcome = "[bold green]success[/]" if traj.success else "[bold red]failure[/]"
    parts = [f"{row.steps} steps"]
    if row.deferred:
        parts.append(f"{row.deferred} deferred to the teacher")
    if row.invalid:
        parts.append(f"{row.invalid} invalid")
    parts.append(f"{traj.prompt_tokens + traj.completion_tokens} tokens")
    facts = escape(f"{traj.task_id} · {traj.env} / {traj.split} · {traj.task_type}\npolicy {row.policy}"
                   + (f" · run {row.run}" if row.run else "") + f"\n{' · '.join(parts)}")
    return f"[bold]{escape(traj.goal)}[/]\n{outcome}  {facts}\n[dim]{escape(traj.trajectory_id)}[/]"


def _candidates(facts: Any) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="dim")
    for column, justify in (("", "left"), ("candidate action", "left"), ("votes", "right"), ("log-prob", "right"),
                            ("valid", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for i, c in enumerate(facts.candidates):
        chosen = i == facts.chosen
        action = escape(c.action) or f"[dim]refused: {escape((c.raw.strip().splitlines() or ['(empty)'])[-1][:90])}[/]"
        table.add_row("✔" if chosen else "", f"[bold]{action}[/]" if chosen else action, str(c.votes),
                      "—" if c.logprob is None else f"{c.logprob:.3f}", "yes" if c.valid else "no")
    return table


def print_transcript(traj: Trajectory, console: Any = None) -> None:
    """Print ``traj`` as a transcript on ``console`` (a :class:`rich.console.Console`; stdout by default)."""
    from rich.console import Console, Group
    from rich.markup import escape
    from rich.panel import Panel
    from rich.text import Text

    console = console or Console()
    row = Row.of(traj)
    console.print(Panel(_header(traj, row), expand=False))
    previous = None
    for step in traj.steps:
        facts = step_facts(step)
        tags = []
        if facts.agreement is not None:
            tags.append(f"agreement {facts.agreement:.0%}")
        if step.deferred:
            tags.append(f"[yellow]deferred to teacher: {facts.deferred_for}[/]")
        if not step.valid:
            tags.append("[red]invalid[/]")
        if facts.demos:
            tags.append(f"{facts.demos} demonstration{'s' if facts.demos != 1 else ''} shown")
        if facts.principles:
            tags.append(f"{len(facts.principles)} principle{'s' if len(facts.principles) != 1 else ''} shown")
        parts: list[Any] = []
        if previous is None or previous.next_observation != step.observation:
            parts.append(Text(_cut(step.observation), style="dim"))
        if step.thought:
            parts.append(Text(f"Thought: {step.thought}", style="italic"))
        label = "Teacher action" if step.deferred else "Action"
        # A refused command is stored with an empty action; show what was written, marked refused.
        written = written_action(step)
        mark = " [red](refused)[/]" if written and not step.action else ""
        parts.append(Text.from_markup(f"{label}: [bold]{escape(written) or '(none)'}[/]{mark}"))
        if facts.candidates:
            parts.append(_candidates(facts))
        if facts.principles:
            parts.append(Text("principles: " + ", ".join(facts.principles), style="dim"))
        if step.next_observation:
            parts.append(Text(f"→ {_cut(step.next_observation)}", style="green"))
        style = "yellow" if step.deferred else ("red" if not step.valid else "blue")
        console.print(Panel(Group(*parts), title=f"step {step.index}  " + "  ".join(tags), title_align="left",
                            border_style=style))
        previous = step
