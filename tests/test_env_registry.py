"""The environment registry: typed EnvSpecs, built-ins by name, other packages through entry points."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentkd import envs
from agentkd.agents import play_episode
from agentkd.env import EnvSpec, EnvSpecError
from agentkd.policies.expert import ExpertPolicy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "agentkd-example-env"


def test_builtin_specs_keep_the_registry_facts():
    assert envs.env_names()[:3] == ("household", "qa", "math")
    limits = {name: (envs.get_spec(name).max_steps, envs.get_spec(name).max_new_tokens) for name in envs.BUILTIN}
    assert limits == {"household": (20, 96), "qa": (8, 192), "math": (6, 256)}
    assert [envs.is_code(name) for name in ("household", "qa", "math", "no-such-env")] == [False, True, True, False]
    assert envs.get_spec("household").task_types[0] == "pick_and_place_simple"
    assert envs.get_spec("math").splits == ("train", "valid_seen", "valid_unseen")
    with pytest.raises(envs.UnknownEnvironmentError, match="unknown environment 'chess'; available: household, qa"):
        envs.make_env("chess")


def test_a_spec_checks_its_fields():
    good = dict(name="x", action_format="text", max_steps=5, max_new_tokens=16, task_types=("a",), splits=("train",),
                load_split=lambda split: [], make_env=object)
    assert EnvSpec(**good).is_code is False
    with pytest.raises(EnvSpecError, match=r"action_format must be one of text, code, not 'json'.*max_steps must be "
                                           r"a positive int, not 0.*task_types must be a tuple of names"):
        EnvSpec(**{**good, "action_format": "json", "max_steps": 0, "task_types": "ab"})
    with pytest.raises(EnvSpecError, match="load_split must be callable"):
        EnvSpec(**{**good, "load_split": "mine.load"})


def _distribution(site: Path, entry_points: str, name: str = "my-envs") -> None:
    """A dist-info folder as pip writes it: enough for importlib.metadata to find its entry points."""
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[agentkd.environments]\n" + entry_points)


@pytest.fixture()
def fresh_registry(monkeypatch):
    monkeypatch.setattr(envs, "_specs", {})


def test_entry_points_add_environments(tmp_path, monkeypatch, fresh_registry):
    _distribution(tmp_path, "lights = agentkd_example_env:SPEC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    assert envs.env_names() == ("household", "qa", "math", "lights")
    spec = envs.get_spec("lights")
    assert spec.name == "lights" and spec.action_format == "text" and not envs.is_code("lights")
    tasks = envs.load_tasks("lights", "valid_unseen")
    assert len(tasks) == 12 and tasks[0].task_id == "lights/valid_unseen/000"
    trajectory = play_episode(envs.make_env("lights", max_steps=spec.max_steps), ExpertPolicy("lights"), tasks[0])
    assert trajectory.success and trajectory.env == "lights"


def test_a_built_in_name_is_never_replaced_by_stale_metadata(tmp_path, monkeypatch, fresh_registry):
    _distribution(tmp_path, "household = agentkd_old_install.gone:SPEC\nmath = agentkd_old_install.gone:SPEC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert envs.env_names() == ("household", "qa", "math")
    assert envs.get_spec("household").make_env().name == "household"


def test_broken_entry_points_are_named(tmp_path, monkeypatch, fresh_registry):
    (tmp_path / "my_envs.py").write_text(
        "from agentkd.env import EnvSpec\n"
        "NOT_A_SPEC = 42\n"
        "def make_spec():\n"
        "    return EnvSpec(name='made', action_format='code', max_steps=3, max_new_tokens=64, task_types=(),\n"
        "                   splits=(), load_split=lambda split: [], make_env=object)\n"
        "OTHER = make_spec()\n")
    _distribution(tmp_path, "gone = my_envs_missing:SPEC\nnumber = my_envs:NOT_A_SPEC\nmade = my_envs:make_spec\n"
                            "renamed = my_envs:OTHER\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EnvSpecError, match=r"entry point 'gone' = 'my_envs_missing:SPEC' \(group agentkd.environments"
                                           r"\) cannot be loaded: ModuleNotFoundError"):
        envs.get_spec("gone")
    with pytest.raises(EnvSpecError, match="entry point 'number' .* gives a int, not an agentkd.env.EnvSpec"):
        envs.get_spec("number")
    with pytest.raises(EnvSpecError, match="entry point 'renamed' .* declares the environment 'made'"):
        envs.get_spec("renamed")
    assert envs.get_spec("made").is_code and envs.is_code("made")  # a function that returns a spec works too


def _install_example(target: Path) -> dict[str, str]:
    """``pip install --no-deps --target`` of the example package (a copy: the build leaves files behind)."""
    source = target / "src"
    shutil.copytree(EXAMPLE, source)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target / "site"), str(source)], check=True, capture_output=True)
    path = os.pathsep.join([str(target / "site"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def test_an_installed_package_adds_its_environment(tmp_path):
    env = _install_example(tmp_path)
    code = ("from agentkd.envs import env_names, get_spec, load_tasks; "
            "print(env_names(), get_spec('lights').description, len(load_tasks('lights', 'train')))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("('household', 'qa', 'math', 'lights') a row of lamps") and out.strip().endswith(" 48")


@pytest.mark.slow
def test_collect_train_and_evaluate_an_installed_environment_through_the_cli(tmp_path):
    """The whole pipeline on a package agentkd has never heard of: expert data, a tiny student, a report."""
    env = _install_example(tmp_path)

    def cli(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "agentkd.cli", *args], env=env, cwd=tmp_path,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    store, student, report = tmp_path / "store", tmp_path / "sft", tmp_path / "report"
    out = cli("collect", "--env", "lights", "--split", "train", "--episodes", "24", "--store", str(store))
    assert "success 24/24" in out
    cli("train", "sft", "--env", "lights", "--store", str(store), "--student", "tiny", "--out", str(student),
        "--max-steps", "2", "--batch-size", "4")
    assert (student / "training_summary.json").is_file()
    cli("eval", "--env", "lights", "--student", str(student), "--split", "valid_unseen", "--max-tasks", "3",
        "--out", str(report))
    import json

    results = json.loads((report / "results.json").read_text())
    assert results["metadata"]["env"] == "lights"
    [config] = results["configs"]
    assert config["metrics"]["overall"]["episodes"] == 3
    assert list(config["metrics"]["by_task_type"]) == ["all_on", "pattern"]  # the spec's task types, in order
