"""Admissible-constrained action decoding: the action line is decoded through a trie of the admissible commands.

Where an environment lists its admissible actions, a student can still write an action that is not
one of them ("go to toilet 2" in a room with one toilet). Constrained decoding lets the thought run
free and, once the reply opens its action line (``\\nAction:``), allows only tokens that continue
some admissible command, then the end-of-turn token. Every sample that reaches its action line
within the reply's token cap is then a valid action, so self-consistency votes among valid
actions. It is a different claim from free generation (the student is told what is possible), and
is reported as its own configuration (``+constrained``).

:class:`ActionConstraint` is built per step from the admissible list and the tokenizer; the
:class:`~agentkd.replay.engine.ReplayEngine` keeps one cursor per decoded row and asks it which
tokens it allows before picking the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agentkd.models.generation import END_OF_TURN

__all__ = ["ActionConstraint", "build_constraint"]

_LABEL = "Action:"


class ActionConstraint:
    """Which tokens a reply may take next: free text until the action line opens, then ``trie``.

    The action line opens when the reply's text ends with ``\nAction:`` (or is ``Action:``): text,
    not token ids, because tokenizers merge the newline with what precedes it differently.
    ``trie`` maps a token to the subtree of what may follow it; a leaf's only continuation is an
    end-of-turn token. Use one :meth:`cursor` per decoded row.
    """

    def __init__(self, trie: dict[int, Any], decode: Callable[[int], str]) -> None:
        self.trie = trie
        self._decode = decode
        self._pieces: dict[int, str] = {}

    def piece(self, token: int) -> str:
        if token not in self._pieces:
            self._pieces[token] = self._decode(token)
        return self._pieces[token]

    def cursor(self) -> _Cursor:
        return _Cursor(self)


class _Cursor:
    """One row's position: the reply's recent text (until the action line opens), then the trie node."""

    def __init__(self, constraint: ActionConstraint) -> None:
        self.constraint = constraint
        self.text = "\n"  # the reply starts on a fresh line
        self.node: dict[int, Any] | None = None

    def allowed(self) -> list[int] | None:
        """Tokens allowed next; None while any token may follow (the thought)."""
        return None if self.node is None else list(self.node)

    def advance(self, token: int) -> None:
        if self.node is not None:
            self.node = self.node.get(token, {})
            return
        self.text = (self.text + self.constraint.piece(token))[-16:]
        if self.text.endswith("\n" + _LABEL):
            self.node = self.constraint.trie


def _end_of_turn(tokenizer: Any) -> int | None:
    """The token that ends an assistant turn (what the student was trained to write after its action)."""
    for token in END_OF_TURN:
        token_id = tokenizer.convert_tokens_to_ids(token)  # not get_vocab(): it builds the whole vocabulary
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id is not None:
            return token_id
    return tokenizer.eos_token_id


def build_constraint(tokenizer: Any, admissible: Sequence[str]) -> ActionConstraint:
    """The constraint for one step: the action line may only spell one of ``admissible``, then stop.

    Actions are tokenised in context ("Action: go to x", minus the tokens of "Action:") so the trie
    holds the tokens the student was trained to write.
    """
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    label = encode(_LABEL)
    stop = _end_of_turn(tokenizer)
    trie: dict[int, Any] = {}
    for action in dict.fromkeys(" ".join(a.split()) for a in admissible):
        ids = encode(f"{_LABEL} {action}")
        if ids[:len(label)] != label:  # the label merged with the action's first token: skip this spelling
            continue
        node = trie
        for token in ids[len(label):]:
            node = node.setdefault(token, {})
        if stop is not None:
            node.setdefault(stop, {})
    return ActionConstraint(trie, lambda token: tokenizer.decode([token]))
