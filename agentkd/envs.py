"""Environment registry: names on the command line → :class:`~agentkd.env.EnvSpec` → environments and task splits.

The built-in environments (``household``, ``qa``, ``math``) are registered here; any installed package
adds its own through the entry-point group ``agentkd.environments``, whose entry points name an
``EnvSpec`` (or a function of no arguments that returns one)::

    # the package's pyproject.toml
    [project.entry-points."agentkd.environments"]
    lights = "lights_env:SPEC"

An environment is imported only when it is asked about: looking up ``household`` imports the
household package, and nothing else; an entry point is loaded the first time its name is used.
A built-in name always means the built-in environment, so stale entry-point metadata (an old
install of agentkd itself, say) never hides or replaces it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import metadata

from agentkd.env import Env, EnvSpec, EnvSpecError
from agentkd.errors import AgentKDError
from agentkd.schema import Task

__all__ = ["ENTRY_POINT_GROUP", "UnknownEnvironmentError", "action_format", "env_names", "get_spec", "is_code",
           "load_tasks", "make_env"]

#: The entry-point group through which packages add environments.
ENTRY_POINT_GROUP = "agentkd.environments"


class UnknownEnvironmentError(AgentKDError, ValueError):
    """An environment name that is neither built in nor added by an installed package."""


def _household() -> EnvSpec:
    from environments.household.spec import SPEC

    return SPEC


def _qa() -> EnvSpec:
    from environments.qa.spec import SPEC

    return SPEC


def _math() -> EnvSpec:
    from environments.math.spec import SPEC

    return SPEC


#: Built-in environments: name → a function that imports and returns its spec.
BUILTIN: dict[str, Callable[[], EnvSpec]] = {"household": _household, "qa": _qa, "math": _math}

_specs: dict[str, EnvSpec] = {}
_lock = threading.Lock()


def _entry_points() -> dict[str, metadata.EntryPoint]:
    """Installed ``agentkd.environments`` entry points by name (the first one of a name wins), built-ins left out."""
    found: dict[str, metadata.EntryPoint] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in BUILTIN:
            found.setdefault(entry.name, entry)
    return found


def env_names() -> tuple[str, ...]:
    """Every environment name that can be used: the built-ins, then the installed packages' ones (sorted)."""
    return (*BUILTIN, *sorted(_entry_points()))


def _load_entry_point(entry: metadata.EntryPoint) -> EnvSpec:
    where = f"entry point {entry.name!r} = {entry.value!r} (group {ENTRY_POINT_GROUP})"
    try:
        spec = entry.load()
    except Exception as exc:  # a broken third-party package: name it, do not crash with its traceback
        raise EnvSpecError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    if not isinstance(spec, EnvSpec) and callable(spec):
        spec = spec()
    if not isinstance(spec, EnvSpec):
        raise EnvSpecError(f"{where} gives a {type(spec).__name__}, not an agentkd.env.EnvSpec")
    if spec.name != entry.name:
        raise EnvSpecError(f"{where} declares the environment {spec.name!r}; the names must match")
    return spec


def get_spec(name: str) -> EnvSpec:
    """The spec of environment ``name`` (imported on first use, then kept).

    Example::

        spec = get_spec("household")        # or an environment an installed package adds
        spec.task_types, spec.max_steps, spec.splits
    """
    with _lock:
        if name in _specs:
            return _specs[name]
    if name in BUILTIN:
        spec = BUILTIN[name]()
    else:
        entry = _entry_points().get(name)
        if entry is None:
            raise UnknownEnvironmentError(f"unknown environment {name!r}; available: {', '.join(env_names())}")
        spec = _load_entry_point(entry)
    with _lock:
        return _specs.setdefault(name, spec)


def action_format(name: str) -> str:
    """``"code"`` for environments whose actions are Python code, else ``"text"`` (also for unknown names)."""
    try:
        return get_spec(name).action_format
    except UnknownEnvironmentError:
        return "text"


def is_code(name: str) -> bool:
    """Whether the environment's actions are Python code (its spec's ``action_format``)."""
    return action_format(name) == "code"


def make_env(name: str, **kwargs) -> Env:
    """A fresh environment instance (one per concurrent episode).

    Example::

        env = make_env("household")
        observation = env.reset(load_tasks("household", "valid_unseen")[0])
        observation, reward, done, info = env.step(env.admissible_actions()[0])
    """
    return get_spec(name).make_env(**kwargs)


def load_tasks(name: str, split: str) -> list[Task]:
    """The tasks of a named split, or of a path to the user's own files (see :mod:`agentkd.splits`).

    Example::

        load_tasks("household", "valid_unseen")[:3]
        load_tasks("math", "data/gsm8k/test.jsonl")   # GSM8K-style JSONL
    """
    return get_spec(name).load_split(split)
