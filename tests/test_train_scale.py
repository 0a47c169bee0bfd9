"""Training as TRL does it at scale: several processes, config files, logs, checkpoints, resume, the hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def expert_store(tmp_path_factory):
    """A real Chroma store with 8 expert episodes of valid_unseen (all won): a few seconds to record."""
    from agentkd.collection import collect
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.store import ExperienceStore

    root = tmp_path_factory.mktemp("expert_store")
    store = ExperienceStore(root / "store", spool_dir=root / "spool")
    collect(ExpertPolicy(), "household", "valid_unseen", 8, store)
    return store


def _config(**kwargs):
    from agentkd.train.sft import SFTRunConfig

    return SFTRunConfig(**({"split": "valid_unseen", "max_length": 512, "batch_size": 2, "logging_steps": 1} | kwargs))


# ---- the TRL config: overlays, unknown keys, the hub options ----------------------------------------------


def test_a_config_file_overlays_any_field_of_the_stages_trl_config(tmp_path):
    from transformers import TrainingArguments
    from trl import GRPOConfig, SFTConfig

    from agentkd.train.common import TrainConfigError, load_config_file, trl_config
    from agentkd.train.grpo import GRPORunConfig

    path = tmp_path / "trl.yaml"
    path.write_text("weight_decay: 0.1\nmax_grad_norm: 0.5\nlr_scheduler_type: linear\n")
    config = _config(overrides=load_config_file(path))
    args = trl_config(config, SFTConfig, tmp_path / "out", 1e-3, lr_scheduler_type="cosine", weight_decay=0.0)
    assert (args.weight_decay, args.max_grad_norm, args.lr_scheduler_type) == (0.1, 0.5, "linear")  # the file wins

    grpo = GRPORunConfig(overrides={"beta": 0.04, "num_iterations": 2})
    args = trl_config(grpo, GRPOConfig, tmp_path / "g", 1e-4, beta=0.0)
    assert args.beta == 0.04 and args.num_iterations == 2

    # A GRPO field is not a field of REDI's TrainingArguments: the error names it.
    with pytest.raises(TrainConfigError, match="TrainingArguments has no field 'beta'"):
        trl_config(_config(overrides={"beta": 0.04}), TrainingArguments, tmp_path / "r", 1e-4)

    for text, message in (("- a list\n", "must be a mapping"), ("a: [1,\n", "not valid YAML")):
        path.write_text(text)
        with pytest.raises(TrainConfigError, match=message):
            load_config_file(path)
    with pytest.raises(TrainConfigError, match="no such config file"):
        load_config_file(tmp_path / "missing.yaml")


def test_the_train_flags_reach_the_trl_config(tmp_path):
    from trl import GRPOConfig, SFTConfig

    from agentkd.train.common import checkpointing_argument, trl_config
    from agentkd.train.grpo import GRPORunConfig

    config = _config(push_to_hub=True, hub_model_id="me/household-student", save_steps=3, seed=7, grad_accum=2,
                     report_to="tensorboard", gradient_checkpointing=True)
    args = trl_config(config, SFTConfig, tmp_path, 1e-3)
    assert args.push_to_hub and args.hub_model_id == "me/household-student"
    assert args.save_strategy == "steps" and args.save_steps == 3
    assert args.seed == 7 and args.gradient_accumulation_steps == 2 and args.report_to == ["tensorboard"]
    assert getattr(args, checkpointing_argument()) is True
    default = trl_config(_config(), SFTConfig, tmp_path, 1e-3)
    assert not default.push_to_hub and default.save_strategy == "no" and default.report_to == []

    grpo = GRPORunConfig(beta=0.04, lora_r=8, grad_accum=4, batch_size=2, num_generations=8)
    args = trl_config(grpo, GRPOConfig, tmp_path, 1e-4, beta=grpo.beta, num_generations=grpo.num_generations)
    assert args.beta == 0.04 and args.gradient_accumulation_steps == 4


def test_the_commands_take_the_new_options_and_name_a_bad_config_key(expert_store, tmp_path):
    import typer
    from typer.testing import CliRunner

    from agentkd.cli import app

    train = typer.main.get_command(app).commands["train"]
    options = {stage: {o for p in train.commands[stage].params for o in p.opts} for stage in ("sft", "redi", "grpo")}
    for stage, names in options.items():
        for option in ("--config", "--report-to", "--save-steps", "--resume-from-checkpoint", "--push-to-hub",
                       "--hub-model-id", "--seed", "--grad-accum", "--gradient-checkpointing"):
            assert option in names, (stage, option)
    assert "--beta" in options["grpo"] and "--lora-r" in options["grpo"] and "--lora-r" in options["sft"]

    runner = CliRunner()

    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rte: 0.1\n")
    result = runner.invoke(app, ["train", "sft", "--store", str(expert_store.path), "--split", "valid_unseen",
                                 "--out", str(tmp_path / "o"), "--config", str(bad)])
    assert result.exit_code == 2 and "SFTConfig has no field 'learning_rte'" in result.output
    assert "Traceback" not in result.output


# ---- a real run: TensorBoard logs, the model card, the overlay winning over the flags ------------------------


def test_tensorboard_logs_the_loss_and_the_student_gets_a_model_card(expert_store, tmp_path):
    from huggingface_hub import ModelCard
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agentkd.train.sft import train_sft

    out = tmp_path / "student"
    summary = train_sft(expert_store, "tiny", out, _config(max_steps=10, report_to="tensorboard",
                                                            overrides={"max_steps": 3}))
    assert summary.steps == 3  # the overlay has the last word
    events = list((out / "runs").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file"
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    losses = accumulator.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3] and all(e.value > 0 for e in losses)
    assert [round(e.value, 4) for e in losses] == [round(x["loss"], 4) for x in summary.losses]

    card = ModelCard.load(out / "README.md")
    assert "sft" in card.data.tags and card.data.library_name == "transformers"
    assert "Base model: `tiny:tiny`" in card.text
    assert "| 1 | sft | 8 | 3 |" in card.text  # stage, examples, steps
    assert "8 examples kept of 8 considered" in card.text
    assert not list(out.glob("checkpoint-*"))  # no --save-steps: no checkpoints


def test_the_model_card_names_a_hub_base_and_shows_an_evaluation_table():
    from agentkd.models.student import StudentCard
    from agentkd.train.model_card import model_card

    card = StudentCard(base="HuggingFaceTB/SmolLM2-135M-Instruct",
                       stages=[{"stage": "sft", "steps": 40, "train_loss": 0.5, "tokens": 1000, "data": 12},
                               {"stage": "redi", "steps": 10, "train_loss": 0.2, "tokens": 300, "data": 6}])
    rendered = model_card(card, evaluation=[{"config": "greedy", "split": "valid_unseen", "episodes": 24,
                                             "success_rate": 0.75}], name="household-student")
    assert rendered.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert rendered.data.tags == ["agentkd", "agent-distillation", "sft", "redi"]
    assert "Stages: sft → redi." in rendered.text
    assert "| 2 | redi | 6 | 10 | 300 | 0.2 |" in rendered.text
    assert "## Evaluation" in rendered.text and "| greedy | valid_unseen | 24 | 0.75 |" in rendered.text
    assert model_card(StudentCard(base="/some/dir")).data.base_model is None  # a path is not a hub id


# ---- checkpoints and resume --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_that_died_after_a_checkpoint_resumes_to_the_same_end(expert_store, tmp_path):
    """Three runs of 4 steps: whole; dying right after checkpoint-2 is written; resumed from it."""
    from transformers import TrainerCallback

    from agentkd.train.sft import train_sft

    class Crash(Exception):
        pass

    class DieAfterCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise Crash(f"killed after checkpoint-{state.global_step}")

    whole = train_sft(expert_store, "tiny", tmp_path / "whole", _config(max_steps=4))
    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        train_sft(expert_store, "tiny", out, _config(max_steps=4, save_steps=2), callbacks=[DieAfterCheckpoint()])
    assert (out / "checkpoint-2" / "trainer_state.json").is_file() and not (out / "training_summary.json").exists()

    resumed = train_sft(expert_store, "tiny", out, _config(max_steps=4, save_steps=2, resume_from_checkpoint="last"))
    assert resumed.steps == whole.steps == 4
    assert [x["step"] for x in resumed.losses] == [1, 2, 3, 4]  # steps 1-2 from the checkpoint's state
    # The same data order, weights and optimizer state: steps 3 and 4, trained after the resume, match the whole run's.
    assert [x["loss"] for x in resumed.losses] == pytest.approx([x["loss"] for x in whole.losses], rel=1e-4)
    assert resumed.losses[2]["loss"] != resumed.losses[1]["loss"]
    assert (out / "checkpoint-4").is_dir() and (out / "README.md").is_file()

    from agentkd.train.sft import SFTRunConfig

    with pytest.raises(ValueError, match="checkpoint"):
        train_sft(expert_store, "tiny", tmp_path / "fresh", SFTRunConfig(split="valid_unseen", max_length=512,
                                                                         max_steps=1, resume_from_checkpoint="last"))


# ---- two processes -----------------------------------------------------------------------------------------


def _launch(args: list[str], processes: int) -> subprocess.CompletedProcess:
    """``agentkd`` in a subprocess: plain, or under torchrun with ``processes`` CPU processes (gloo)."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    launcher = [sys.executable, "-m", "agentkd.cli"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                    "-m", "agentkd.cli"]
    return subprocess.run([*launcher, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(expert_store, tmp_path):
    """SFT on the tiny student: 1 process with batch 4 and 2 gloo processes with batch 2 each take the same steps."""
    common = ["train", "sft", "--store", str(expert_store.path), "--split", "valid_unseen", "--epochs", "2",
              "--max-length", "512"]
    one = _launch([*common, "--batch-size", "4", "--out", str(tmp_path / "one" / "student")], 1)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _launch([*common, "--batch-size", "2", "--out", str(tmp_path / "two" / "student")], 2)
    assert two.returncode == 0, two.stderr[-3000:]

    assert two.stdout.count("sft → ") == 1  # one process reports
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["student"]
    s1, s2 = (json.loads((tmp_path / run / "student" / "training_summary.json").read_text()) for run in ("one", "two"))
    assert (s1["processes"], s2["processes"]) == (1, 2) and s1["global_batch"] == s2["global_batch"] == 4
    assert s1["steps"] == s2["steps"] == 4  # 8 examples, global batch 4, 2 epochs
    assert s1["data"] == s2["data"] and s1["tokens"] == s2["tokens"]  # every example seen as often, counted once
    card = json.loads((tmp_path / "two" / "student" / "agentkd_student.json").read_text())
    assert [s["stage"] for s in card["stages"]] == ["sft"]  # written once
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "two" / "student").config.model_type == "qwen2"

    # Bad input found by the main process ends every process at once, reported once: only the main process
    # reads the store (each process reading it would report it).
    bad = _launch(["train", "sft", "--store", str(expert_store.path), "--split", "train", "--batch-size", "2",
                   "--out", str(tmp_path / "bad")], 2)
    assert bad.returncode != 0
    assert (bad.stdout + bad.stderr).count("has no trajectories (env=household, split=train)") == 1
    assert not (tmp_path / "bad").exists()


def test_grpo_rollout_totals_add_up_over_processes():
    from agentkd.train.grpo import RolloutStats

    a = RolloutStats(episodes=4, wins=1, env_reward=1.0, invalid_actions=3, turns=20, prompt_tokens=400,
                     model_tokens=90, env_tokens=200)
    b = RolloutStats(episodes=4, wins=3, env_reward=3.0, invalid_actions=1, turns=12, prompt_tokens=380,
                     model_tokens=70, env_tokens=150)
    total = RolloutStats().merged([a, b])
    assert (total.episodes, total.wins, total.turns, total.model_tokens) == (8, 4, 32, 160)
    assert total.as_dict()["win_rate"] == 0.5
