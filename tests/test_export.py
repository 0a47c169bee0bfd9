"""`agentkd store export --format messages` (TRL-ready chats and the steps table) and `store push`'s dataset."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agentkd.cli import app


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """6 expert episodes of valid_unseen (won) and one failed copy of the first (its last step removed)."""
    from agentkd.collection import collect
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.store import ExperienceStore

    root = tmp_path_factory.mktemp("export_store")
    experience = ExperienceStore(root / "store", spool_dir=root / "spool")
    collect(ExpertPolicy(), "household", "valid_unseen", 6, experience)
    first = next(experience.iterate())
    failed = first.model_copy(update={"trajectory_id": first.trajectory_id + "-cut", "steps": first.steps[:-1],
                                      "success": False, "reward": 0.0})
    experience.upsert([failed])
    return experience


def test_messages_export_is_what_sft_trains_on_and_the_steps_table_its_steps(store, tmp_path):
    from agentkd.distill.datasets import sft_conversations

    out = tmp_path / "chats.jsonl"
    result = CliRunner().invoke(app, ["store", "export", str(out), "--store", str(store.path), "--format", "messages"])
    assert result.exit_code == 0, result.output
    assert "exported 6 conversations (of 7 trajectories; left out: failed 1)" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    expected, _ = sft_conversations(list(store.iterate()))
    assert rows == json.loads(json.dumps(expected)) and len(rows) == 6
    assert all(set(row) == {"messages"} and row["messages"][0]["role"] == "system" for row in rows)

    steps = [json.loads(line) for line in (tmp_path / "chats.steps.jsonl").read_text().splitlines()]
    successes = [t for t in store.iterate() if t.success]
    assert len(steps) == sum(len(t.steps) for t in successes) and all(s["success"] for s in steps)
    # The prompt before an episode's last step plus its reply is the episode's whole conversation.
    last = max((s for s in steps if s["trajectory_id"] == successes[0].trajectory_id), key=lambda s: s["step"])
    conversation = next(r["messages"] for r in rows if r["messages"][1] == last["prompt"][1]
                        and len(r["messages"]) == len(last["prompt"]) + 1)
    assert last["prompt"] + last["completion"] == conversation

    failed = tmp_path / "failed.jsonl"
    result = CliRunner().invoke(app, ["store", "export", str(failed), "--store", str(store.path), "--format",
                                      "messages", "--failure", "--steps", str(tmp_path / "failed_steps.jsonl")])
    assert result.exit_code == 0 and "exported 1 conversations (of 1 trajectories" in result.output
    result = CliRunner().invoke(app, ["store", "export", str(failed), "--store", str(store.path), "--format", "csv"])
    assert result.exit_code == 2 and "--format must be jsonl or messages" in result.output


@pytest.mark.slow
def test_trls_sft_trainer_trains_on_the_exported_file_directly(store, model_dir, tmp_path):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    out = tmp_path / "chats.jsonl"
    CliRunner().invoke(app, ["store", "export", str(out), "--store", str(store.path), "--format", "messages"])
    for data_file in (out, tmp_path / "chats.steps.jsonl"):  # conversational, then prompt-completion
        dataset = load_dataset("json", data_files=str(data_file), split="train")
        args = SFTConfig(output_dir=str(tmp_path / "trl"), max_steps=2, per_device_train_batch_size=2,
                         logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, max_length=512,
                         assistant_only_loss=data_file == out, dataset_num_proc=None)
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=args, train_dataset=dataset,
                             processing_class=AutoTokenizer.from_pretrained(model_dir))
        trainer.train()
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        assert trainer.state.global_step == 2 and len(losses) == 2 and all(loss > 0 for loss in losses)


def test_push_builds_the_dataset_and_its_card_offline(store, tmp_path):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    folder = tmp_path / "hub"
    result = CliRunner().invoke(app, ["store", "push", "--repo", "me/household-trajectories", "--store",
                                      str(store.path), "--save-to", str(folder)])
    assert result.exit_code == 0, result.output
    card = DatasetCard.load(folder / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["trajectories", "messages", "steps"]
    assert "agentkd" in card.data.tags and "household" in card.data.tags
    assert "7 episodes" in card.text and "| `messages` | 6 |" in card.text and "| `trajectories` | 7 |" in card.text
    tables = {c["config_name"]: load_dataset("parquet", data_files=str(folder / c["data_files"][0]["path"]),
                                             split="train") for c in card.data.configs}
    assert len(tables["trajectories"]) == 7 and len(tables["messages"]) == 6
    assert sorted(tables["trajectories"]["trajectory_id"]) == sorted(t.trajectory_id for t in store.iterate())
    assert len(tables["steps"]) == sum(len(t.steps) for t in store.iterate() if t.success)

    result = CliRunner().invoke(app, ["store", "push", "--repo", "me/x", "--store", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "Traceback" not in result.output
