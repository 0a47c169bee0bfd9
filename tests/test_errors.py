"""Every error class agentkd defines derives from `AgentKDError` (and keeps its standard base)."""

from __future__ import annotations

import ast
import builtins
import importlib
from pathlib import Path

import pytest

from agentkd.errors import AgentKDError

ROOT = Path(__file__).resolve().parents[1]

#: The sandbox's child side runs in an interpreter with the standard library only (no agentkd), so its
#: exceptions (ProtocolError, the ToolError user code sees) cannot derive from AgentKDError.
EXEMPT_MODULES = {"agentkd.tools._sandbox_child"}


def _exception_classes() -> dict[str, list[str]]:
    """Module -> names of the classes it defines (anywhere in the file) that derive from ``Exception``,
    found with ``ast``: a base is a builtin exception, or a class of ours already found to be one."""
    classes: dict[str, tuple[str, list[str]]] = {}  # name -> (module, base names)
    for package in ("agentkd", "environments"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef):
                    bases = [ast.unparse(base).rpartition(".")[2] for base in node.bases]
                    classes[f"{module}:{node.name}"] = (module, bases)
    by_name: dict[str, list[list[str]]] = {}
    for key, (_, bases) in classes.items():
        by_name.setdefault(key.partition(":")[2], []).append(bases)

    def is_exception(name: str, seen: frozenset[str] = frozenset()) -> bool:
        builtin = getattr(builtins, name, None)
        if isinstance(builtin, type) and issubclass(builtin, BaseException):
            return issubclass(builtin, Exception) and not issubclass(builtin, Warning)
        if name in seen:
            return False
        return any(is_exception(base, seen | {name}) for bases in by_name.get(name, []) for base in bases)

    found: dict[str, list[str]] = {}
    for key, (module, _) in classes.items():
        name = key.partition(":")[2]
        if module not in EXEMPT_MODULES and is_exception(name):
            found.setdefault(module, []).append(name)
    return found


ERRORS = _exception_classes()


def test_the_error_classes_are_found():
    names = {name for names in ERRORS.values() for name in names}
    assert {"StoreError", "SandboxError", "GameFileError", "StudentNotFound"} <= names
    assert len(names) >= 15


@pytest.mark.parametrize("module", sorted(ERRORS))
def test_every_error_class_derives_from_agentkd_error(module):
    loaded = importlib.import_module(module)
    for name in ERRORS[module]:
        cls = getattr(loaded, name)
        assert issubclass(cls, AgentKDError), f"{module}.{name} does not derive from AgentKDError"


def test_standard_bases_are_kept():
    from agentkd.store import StoreError
    from agentkd.tools.sandbox import SandboxError
    from environments.household import GameFileError

    assert issubclass(StoreError, RuntimeError) and issubclass(SandboxError, RuntimeError)
    assert issubclass(GameFileError, ValueError)
