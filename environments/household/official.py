"""Optional backend: play a household game through the *official* ALFWorld engine.

This is the reference our own engine must match byte for byte.  It plays a
``game.tw-pddl`` file (JSON with ``pddl_domain``, ``grammar``, ``pddl_problem``)
with TextWorld's ``PddlEnv`` (Fast Downward underneath), wrapped in ALFWorld's
own ``AlfredDemangler`` exactly as ``AlfredTWEnv.init_env`` does (``shuffle=False``,
i.e. evaluation settings), so entity names read "apple 1", "countertop 2", ...

Importing this module is cheap: textworld / alfworld / fast_downward are only
imported when an :class:`OfficialEngine` is constructed.  Install them with
``pip install -e '.[official]'``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

_INSTALL_HINT = "the official ALFWorld engine is not installed; run: pip install -e '.[official]'"


def _import_official() -> tuple[Any, Any, Any]:
    """Import (textworld, PddlEnv, AlfredDemangler), or raise ImportError with the install hint."""
    try:
        import fast_downward  # noqa: F401  (PddlEnv needs it; fail early with our message)
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs.pddl import PddlEnv
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
    return textworld, PddlEnv, AlfredDemangler


class OfficialEngine:
    """One game played by TextWorld's ``PddlEnv`` + ALFWorld's ``AlfredDemangler``.

    ``game`` is a path to a ``game.tw-pddl`` file or its parsed dict.  Call
    :meth:`reset` before :meth:`step`.  ``with_facts=True`` additionally requests
    the state's facts (slower; only for debugging, see :meth:`facts`).
    """

    def __init__(self, game: str | os.PathLike | Mapping[str, Any], *, with_facts: bool = False) -> None:
        textworld, PddlEnv, AlfredDemangler = _import_official()
        if isinstance(game, Mapping):
            data = dict(game)
        else:
            with open(game, encoding="utf-8") as f:
                data = json.load(f)
        infos = textworld.EnvInfos(admissible_commands=True, won=True, facts=with_facts)
        # Same composition as textworld.start(path, infos, wrappers=[AlfredDemangler(shuffle=False)]).
        self._env = AlfredDemangler(shuffle=False)(PddlEnv(infos))
        self._env.load(data)  # PddlEnv.load accepts the parsed dict
        self._state: Any = None

    def reset(self) -> str:
        """Start (or restart) the episode; return the intro text."""
        self._state = self._env.reset()
        return self._state.feedback

    def step(self, command: str) -> tuple[str, float, bool]:
        """Play one command; return (feedback, reward, done).

        reward is the engine's score: 1.0 once the goal holds, else 0.0; done == won.
        The engine strips surrounding whitespace itself; anything that is not exactly
        an admissible command gives "Nothing happens." and changes nothing.
        """
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        self._state, score, done = self._env.step(command)
        return self._state.feedback, float(score), bool(done)

    def admissible_commands(self) -> list[str]:
        """The current state's admissible commands, as the engine lists them (sorted, unique)."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        return list(self._state["admissible_commands"])

    @property
    def won(self) -> bool:
        return bool(self._state is not None and self._state["won"])

    def facts(self) -> list[str] | None:
        """Sorted facts with demangled names, e.g. "inreceptacle(apple 1, countertop 1)".

        None unless the engine was built with ``with_facts=True``.  Names of entities
        without a number (agent1, types, ...) are shown stripped of the trailing space the
        demangler gives them.  For debugging only: not part of the text the agent sees.
        """
        if self._state is None or self._state.get("facts") is None:
            return None
        return sorted(
            "{}({})".format(fact.name, ", ".join(arg.name.strip() for arg in fact.arguments))
            for fact in self._state["facts"]
        )
