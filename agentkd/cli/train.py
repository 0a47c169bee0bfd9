"""`agentkd train sft|redi|grpo`: train students.

Each command's options are its stage's settings (:mod:`agentkd.train.config`: defaults and help live
there). Runs the same under ``accelerate launch -m agentkd.cli train ...`` (or torchrun): the main
process opens the store, builds the data and writes the results; every process trains.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from agentkd.cli.common import DEFAULT_STORE, _fail, _notes, _open_store, app
from agentkd.cli.options import config_options
from agentkd.errors import AgentKDError
from agentkd.models.student import STUDENT_HELP
from agentkd.train.config import GRPORunConfig, RediRunConfig, SFTRunConfig, StageConfig
from agentkd.train.summary import TrainingSummary

train_app = typer.Typer(no_args_is_help=True, help="Train students: sft, then redi, then grpo.")
app.add_typer(train_app, name="train")

# Options every stage has that are not settings of the run.
_STORE = typer.Option(DEFAULT_STORE, help="Store folder, or http://host:port of a Chroma server.")
_OUT = typer.Option(..., help="Directory for the trained student.")
_CONFIG = typer.Option(None, "--config", help="YAML file of fields of the stage's TRL config (SFTConfig, the REDI "
                       "TrainingArguments, GRPOConfig), applied last, e.g. `deepspeed: ds.json` or `beta: 0.04`.")
_DOWNLOAD = typer.Option(False, "--allow-download", help="Fetch a hub model that is not cached.")


def _with_file(config: StageConfig, config_file: str | None) -> None:
    """Set ``config``'s overrides to the fields of ``--config FILE.yaml`` (a bad file is a one-line error)."""
    from agentkd.train.common import TrainConfigError, load_config_file

    try:
        config.overrides = load_config_file(config_file) if config_file else {}
    except TrainConfigError as exc:
        _fail(str(exc))


def _main_store(store: str):
    """The store, opened by the main process only (under a launcher the others get None and wait for its data)."""
    from agentkd.train.distributed import is_main_process

    return _open_store(store) if is_main_process() else None


def _run_stage(stage: str, run: Callable[[], TrainingSummary]) -> None:
    """Run a training stage; agentkd's errors become one line (anything else is a bug: its traceback shows),
    the outcome a short table (main process)."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.train.distributed import MainProcessFailed, is_main_process

    try:
        with _notes():
            summary = run()
    except MainProcessFailed:  # under a launcher: the main process prints the reason once
        raise typer.Exit(code=2) from None
    except AgentKDError as exc:  # StoreError, EmptyDatasetError, StudentNotFound, TrainConfigError, ...
        _fail(str(exc))
    if not is_main_process():
        return
    table = Table(title=f"{stage} → {summary.student}")
    table.add_column("")
    table.add_column("", justify="right")
    data = summary.data
    dropped = ", ".join(f"{k} {v}" for k, v in data.dropped.items()) or "none"
    first = summary.losses[0]["loss"] if summary.losses else None
    rows = [
        ("examples", f"{data.kept} (of {data.considered}; truncated {data.truncated}; dropped: {dropped})"),
        ("steps", str(summary.steps)),
        ("loss (first → last)", f"{first:.4f} → {summary.final_loss:.4f}" if first is not None else "-"),
        ("train time", f"{summary.train_seconds:.1f} s"),
        ("tokens/s", f"{summary.tokens_per_second}"),
    ]
    if data.extra("pairs") is not None:
        rows.insert(1, ("pairs", ", ".join(f"{k} {v}" for k, v in data.extra("pairs").items())))
    if data.extra("rollouts") is not None:
        r = data.extra("rollouts")
        rows.insert(1, ("rollouts", f"{r.get('episodes')} episodes, win rate {r.get('win_rate', 0):.0%}"))
    for name, value in rows:
        table.add_row(name, value)
    console = Console(soft_wrap=True)
    console.print(table)
    console.print(f"summary: {summary.student}/training_summary.json; model card: {summary.student}/README.md")


@train_app.command("sft")
@config_options(SFTRunConfig)
def train_sft_cmd(config: SFTRunConfig, store: str = _STORE, student: str = typer.Option("tiny", help=STUDENT_HELP),
                  out: str = _OUT, config_file: str = _CONFIG, allow_download: bool = _DOWNLOAD) -> None:
    """Stage 1: supervised fine-tuning on the store's successful trajectories (TRL SFTTrainer)."""
    from agentkd.train.sft import train_sft

    _with_file(config, config_file)
    experience = _main_store(store)
    _run_stage("sft", lambda: train_sft(experience, student, out, config, allow_download=allow_download))


@train_app.command("redi")
@config_options(RediRunConfig)
def train_redi_cmd(config: RediRunConfig, store: str = _STORE,
                   student: str = typer.Option(..., help="The SFT student's directory (or any model: "
                                               + STUDENT_HELP + ")"),
                   out: str = _OUT, config_file: str = _CONFIG, allow_download: bool = _DOWNLOAD) -> None:
    """Stage 2: REDI on successful vs failed trajectories (record failures with `agentkd collect --teacher DIR`)."""
    from agentkd.train.redi import train_redi

    _with_file(config, config_file)
    experience = _main_store(store)
    _run_stage("redi", lambda: train_redi(experience, student, out, config, allow_download=allow_download))


@train_app.command("grpo")
@config_options(GRPORunConfig)
def train_grpo_cmd(config: GRPORunConfig, student: str = typer.Option(..., help=STUDENT_HELP), out: str = _OUT,
                   config_file: str = _CONFIG, allow_download: bool = _DOWNLOAD) -> None:
    """Stage 3: GRPO with multi-turn rollouts in the environment and its reward (TRL GRPOTrainer)."""
    from agentkd.train.grpo import train_grpo

    _with_file(config, config_file)
    _run_stage("grpo", lambda: train_grpo(student, out, config, allow_download=allow_download))
