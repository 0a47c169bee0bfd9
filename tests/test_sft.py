"""The SFT stage end to end on a real store, and its errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agentkd.distill.datasets import EmptyDatasetError
from agentkd.models.student import CARD_FILE, StudentNotFound
from agentkd.train.summary import TrainingSummary

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def sft_run(mixed_store, tmp_path_factory):
    from agentkd.train.sft import SFTRunConfig, train_sft

    out = tmp_path_factory.mktemp("sft") / "student"
    config = SFTRunConfig(split="valid_unseen", max_steps=3, batch_size=2, max_length=1024, logging_steps=1)
    return out, train_sft(mixed_store, "tiny", out, config)


def test_sft_writes_a_plain_transformers_student_with_its_summary(sft_run, mixed_store):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, summary = sft_run
    model, tokenizer = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "qwen2" and tokenizer.chat_template
    written = json.loads((out / "training_summary.json").read_text())
    assert TrainingSummary.load(out) == summary and written == summary.model_dump(mode="json")
    assert written["stage"] == "sft" and written["steps"] == 3
    assert written["data"]["kept"] == mixed_store.count(success=True)  # only successes train
    assert written["data"]["dropped"]["failed"] == mixed_store.count(success=False)
    assert written["tokens"] > 0 and written["tokens_per_second"] > 0
    assert [entry["step"] for entry in written["losses"]] == [1, 2, 3]
    assert all(entry["loss"] > 0 for entry in written["losses"])
    card = json.loads((out / CARD_FILE).read_text())
    assert card["base"] == "tiny:tiny" and [s["stage"] for s in card["stages"]] == ["sft"]
    assert card["prompt"] == {"max_history": None, "show_admissible": False, "demos": False}


def test_the_student_is_replayed_with_the_prompt_it_was_trained_on(sft_run):
    from agentkd.policies.hf import HFPolicy

    out, _ = sft_run
    policy = HFPolicy(str(out), max_new_tokens=4)
    assert policy.prompt.max_history is None and not policy.prompt.show_admissible
    assert policy.info.params["show_admissible"] is False


def test_sft_learns_the_data(mixed_store, tmp_path):
    """25 steps on 24 episodes take the loss well below where a random model starts."""
    from agentkd.train.sft import SFTRunConfig, train_sft

    config = SFTRunConfig(split="valid_unseen", max_steps=25, batch_size=2, max_length=1024, logging_steps=1)
    summary = train_sft(mixed_store, "tiny", tmp_path / "s", config)
    losses = [entry["loss"] for entry in summary.losses]
    assert losses[-1] < 0.6 * losses[0]


def _store(tmp_path, name):
    from agentkd.store import ExperienceStore

    return ExperienceStore(tmp_path / name, spool_dir=tmp_path / f"{name}_spool")


def test_an_empty_store_says_what_to_collect(tmp_path):
    from agentkd.train.sft import train_sft

    with pytest.raises(EmptyDatasetError, match="no trajectories .*agentkd collect"):
        train_sft(_store(tmp_path, "empty"), "tiny", tmp_path / "out")


def test_a_store_of_failures_only_is_refused(tmp_path, model_dir):
    from agentkd.collection import collect
    from agentkd.policies.hf import HFPolicy
    from agentkd.train.sft import SFTRunConfig, train_sft

    store = _store(tmp_path, "failed")
    collect(HFPolicy(str(model_dir), max_new_tokens=8), "household", "valid_unseen", 2, store, max_steps=2)
    with pytest.raises(EmptyDatasetError, match="2 trajectories .* none succeeded"):
        train_sft(store, "tiny", tmp_path / "out", SFTRunConfig(split="valid_unseen"))


def test_an_unknown_student_fails_at_once_offline(mixed_store, tmp_path):
    from agentkd.train.sft import SFTRunConfig, train_sft

    config = SFTRunConfig(split="valid_unseen")
    with pytest.raises(StudentNotFound, match="not found locally.*allow_download"):
        train_sft(mixed_store, "agentkd-test/no-such-student", tmp_path / "out", config)
    with pytest.raises(StudentNotFound, match="does not exist"):
        train_sft(mixed_store, str(tmp_path / "missing" / "dir"), tmp_path / "out", config)
    with pytest.raises(StudentNotFound, match="unknown tiny size"):
        train_sft(mixed_store, "tiny:huge", tmp_path / "out", config)


def test_lora_trains_adapters_and_saves_a_merged_model(mixed_store, sft_run, tmp_path):
    from transformers import AutoModelForCausalLM

    from agentkd.train.sft import SFTRunConfig, train_sft

    base, _ = sft_run
    config = SFTRunConfig(split="valid_unseen", max_steps=2, batch_size=2, max_length=1024, lora=True, lora_r=4,
                          learning_rate=1e-2)
    out = tmp_path / "lora"
    summary = train_sft(mixed_store, str(base), out, config)
    assert summary.steps == 2
    assert not (out / "adapter_config.json").exists()
    merged, original = AutoModelForCausalLM.from_pretrained(out), AutoModelForCausalLM.from_pretrained(base)
    changed = [name for name, p in merged.state_dict().items() if not p.equal(original.state_dict()[name])]
    assert changed and all("proj" in name for name in changed)
    card = json.loads((out / CARD_FILE).read_text())
    assert [s["stage"] for s in card["stages"]] == ["sft", "sft"]


def test_the_train_commands_run_the_stages_and_explain_bad_input(mixed_store, sft_run, tmp_path):
    from typer.testing import CliRunner

    from agentkd.cli import app

    runner = CliRunner()
    empty = _store(tmp_path, "empty")
    result = runner.invoke(app, ["train", "sft", "--store", str(empty.path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no trajectories" in result.output and "agentkd collect" in result.output

    base, _ = sft_run
    result = runner.invoke(app, ["train", "redi", "--store", str(empty.path), "--student", str(base),
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "no trajectories" in result.output

    result = runner.invoke(app, ["train", "sft", "--store", str(mixed_store.path), "--split", "valid_unseen",
                                 "--max-steps", "1", "--batch-size", "2", "--max-length", "512",
                                 "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "training_summary.json" in result.output and (tmp_path / "cli" / "training_summary.json").is_file()

    result = runner.invoke(app, ["train", "sft", "--store", str(mixed_store.path), "--split", "valid_unseen",
                                 "--student", "no-such/model", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "not found locally" in result.output


def test_icd_examples_show_similar_teacher_steps_but_never_the_own_task(mixed_store):
    from agentkd.distill.datasets import icd_step_examples
    from agentkd.models.student import PromptFormat
    from agentkd.replay.icd import DemoRetriever

    wins = [t for t in mixed_store.iterate(success=True)][:6]
    fmt = PromptFormat(max_history=2, demos=True)
    retriever = DemoRetriever(mixed_store, k=2, max_tokens=400, split="valid_unseen")
    rows, report = icd_step_examples(wins, retriever, fmt=fmt)
    assert report.kept == len(rows) == sum(t.num_steps for t in wins) and report.extra["episodes"] == 6
    with_demos = [r for r in rows if r["prompt"][-1]["content"].startswith("Similar steps by the teacher:")]
    assert 0 < report.extra["with_demos"] == len(with_demos)
    steps = [step for traj in wins for step in traj.steps]
    for row, step in zip(rows, steps, strict=True):  # one example per step, in order, its reply the completion
        reply = f"Thought: {step.thought}\nAction: {step.action}"
        assert row["completion"] == [{"role": "assistant", "content": reply}]
        assert row["prompt"][-1]["role"] == "user"
        assert row["prompt"][-1]["content"].endswith(step.observation.strip())
    # Hits from the example's own task are offered by the store (several expert episodes per task here)
    # and skipped; all others are kept.
    task_of = {t.trajectory_id: t.task_id for t in mixed_store.iterate()}
    offered = []

    class Recording(DemoRetriever):
        def retrieve(self, inputs, skip=None):
            def spy(inp, hit):
                offered.append((inp.task.task_id == task_of[hit.trajectory_id], skip(inp, hit)))
                return offered[-1][1]
            return super().retrieve(inputs, skip=spy)

    icd_step_examples(wins, Recording(mixed_store, k=2, max_tokens=400, split="valid_unseen"), fmt=fmt)
    assert any(same for same, _ in offered) and any(not same for same, _ in offered)
    assert all(same == skipped for same, skipped in offered)


def test_an_icd_student_records_its_format_and_is_replayed_only_with_demonstrations(mixed_store, tmp_path):
    from agentkd.replay.icd import DemoRetriever
    from agentkd.replay.policy import StudentPolicy
    from agentkd.train.sft import SFTRunConfig, train_sft

    config = SFTRunConfig(split="valid_unseen", max_steps=2, batch_size=2, max_length=1024, icd=True, icd_history=2)
    summary = train_sft(mixed_store, "tiny", tmp_path / "icd", config)
    card = json.loads((tmp_path / "icd" / CARD_FILE).read_text())
    assert card["prompt"] == {"max_history": 2, "show_admissible": False, "demos": True}
    assert summary.data.kept == sum(t.num_steps for t in mixed_store.iterate(success=True))
    with pytest.raises(ValueError, match=r"\+icd"):
        StudentPolicy(str(tmp_path / "icd"))
    StudentPolicy(str(tmp_path / "icd"), demos=DemoRetriever(mixed_store, split="valid_unseen"))


def test_a_time_budget_ends_training_and_saves_the_student(mixed_store, tmp_path):
    """--max-minutes stops the run at the deadline (here: after the first step) and the student is still saved."""
    from agentkd.train.sft import SFTRunConfig, train_sft

    config = SFTRunConfig(split="valid_unseen", max_steps=50, batch_size=2, max_length=1024, logging_steps=1,
                          max_minutes=1e-6)
    summary = train_sft(mixed_store, "tiny", tmp_path / "s", config)
    assert summary.steps == 1
    assert (tmp_path / "s" / "config.json").is_file()


def test_the_clock_schedule_warms_up_then_decays_to_zero(monkeypatch):
    from types import SimpleNamespace

    from agentkd.train import common

    now = [0.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: now[0])
    (callback,) = common.time_budget_callback(10.0, warmup_ratio=0.1)
    group = {"lr": 1e-4, "initial_lr": 1e-4}
    optimizer, control = SimpleNamespace(param_groups=[group]), SimpleNamespace(should_training_stop=False)
    callback.on_train_begin(None, None, control)
    rates = []
    for minute in (0.5, 1.0, 5.5, 9.9, 10.0):
        now[0] = 60 * minute
        callback.on_step_end(None, None, control, optimizer=optimizer)
        rates.append(group["lr"])
    assert rates[0] == pytest.approx(0.5e-4) and rates[1] == pytest.approx(1e-4)  # warm-up, then the peak
    assert rates[2] == pytest.approx(0.5e-4) and rates[3] < 1e-6  # cosine to zero at the deadline
    assert control.should_training_stop


def test_loading_a_student_on_the_cpu_bounds_onednns_kernel_caches(monkeypatch, model_dir):
    """oneDNN keeps a compiled kernel per input shape (1,024 by default); replay's shapes change on every
    call (an sc@8 evaluation in bf16 grew to 23 GB). A value the user set is kept."""
    from agentkd.models.student import CPU_KERNEL_CACHE_CAPACITY, load_student

    names = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "7")
    load_student(model_dir, device="cpu")
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(CPU_KERNEL_CACHE_CAPACITY) == "64"
    assert os.environ["LRU_CACHE_CAPACITY"] == "7"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trimming_the_heap_gives_freed_holes_back_to_the_system():
    """Blocks freed between live ones stay resident until trimmed: a float32 replay evaluation grew 3.7 -> 7.4 GB
    that way. In a fresh process: 200 MB of 64 KB blocks, each followed by a small live one, all freed."""
    script = """
