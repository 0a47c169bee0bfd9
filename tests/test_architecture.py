"""The import graph points down only (ARCHITECTURE.md), has no cycles, and importing the light modules stays light.

The layering check reads the source with ``ast`` instead of importing it, so it sees every import:
at module level, inside functions (lazy imports) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agentkd", "environments")

#: Bottom to top; a module may import its own layer and the ones below it. An entry names a module or
#: package and everything under it, except a top-level package name, which names its ``__init__`` only
#: (so a new subpackage has to be placed here on purpose). Keep ARCHITECTURE.md in step.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("agentkd", "agentkd.errors", "agentkd.settings", "agentkd.schema", "agentkd.env", "agentkd.splits",
     "agentkd.models"),
    ("agentkd.store",),
    ("agentkd.tools",),
    ("environments", "environments.household", "environments.qa", "environments.math", "environments.code_env"),
    ("agentkd.envs",),
    ("agentkd.policies",),
    ("agentkd.agents",),
    ("agentkd.collection",),
    ("agentkd.distill",),
    ("agentkd.train",),
    ("agentkd.replay",),
    ("agentkd.eval", "agentkd.view"),
    ("agentkd.cli", "agentkd.demo", "agentkd.bench", "agentkd.serve"),
)

# ---------------------------------------------------------------------------------------------------- checker


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the given top-level packages."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[int, str, str]]:
    """``(line, written import, resolved module)`` for each import of one of ``modules`` anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def resolve(target: str) -> str | None:
        while target and target not in modules:  # `from pkg import Name`: Name is not a module, pkg is
            target = target.rpartition(".")[0]
        return target or None

    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [(alias.name, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            written = f"from {'.' * node.level}{node.module or ''} import {', '.join(a.name for a in node.names)}"
            targets = [(written, f"{base}.{alias.name}") for alias in node.names]
        else:
            continue
        for written, target in targets:
            resolved = resolve(target)
            if resolved is not None and resolved != name and (node.lineno, written, resolved) not in found:
                found.append((node.lineno, written, resolved))
    return found


def layer_unit(module: str, layers: Sequence[Sequence[str]]) -> tuple[int, str] | None:
    """``(layer index, unit)`` of the most specific unit that covers ``module``; None when none does."""
    best = None
    for index, units in enumerate(layers):
        for unit in units:
            covers = module == unit or ("." in unit and module.startswith(unit + "."))
            if covers and (best is None or len(unit) > len(best[1])):
                best = (index, unit)
    return best


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles of ``graph``: its strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def check_layers(root: Path, packages: Iterable[str], layers: Sequence[Sequence[str]]) -> list[str]:
    """Every problem found, one line each: modules without a layer, upward imports, module and unit cycles."""
    modules = find_modules(root, packages)
    problems = []
    graph: dict[str, set[str]] = defaultdict(set)
    units: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        graph.setdefault(name, set())
        mine = layer_unit(name, layers)
        if mine is None:
            problems.append(f"{path.relative_to(root)}: module {name} has no layer (add it to LAYERS and "
                            f"ARCHITECTURE.md)")
            continue
        units.setdefault(mine[1], set())
        for line, written, target in imports_of(name, path, modules):
            graph[name].add(target)
            theirs = layer_unit(target, layers)
            if theirs is None:
                continue  # reported as a module without a layer
            if theirs[1] != mine[1]:
                units[mine[1]].add(theirs[1])
            if theirs[0] > mine[0]:
                problems.append(f"{path.relative_to(root)}:{line}: `{written}` imports {target} (layer {theirs[0]}, "
                                f"{theirs[1]}) from layer {mine[0]} ({mine[1]}): imports must point down")
    problems += [f"module cycle: {' -> '.join(cycle)}" for cycle in strongly_connected(graph)]
    problems += [f"package cycle: {' -> '.join(cycle)}" for cycle in strongly_connected(units)]
    return problems


# ---------------------------------------------------------------------------------------------------- the project


def test_imports_point_down_and_nothing_is_cyclic():
    problems = check_layers(ROOT, PACKAGES, LAYERS)
    assert not problems, "\n".join(problems)


def test_architecture_md_names_every_layer_unit():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    missing = [unit for units in LAYERS for unit in units if f"`{unit}`" not in text]
    assert not missing, f"ARCHITECTURE.md does not name {missing}"


def test_the_check_catches_upward_lazy_relative_imports_and_cycles(tmp_path):
    toy = tmp_path / "toy"
    toy.mkdir()
    (toy / "__init__.py").write_text("")
    (toy / "base.py").write_text("X = 1\n\n\ndef helper():\n    from . import top  # lazy and relative\n\n"
                                 "    return top\n")
    (toy / "top.py").write_text("from toy.base import X\n")
    (toy / "stray.py").write_text("")
    problems = check_layers(tmp_path, ["toy"], [("toy", "toy.base"), ("toy.top",)])
    assert any(p.startswith("toy/base.py:5: `from . import top` imports toy.top (layer 1") for p in problems), problems
    assert "module cycle: toy.base -> toy.top" in problems
    assert "package cycle: toy.base -> toy.top" in problems
    assert any(p.startswith("toy/stray.py: module toy.stray has no layer") for p in problems)
    assert not any("top.py" in p for p in problems)  # importing down is fine
    same_layer = check_layers(tmp_path, ["toy"], [("toy", "toy.base", "toy.top", "toy.stray")])
    assert same_layer == ["module cycle: toy.base -> toy.top", "package cycle: toy.base -> toy.top"]  # still cycles


# ---------------------------------------------------------------------------------------------------- light imports

# Importing these stays instant: heavy libraries (and heavy parts of our own) load when first used.
LIGHT = {
    "agentkd.cli": ("torch", "transformers", "chromadb", "textworld", "environments", "starlette", "uvicorn"),
    "agentkd.envs": ("environments",),  # the registry imports an environment when its name is asked about
    "agentkd.eval, agentkd.eval.report": ("matplotlib",),
    "agentkd.policies, agentkd.models": ("torch", "transformers", "langchain_core"),
    "agentkd.store": ("chromadb", "torch", "datasets"),
    "agentkd.tools": ("torch", "chromadb", "agentkd.tools.sandbox"),
    "environments.household.official": ("textworld",),
    "agentkd.view.app, agentkd.view.render, agentkd.view.terminal": ("jinja2", "starlette", "uvicorn", "chromadb",
                                                                      "torch", "rich"),
}


@pytest.mark.parametrize("modules", list(LIGHT))
def test_import_is_light(modules):
    heavy = LIGHT[modules]
    code = f"import sys, {modules}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_help_runs():
    result = subprocess.run([sys.executable, "-m", "agentkd.cli", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and "play" in result.stdout


# ---------------------------------------------------------------------------------------------------- the public façade


VERBS = ("ExperienceStore", "get_spec", "load_tasks", "make_env", "CodeSandbox", "resolve_teacher", "collect",
         "train_sft", "train_redi", "train_grpo", "evaluate")  # the pipeline's steps: each docstring shows one use


def test_the_public_api_is_lazy_complete_and_never_imported_from_inside():
    import agentkd

    code = ("import sys, agentkd; loaded = sorted(m for m in sys.modules if m.startswith(('agentkd.', 'torch', "
            "'transformers', 'chromadb', 'langchain', 'environments'))); print(loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout
    for name, module in agentkd._PUBLIC.items():  # every name resolves, to the object its module defines
        value = getattr(agentkd, name)
        assert value is getattr(__import__(module, fromlist=[name]), name)
        assert (value.__doc__ or "").strip(), f"agentkd.{name} has no docstring"
        if name in VERBS:
            assert "Example::" in value.__doc__, f"agentkd.{name}'s docstring has no example"
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        agentkd.nothing_here  # noqa: B018
    modules = find_modules(ROOT, PACKAGES)
    inside = [f"{path.relative_to(ROOT)}:{line}: {written}" for name, path in modules.items() if name != "agentkd"
              for line, written, target in imports_of(name, path, modules)
              if target == "agentkd" and any(public in written for public in agentkd._PUBLIC)]
    assert not inside, "import the defining module, not the façade:\n" + "\n".join(inside)
