"""Command options come from the config dataclasses (one place for a default and its help), and the CLI
turns agentkd's own errors into one line while a bug keeps its traceback."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields

import pytest
import typer
from typer.testing import CliRunner

from agentkd.cli.options import config_options
from agentkd.settings import documented_field, setting
from agentkd.train.config import GRPORunConfig, RediRunConfig, SFTRunConfig


def _options(stage: str) -> dict[str, object]:
    from agentkd.cli import app

    command = typer.main.get_command(app).commands["train"].commands[stage]
    return {p.name: p for p in command.params}


@pytest.mark.parametrize(("stage", "config_class"), [("sft", SFTRunConfig), ("redi", RediRunConfig),
                                                     ("grpo", GRPORunConfig)])
def test_every_documented_setting_is_an_option_with_the_configs_default_and_help(stage, config_class):
    options = _options(stage)
    shown = 0
    for f in fields(config_class):
        documented = documented_field(config_class, f.name)
        if documented is None or not documented.metadata["cli"]:
            assert f.name not in options, f.name
            continue
        option = options[f.name]
        default = f.default if f.default is not MISSING else f.default_factory()
        assert option.default == (",".join(default) if isinstance(default, list) else default), f.name
        assert option.help == documented.metadata["help"], f.name
        shown += 1
    assert shown >= 20
    assert "overrides" not in options and "--config" in options["config_file"].opts
    assert options["learning_rate"].opts == ["--lr"]
    # A stage's own default wins over the shared one; the help stays the shared one's.
    assert options["epochs"].default == config_class().epochs
    assert options["epochs"].help == documented_field(config_class, "epochs").metadata["help"]
    if stage == "grpo":
        assert options["invalid_action_penalty"].opts == ["--invalid-penalty"] and options["max_steps"].default == 100


@dataclass
class _Settings:
    name: str = setting("x", "A name.")
    rate: float | None = setting(None, "A rate.", flag="--lr")
    size: int = setting(4, "A size.", min=1)
    kinds: list[str] | None = setting(None, "Kinds.")
    quick: bool = setting(False, "Be quick.")
    careful: bool = setting(True, "Be careful.")
    hidden: dict = setting(help="Python only.", default_factory=dict, cli=False)


def test_a_command_gets_its_config_built_from_the_options():
    app = typer.Typer()
    seen = []

    @app.command()
    @config_options(_Settings)
    def run(config: _Settings, label: str = typer.Option("run", help="The command's own option.")) -> None:
        seen.append((label, config))

    @app.command()
    def other() -> None:  # a second command, so that `run` is addressed by name
        pass

    runner = CliRunner()
    result = runner.invoke(app, ["run", "--label", "mine", "--lr", "0.5", "--kinds", "a, b,", "--quick",
                                 "--no-careful", "--size", "2"])
    assert result.exit_code == 0, result.output
    assert seen[-1] == ("mine", _Settings(name="x", rate=0.5, size=2, kinds=["a", "b"], quick=True, careful=False))
    assert runner.invoke(app, ["run"]).exit_code == 0 and seen[-1] == ("run", _Settings())
    bounded = runner.invoke(app, ["run", "--size", "0"])
    assert bounded.exit_code == 2 and "--size" in bounded.output
    assert runner.invoke(app, ["run", "--hidden", "{}"]).exit_code == 2  # cli=False: not an option


def test_a_bad_setting_is_one_line_and_a_bug_shows_its_traceback(mixed_store, tmp_path):
    pytest.importorskip("trl")
    from agentkd.cli import app
    from agentkd.cli.train import _run_stage

    result = CliRunner().invoke(app, ["train", "sft", "--store", str(mixed_store.path), "--split", "valid_unseen",
                                      "--out", str(tmp_path / "o"), "--batching", "zigzag", "--max-steps", "1"])
    assert result.exit_code == 2 and "batching must be one of" in result.output
    assert "Traceback" not in result.output

    def broken():
        raise KeyError("a bug")

    with pytest.raises(KeyError, match="a bug"):  # not an AgentKDError: not turned into a one-line error
        _run_stage("sft", broken)