import ctypes, json
from agentkd.models.student import trim_cpu_heap
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
big, pins = [], []
for _ in range(3200):
    block = libc.malloc(64 * 1024)
    ctypes.memset(block, 1, 64 * 1024)  # touched: resident
    big.append(block)
    pins.append(libc.malloc(32))  # keeps the freed block from joining the top of the heap
for block in big:
    libc.free(block)
freed = rss_mb()
trimmed = trim_cpu_heap()
print(json.dumps({"freed": freed, "after": rss_mb(), "trimmed": trimmed}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["trimmed"] is True
    assert row["freed"] - row["after"] > 150  # of the 200 MB freed, nearly all leaves the process


def test_training_precision_follows_the_hardware(monkeypatch):
    from trl import SFTConfig

    from agentkd.models.student import cpu_has_fast_bf16
    from agentkd.train.common import checkpointing_argument, training_arguments, trl_config
    from agentkd.train.config import StageConfig

    monkeypatch.setenv("AGENTKD_CPU_BF16", "1")
    assert cpu_has_fast_bf16() and training_arguments("out")["bf16"] is True
    monkeypatch.setenv("AGENTKD_CPU_BF16", "0")
    assert not cpu_has_fast_bf16() and training_arguments("out")["bf16"] is False
    monkeypatch.delenv("AGENTKD_CPU_BF16")
    flags = open("/proc/cpuinfo").read()
    assert cpu_has_fast_bf16() == ("amx_bf16" in flags or "avx512_bf16" in flags)
    # TRL turns gradient checkpointing on by default; it costs a third more compute that a small student need not pay.
    assert getattr(trl_config(StageConfig(), SFTConfig, "out", 1e-4), checkpointing_argument()) is False


def test_the_compact_head_gives_trls_loss_and_gradients_from_the_labelled_positions_only(model_dir):
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from agentkd.train.compact_head import compact_lm_head

    torch.manual_seed(0)
    ids = torch.randint(4, 500, (2, 40))
    labels = ids.clone()
    labels[:, :25] = -100  # a prompt
    labels[1, 35:] = -100  # and padding
    results = []
    for compact in (False, True):
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
        if compact:
            assert compact_lm_head(model)
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.loss.backward()
        results.append((out, model.get_output_embeddings().weight.grad.clone()))
    (trl, trl_grad), (ours, our_grad) = results
    torch.testing.assert_close(ours.loss, trl.loss, rtol=1e-5, atol=1e-5)
    for field in ("log_probs", "entropy", "is_top1", "label_mask"):
        torch.testing.assert_close(getattr(ours, field).float(), getattr(trl, field).float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(our_grad, trl_grad, rtol=1e-4, atol=1e-6)


def test_bench_train_replays_the_sft_batches_in_a_plain_loop():
    from agentkd.bench.train import bench_sft_vs_loop

    r = bench_sft_vs_loop("tiny", episodes=4, batch_size=2, steps=2, precision_tokens=64, split="valid_unseen")
    assert r["sft"]["steps"] == r["loop_fp32"]["steps"] == 2
    assert r["loop_fp32"]["tokens"] > 0
    assert r["precision_fp32"]["tokens"] == r["loop_bf16"]["tokens"] <= 64
    assert r["sft_vs_loop"] > 0 and r["bf16_vs_fp32"] > 0
