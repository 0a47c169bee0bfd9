"""The `agentkd` command: instant help, play and watch, clear errors."""

from __future__ import annotations

from typer.testing import CliRunner

from agentkd.cli import app

runner = CliRunner()


def test_watch_the_expert_solve_a_task():
    result = runner.invoke(app, ["play", "household", "--split", "valid_unseen", "--index", "3", "--expert"])
    assert result.exit_code == 0, result.output
    assert "Your task is to:" in result.output and "think:" in result.output and "solved in" in result.output


def test_play_reads_commands_until_end_of_input():
    result = runner.invoke(app, ["play", "household", "--split", "valid_seen", "--index", "0"],
                           input="inventory\nquit\n")
    assert result.exit_code == 0
    assert "You are not carrying anything." in result.output


def test_bad_split_index_and_game_file_are_clear_errors(tmp_path):
    result = runner.invoke(app, ["play", "household", "--split", "test", "--index", "0"])
    assert result.exit_code == 2 and "available: train, valid_seen, valid_unseen" in result.output
    result = runner.invoke(app, ["play", "household", "--split", "valid_seen", "--index", "999"])
    assert result.exit_code == 2 and "0..139" in result.output
    bad = tmp_path / "bad.tw-pddl"
    bad.write_text("not json")
    result = runner.invoke(app, ["play", "household", "--game-file", str(bad)])
    assert result.exit_code == 2 and "bad.tw-pddl" in result.output
