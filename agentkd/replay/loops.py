"""Going in circles: an action taken again from an observation the episode has already acted from.

The household environment is deterministic, so an action taken a second time from the same
observation leads where it led before: "go to shelf 2" from shelf 3, back to shelf 3, and so on to
the step limit, or a refused command repeated after its "Nothing happens.". Such loops are where a
small student fails most, and self-consistency does not see them (its samples agree on the loop).
Two uses, each reported as its own configuration:

- the cascade defers a revisit to the teacher (:class:`~agentkd.replay.cascade.CascadePolicy`);
- ``+noloop`` lets the student itself avoid one: constrained decoding leaves the tried actions out
  of its trie while an untried admissible action remains, and the vote ranks an untried action first.

The observation is the state as far as the agent can tell; where two states read alike (two
refusals, "Nothing happens."), an action may be flagged that would in fact do something new.
"""

from __future__ import annotations

from agentkd.policies.base import PolicyInput
from agentkd.policies.prompt import written_action

__all__ = ["action_key", "tried_here", "untried"]


def action_key(action: str) -> str:
    """An action as votes and loops compare it: case- and space-folded."""
    return " ".join(action.split()).casefold()


def tried_here(inp: PolicyInput) -> set[str]:
    """The actions (as :func:`action_key`) this episode already took from an observation like the current one."""
    # written_action: a refused command is stored with an empty action, and it is the loop most often.
    return {action_key(action) for step in inp.history
            if step.observation == inp.observation and (action := written_action(step))}


def untried(actions: list[str], tried: set[str]) -> list[str]:
    """``actions`` without the tried ones; all of them when every one was tried (a step must still be taken)."""
    fresh = [a for a in actions if action_key(a) not in tried]
    return fresh or actions
