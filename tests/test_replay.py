"""The replay engine, self-consistent voting, the cascade, in-context distillation and evaluation runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentkd.policies.base import PolicyInput
from agentkd.policies.expert import ExpertPolicy
from agentkd.replay.self_consistency import vote

pytest.importorskip("torch")

ADMISSIBLE = ["go to cabinet 1", "go to sinkbasin 1", "open cabinet 1", "look"]


@pytest.fixture(scope="module")
def engine(model_dir):
    from agentkd.replay.engine import ReplayEngine

    return ReplayEngine(str(model_dir))


@pytest.fixture(scope="module")
def conversations(mixed_store):
    from agentkd.distill.datasets import trajectory_messages

    wins = sorted((t for t in mixed_store.iterate(success=True)), key=lambda t: t.trajectory_id)[:4]
    return [trajectory_messages(t) for t in wins]


def test_engine_decodes_exactly_like_transformers_generate_and_reuses_prefixes(engine, conversations, model_dir):
    from agentkd.policies.hf import HFGenerator
    from agentkd.replay.engine import GenerationRequest

    reference = HFGenerator(str(model_dir))
    engine.reset_stats()
    for turn in range(3):  # the prompts of steps 0, 1, 2 of four episodes (different lengths)
        prompts = [c[: 2 + 2 * turn] for c in conversations]
        expected = [r.text for r in reference.generate(prompts, max_new_tokens=20)]
        requests = [GenerationRequest(key=("episode", i), prompt_ids=engine.encode(reference.render(p)),
                                      max_new_tokens=20) for i, p in enumerate(prompts)]
        got = [samples[0].text for samples in engine.generate(requests)]
        assert got == expected
        if turn == 0:
            assert engine.stats.prefilled_tokens == engine.stats.prompt_tokens
    # Later steps prefilled only what was new: far less than their whole prompts.
    assert engine.stats.prefilled_tokens < 0.6 * engine.stats.prompt_tokens
    # One compact prefix per episode, holding exactly its last prompt's positions (no padding, no old copies).
    kept = {key: prefix for key, prefix in engine._prefixes.items() if key[0] == "episode"}
    assert len(kept) == len(conversations)
    for prefix in kept.values():
        assert all(k.shape[1] == v.shape[1] == len(prefix.ids) for k, v in prefix.kv)


def test_a_prompt_that_differs_from_the_cached_one_is_recomputed(engine, conversations):
    from agentkd.policies.hf import render_chat
    from agentkd.replay.engine import GenerationRequest, ReplayEngine

    tok = engine.tokenizer
    original = engine.encode(render_chat(tok, conversations[0][:4]))
    edited = [dict(m) for m in conversations[0][:4]]
    edited[1]["content"] = edited[1]["content"].replace("Your task", "The task")  # early change: little to reuse
    changed = engine.encode(render_chat(tok, edited))
    key = "same-episode"
    engine.generate([GenerationRequest(key=key, prompt_ids=original, max_new_tokens=8)])
    reused = engine.generate([GenerationRequest(key=key, prompt_ids=changed, max_new_tokens=16)])[0][0]
    fresh = ReplayEngine(engine.model, engine.tokenizer).generate(
        [GenerationRequest(key=key, prompt_ids=changed, max_new_tokens=16)])[0][0]
    assert reused.token_ids == fresh.token_ids


def test_samples_share_one_prefill_and_are_repeatable(model_dir, conversations):
    from agentkd.policies.hf import render_chat
    from agentkd.replay.engine import GenerationRequest, ReplayEngine

    runs = []
    for _ in range(2):
        engine = ReplayEngine(str(model_dir), seed=7)
        prompt = engine.encode(render_chat(engine.tokenizer, conversations[1][:2]))
        samples = engine.generate([GenerationRequest(key=0, prompt_ids=prompt, n=6, temperature=1.0,
                                                     max_new_tokens=12)])[0]
        assert len(samples) == 6
        assert engine.stats.prefilled_tokens == len(prompt)  # computed once for all six samples
        runs.append([s.token_ids for s in samples])
    assert runs[0] == runs[1]
    assert len({tuple(ids) for ids in runs[0]}) > 1  # sampling, not six copies


def test_a_seeded_requests_samples_do_not_depend_on_what_shares_its_batch(model_dir, conversations):
    """An evaluation's result per task must not change with the number of workers or a resumed run."""
    import torch

    from agentkd.policies.hf import render_chat
    from agentkd.replay.engine import GenerationRequest, ReplayEngine

    engine = ReplayEngine(str(model_dir), seed=5, dtype=torch.float32)
    prompts = [engine.encode(render_chat(engine.tokenizer, c[:2])) for c in conversations]

    def request(i: int, seed: object = "task-0:0:0") -> GenerationRequest:
        return GenerationRequest(key=("seeded", i), prompt_ids=prompts[i], n=4, temperature=1.0, max_new_tokens=10,
                                 seed=seed)

    alone = [s.token_ids for s in engine.generate([request(0)])[0]]
    engine.clear()
    crowded = engine.generate([request(2, "other"), request(1, None), request(0), request(3, "more")])
    assert [s.token_ids for s in crowded[2]] == alone
    assert len({tuple(ids) for ids in alone}) > 1  # the four samples still differ from each other
    engine.clear()
    reseeded = [s.token_ids for s in engine.generate([request(0, "task-0:1:0")])[0]]
    assert reseeded != alone  # another episode of the same task (seed 1) samples otherwise


def test_an_engine_on_the_cpu_trims_the_heap_after_each_call(model_dir, conversations, monkeypatch):
    """Each step frees the episodes' key/value tensors and allocates longer ones: without a trim the freed
    holes stay resident (a float32 sc@8 evaluation grew 3.7 -> 7.4 GB over 12 episodes)."""
    from agentkd.policies.hf import render_chat
    from agentkd.replay import engine as engine_module
    from agentkd.replay.engine import GenerationRequest, ReplayEngine

    calls = []
    monkeypatch.setattr(engine_module, "trim_cpu_heap", lambda: calls.append(1) or True)
    monkeypatch.setattr(ReplayEngine, "TRIM_EVERY_S", 0.0)  # an evaluation's calls take seconds: each trims
    trimming, keeping = ReplayEngine(str(model_dir), max_rows=2), ReplayEngine(str(model_dir), trim_heap=False)
    assert trimming.trim_heap and not keeping.trim_heap
    prompt = trimming.encode(render_chat(trimming.tokenizer, conversations[0][:2]))
    requests = [GenerationRequest(key=i, prompt_ids=prompt, max_new_tokens=3) for i in range(3)]
    trimming.generate(requests)  # two chunks of at most 2 rows, one trim
    trimming.generate(requests[:1])
    keeping.generate(requests)
    assert len(calls) == 2
    monkeypatch.setattr(ReplayEngine, "TRIM_EVERY_S", 3600.0)  # millisecond calls: a trim would cost more
    for _ in range(3):
        trimming.generate(requests[:1])
    assert len(calls) == 2


def test_vote_majority_then_log_probability_then_fallback():
    texts = ["Thought: a\nAction: go to cabinet 1", "Action: Go to  cabinet 1.", "Thought: b\nAction: look",
             "gibberish", "Action: go to the moon"]
    outcome = vote(texts, [-1.0, -2.0, -0.1, -0.01, -0.05], ADMISSIBLE)
    assert outcome.parsed.action == "go to cabinet 1" and outcome.winner == 0  # 2 votes beat 1, best sample kept
    assert outcome.agreement == pytest.approx(2 / 5)
    valid = [c for c in outcome.candidates if c.valid]
    assert [(c.action, c.votes) for c in valid] == [("go to cabinet 1", 2), ("look", 1)]
    assert sum(not c.valid for c in outcome.candidates) == 2  # unparseable and inadmissible are dropped

    tie = vote(["Action: look", "Action: open cabinet 1"], [-3.0, -0.5], ADMISSIBLE)
    assert tie.parsed.action == "open cabinet 1" and tie.agreement == pytest.approx(0.5)

    none = vote(["nothing", "Action: fly"], [-4.0, -1.0], ADMISSIBLE)
    assert not none.parsed.valid and none.winner == 1 and none.agreement == 0.0


def test_a_garbage_student_is_capped_recorded_and_the_episode_goes_on(engine):
    from agentkd.agents import play_episode
    from agentkd.replay.policy import StudentPolicy
    from environments.household import HouseholdEnv, load_split

    policy = StudentPolicy(engine, samples=4, max_new_tokens=6)
    trajectory = play_episode(HouseholdEnv(), policy, load_split("valid_unseen")[0], max_steps=4)
    assert trajectory.num_steps == 4 and not trajectory.success
    for step in trajectory.steps:
        assert step.completion_tokens <= 4 * 6
        assert sum(c.votes for c in step.candidates) <= 4 and len(step.candidates) >= 1
        assert 0.0 <= step.info["agreement"] <= 1.0
    assert trajectory.cost_usd > 0
    assert trajectory.policy.kind == "student" and trajectory.policy.params["samples"] == 4


def test_the_cascade_defers_unsure_steps_to_the_teacher_and_prices_them(engine):
    from agentkd.agents import play_episode
    from agentkd.replay.cascade import CascadePolicy
    from agentkd.replay.policy import StudentPolicy
    from environments.household import HouseholdEnv, load_split

    task = load_split("valid_unseen")[1]
    student = StudentPolicy(engine, samples=2, max_new_tokens=6)
    always = play_episode(HouseholdEnv(), CascadePolicy(student, ExpertPolicy(), threshold=1.01), task)
    assert always.success and all(s.deferred for s in always.steps)  # the expert played every step
    never = play_episode(HouseholdEnv(), CascadePolicy(student, ExpertPolicy(), threshold=0.0), task, max_steps=3)
    assert not any(s.deferred for s in never.steps)
    per_step_always = always.cost_usd / always.num_steps
    per_step_never = never.cost_usd / never.num_steps
    assert per_step_always > 10 * per_step_never  # teacher tokens cost far more than the student's


def test_in_context_distillation_needs_teacher_steps_and_shows_similar_ones(mixed_store, tmp_path, engine):
    from agentkd.replay.icd import DemoRetriever
    from agentkd.replay.policy import StudentPolicy
    from agentkd.store import ExperienceStore
    from environments.household import HouseholdEnv, load_split

    empty = ExperienceStore(tmp_path / "empty", spool_dir=tmp_path / "spool")
    with pytest.raises(ValueError, match="no successful expert steps.*agentkd collect"):
        DemoRetriever(empty)

    retriever = DemoRetriever(mixed_store, k=3, max_tokens=200, split="valid_unseen")
    env = HouseholdEnv()
    task = load_split("valid_unseen")[2]
    inp = PolicyInput(task=task, observation=env.reset(task), admissible_actions=env.admissible_actions(), env=env)
    shown = retriever.retrieve([inp])[0]
    assert 1 <= len(shown) <= 3 and all("Action:" in d for d in shown)
    assert sum(len(d) // 4 + 1 for d in shown) <= 200
    policy = StudentPolicy(engine, demos=retriever, max_new_tokens=4)
    prompt = policy.messages(inp, shown)
    assert prompt[-1]["content"].startswith("Similar steps by the teacher:") and shown[0] in prompt[-1]["content"]
    decision = policy.act([inp])[0]
    assert decision.info["demos"] == len(shown)


def test_evaluate_compares_configurations_and_stores_them_marked(model_dir, tmp_path):
    from agentkd.eval.run import evaluate, parse_configs
    from agentkd.store import ExperienceStore

    store = ExperienceStore(tmp_path / "store", spool_dir=tmp_path / "spool")
    configs = parse_configs("greedy,sc@2+cascade@0.6")
    results = evaluate(str(model_dir), configs, splits=["valid_unseen"], store=store, max_tasks=2, max_steps=3,
                       max_new_tokens=6)
    assert [(c.name, c.split, c.metrics.overall.episodes) for c in results.configs] == [
        ("greedy", "valid_unseen", 2), ("sc@2+cascade@0.6", "valid_unseen", 2)]
    cascade = results.get("sc@2+cascade@0.6", "valid_unseen").metrics.overall
    assert cascade.deferral_rate > 0.5  # a random student never agrees with itself enough
    assert store.count(evaluation=True) == 4
    assert store.count(policy_kind="expert") == cascade.deferred_steps  # deferred steps became demonstrations

    again = evaluate(str(model_dir), configs[:1], splits=["valid_unseen"], store=store, max_tasks=2, max_steps=3,
                     max_new_tokens=6)  # already stored: read back, not replayed
    assert again.configs[0].metrics.overall.episodes == 2 and store.count(evaluation=True) == 4


def test_each_evaluated_episode_is_stored_as_it_finishes(model_dir, tmp_path):
    """A long evaluation killed from outside (out of memory, a session's end) runs no cleanup: only what
    was already written survives, so each episode is written on its own, not in batches."""
    from agentkd.eval.run import evaluate, parse_configs
    from agentkd.store import ExperienceStore

    class RecordingStore(ExperienceStore):
        def upsert(self, trajectories):
            batch = list(trajectories)
            writes.append(len(batch))
            return super().upsert(batch)

    writes: list[int] = []
    store = RecordingStore(tmp_path / "store", spool_dir=tmp_path / "spool")
    evaluate(str(model_dir), parse_configs("teacher"), splits=["valid_unseen"], store=store, per_type=1, workers=4)
    assert writes == [1] * 6 and store.count(evaluation=True) == 6


def test_the_teacher_row_is_the_reference_played_on_the_same_tasks(model_dir):
    from agentkd.eval.run import evaluate, parse_configs

    results = evaluate(str(model_dir), parse_configs("teacher"), splits=["valid_unseen"], per_type=1)
    row = results.get("teacher", "valid_unseen")
    assert row.description == "the teacher itself (reference)"
    assert row.metrics.overall.episodes == 6 and row.metrics.overall.success_rate == 1.0  # the household expert
    assert sorted(e.task_type for e in row.episodes) == sorted(row.metrics.by_task_type)  # one task per type


def test_configuration_names_are_checked():
    from agentkd.eval.run import parse_configs

    assert [c.samples for c in parse_configs("greedy, sc@8, sc@4+icd+cascade@0.5")] == [1, 8, 4]
    with pytest.raises(ValueError, match="unknown configuration 'beam@3'"):
        parse_configs("beam@3")


def test_the_eval_command_writes_the_report(model_dir, tmp_path):
    from typer.testing import CliRunner

    from agentkd.cli import app

    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["eval", "--student", str(model_dir), "--split", "valid_seen", "--max-tasks", "2",
                                      "--max-steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.md").is_file() and (out / "success_by_task_type_valid_seen.png").is_file()
    assert json.loads((out / "results.json").read_text())["configs"][0]["name"] == "greedy"
    episodes = (out / "episodes.html").read_text()  # every episode, linked from the report
    assert "[episodes.html](episodes.html)" in (out / "report.md").read_text()
    ids = [e["trajectory_id"] for e in json.loads((out / "results.json").read_text())["configs"][0]["episodes"]]
    assert len(ids) == 2 and all(f'id="t-{i}"' in episodes and f"#t={i}" in (out / "report.md").read_text()
                                 for i in ids)  # both failed (a random student): linked from the failures table
    assert "greedy on valid_seen: 2/2 episodes, 0 solved" in result.output  # a log shows each episode
    assert re.search(r"; memory \d+\.\d GB\)", result.output)  # and the memory, to catch growth before it swaps
    missing = CliRunner().invoke(app, ["eval", "--student", str(tmp_path / "nope"), "--out", str(out)])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    no_store = CliRunner().invoke(app, ["eval", "--student", str(model_dir), "--icd", "--out", str(out)])
    assert no_store.exit_code == 2 and "--store" in no_store.output


def test_an_evaluation_stopped_with_sigterm_keeps_every_episode_it_logged(model_dir, tmp_path):
    """A long evaluation ended by `kill PID` (a session's end, a scheduler) keeps the finished episodes: each
    one it logged is in the store, so the same command resumes with only the rest."""
    from agentkd.store import ExperienceStore

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "agentkd.cli", "eval", "--student", str(model_dir), "--split", "valid_unseen",
           "--max-tasks", "60", "--max-steps", "3", "--workers", "4", "--store", str(tmp_path / "store"),
           "--out", str(tmp_path / "report")]
    proc = subprocess.Popen(cmd, cwd=root, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output, deadline = [], time.monotonic() + 300
    for line in proc.stdout:
        output.append(line)
        if "2/60 episodes" in line:  # two logged, the others playing
            proc.send_signal(signal.SIGTERM)
            break
        assert time.monotonic() < deadline, "".join(output)
    output += proc.stdout.readlines()
    proc.wait(timeout=120)
    text = "".join(output)
    assert proc.returncode == 130 and "stopped: the episodes that finished are in" in text, text
    logged = len(re.findall(r"greedy on valid_unseen: \d+/60 episodes", text))
    store = ExperienceStore(tmp_path / "store", create=False)
    assert 2 <= logged < 60 and store.count() == logged, text
    assert not (tmp_path / "report" / "results.json").exists()  # a stopped run writes no partial report
    # The episodes still playing left their steps in journals (the re-run resumes them); the stored ones did not.
    journaled = {path.stem for path in (tmp_path / "store" / "journal").glob("*.jsonl")}
    assert not journaled & store.has(list(journaled))


def test_samples_against_one_shared_prompt_cache_equal_samples_against_repeated_copies(model_dir, conversations):
    import torch

    from agentkd.policies.hf import render_chat
    from agentkd.replay.engine import GenerationRequest, ReplayEngine

    runs = []
    for shared in (True, False):  # float32: exact equality (bf16 is covered above, to a tolerance)
        engine = ReplayEngine(str(model_dir), seed=11, shared_attention=shared, dtype=torch.float32)
        assert engine.shared_attention is shared
        prompts = [engine.encode(render_chat(engine.tokenizer, c[:4])) for c in conversations]
        first = engine.generate([GenerationRequest(key=i, prompt_ids=p, n=3, temperature=0.8, max_new_tokens=16)
                                 for i, p in enumerate(prompts)])
        longer = [engine.encode(render_chat(engine.tokenizer, c[:6])) for c in conversations]  # reuses the prefixes
        second = engine.generate([GenerationRequest(key=i, prompt_ids=p, n=3, temperature=0.8, max_new_tokens=16)
                                  for i, p in enumerate(longer)])
        runs.append([(s.token_ids, s.logprob) for samples in first + second for s in samples])
    assert [ids for ids, _ in runs[0]] == [ids for ids, _ in runs[1]]
    assert [lp for _, lp in runs[0]] == pytest.approx([lp for _, lp in runs[1]], abs=1e-3)


def test_samples_that_agree_are_decoded_as_one_row_and_split_when_they_differ(model_dir, conversations):
    """sc@k of a student whose samples mostly agree costs about what greedy costs: samples with the same
    tokens so far are one row of each decode pass. The samples are the ones one row per sample draws."""
    import torch

    from agentkd.policies.hf import render_chat
    from agentkd.replay.engine import GenerationRequest, ReplayEngine

    def run(dedup: bool, temperature: float) -> tuple[list[list[list[int]]], list[int]]:
        engine = ReplayEngine(str(model_dir), seed=3, dedup_samples=dedup, dtype=torch.float32)
        widths: list[int] = []
        hook = engine.model.register_forward_pre_hook(lambda _, args, kwargs: widths.append(
            kwargs["input_ids"].shape[0]), with_kwargs=True)
        prompts = [engine.encode(render_chat(engine.tokenizer, c[:2])) for c in conversations[:3]]
        results = engine.generate([GenerationRequest(key=i, prompt_ids=p, n=4, temperature=temperature,
                                                     max_new_tokens=12, seed=f"task-{i}")
                                   for i, p in enumerate(prompts)])
        hook.remove()
        return [[s.token_ids for s in samples] for samples in results], widths[1:]  # widths[0]: the prefill

    # Near-zero temperature: the four samples of each prompt agree, so every decode pass has one row a prompt.
    agreeing, widths = run(True, 1e-4)
    assert all(len({tuple(ids) for ids in samples}) == 1 for samples in agreeing)
    assert widths and set(widths) <= {1, 2, 3} and widths[0] == 3
    assert run(False, 1e-4) == (agreeing, [12] * len(widths))  # one row per sample, the same samples
    # Samples that partly differ (this random model's next-token distributions are flat: a low temperature),
    # then all differ: rows split as samples diverge, and the samples are the ones one row per sample draws.
    for temperature in (0.05, 1.0):
        differing, widths = run(True, temperature)
        assert run(False, temperature) == (differing, [12] * len(widths))
        assert any(len({tuple(ids) for ids in samples}) > 1 for samples in differing)
        assert max(widths) > 3
        assert sum(widths) < 12 * len(widths) if temperature < 1 else set(widths) == {12}


@pytest.mark.parametrize("layout", ["k_per_episode", "uneven"])
@pytest.mark.parametrize("path", ["cpu_kernel", "matmul"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_shared_prefix_attention_equals_attention_over_the_whole_cache_in_the_model_dtype(path, dtype, layout):
    """Both merges (the CPU's fused kernel, the GPUs' matmuls) give SDPA over prompt + reply, in the
    model's dtype: bf16 (CUDA, AMX CPUs) once crashed the next projection with a float32 output. Rows may
    be k per episode or any number (an episode whose samples agree has one row, a finished one none)."""
    import torch

    from agentkd.replay import shared_prefix as sp

    torch.manual_seed(0)
    dt = getattr(torch, dtype)
    episodes, k, kv_heads, groups, dim, prefix_len, reply_len = 3, 4, 2, 3, 16, 20, 5
    heads = kv_heads * groups
    uneven = torch.tensor([0, 0, 2, 2, 2])  # episode 1 has no row left, episode 2 the most
    episode = torch.arange(episodes).repeat_interleave(k) if layout == "k_per_episode" else uneven
    rows = len(episode)
    prefix_keys = torch.randn(episodes, kv_heads, prefix_len, dim, dtype=dt)
    prefix_values = torch.randn(episodes, kv_heads, prefix_len, dim, dtype=dt)
    prefix_mask = torch.ones(episodes, prefix_len, dtype=torch.bool)
    prefix_mask[0, :6] = False  # left padding of a shorter prompt
    reply_mask = torch.ones(rows, reply_len, dtype=torch.bool)
    reply_mask[1, -2:] = False  # a sample that stopped early
    query = torch.randn(rows, heads, 1, dim, dtype=dt)
    key = torch.randn(rows, kv_heads, reply_len, dim, dtype=dt)
    value = torch.randn(rows, kv_heads, reply_len, dim, dtype=dt)
    context = sp.SharedPrefix(layers=[(prefix_keys, prefix_values)], prefix_mask=prefix_mask, samples=k,
                              reply_mask=reply_mask)
    if layout == "uneven":
        context.place(episode, episodes)
        assert context.samples == 3
    out = sp._decode_attention(query, key, value, context, 0, dim ** -0.5, fused_cpu=path == "cpu_kernel").to(dt)

    # Reference: each row's own copy of its prompt, then its reply, in float32 SDPA.
    keys = torch.cat([prefix_keys[episode], key], dim=2).float().repeat_interleave(groups, dim=1)
    values = torch.cat([prefix_values[episode], value], dim=2).float().repeat_interleave(groups, dim=1)
    mask = torch.cat([prefix_mask[episode], reply_mask], dim=1)[:, None, None, :]
    expected = torch.nn.functional.scaled_dot_product_attention(query.float(), keys, values, attn_mask=mask)
    assert out.dtype == dt and out.shape == (rows, heads, 1, dim)
    tolerance = 1e-4 if dtype == "float32" else 3e-2
    torch.testing.assert_close(out.float(), expected, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_grouped_query_prefill_attention_equals_sdpa_over_repeated_heads(dtype):
    """A replay prefill attends per key/value head instead of copying the cache once per query head (SmolLM2:
    9 query heads on 3 key/value heads); the result must be transformers' own SDPA path."""
    import types

    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from agentkd.replay.shared_prefix import _attention

    torch.manual_seed(0)
    dtype = getattr(torch, dtype)
    batch, heads, kv_heads, new, past, dim = 3, 6, 2, 5, 11, 16
    query = torch.randn(batch, heads, new, dim, dtype=dtype)
    key, value = (torch.randn(batch, kv_heads, past + new, dim, dtype=dtype) for _ in range(2))
    mask = torch.rand(batch, 1, new, past + new) > 0.3  # holes and padding, as the engine's prefill has
    mask[..., -1] = True  # every query sees at least one key
    module = types.SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=True, layer_idx=0)
    ours, _ = _attention(module, query, key, value, mask, scaling=dim**-0.5)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=dim**-0.5)
    assert ours.shape == theirs.shape == (batch, new, heads, dim)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(ours, theirs, atol=tolerance, rtol=tolerance)


def test_self_consistency_samples_in_bfloat16(model_dir):
    """sc@k decodes through the shared-prefix attention; in bf16 (the default on CUDA and AMX CPUs) too."""
    import torch

    from agentkd.replay.engine import GenerationRequest, ReplayEngine

    engine = ReplayEngine(str(model_dir), dtype=torch.bfloat16, seed=3)
    assert engine.shared_attention
    prompt = engine.encode("You are in the middle of a room. Your task is to: put a mug in a cabinet.")
    samples = engine.generate([GenerationRequest(key=0, prompt_ids=prompt, n=4, temperature=0.8, max_new_tokens=8)])
    assert len(samples[0]) == 4 and all(s.token_ids and s.logprob < 0 for s in samples[0])


@pytest.mark.slow
def test_the_demo_runs_the_whole_pipeline(tmp_path):
    from rich.console import Console

    from agentkd.demo import DemoConfig, run_demo

    config = DemoConfig(workdir=str(tmp_path / "demo"), student="tiny", expert_episodes=16, sft_epochs=0.25,
                        train_minutes=0, rollouts=4, splits=("valid_seen", "valid_unseen"),
                        configs="greedy,sc@2+cascade@0.5", max_tasks=2, max_steps=3)
    with open(tmp_path / "log.txt", "w") as log:
        results = run_demo(config, Console(file=log))
    assert sorted((c.name, c.split) for c in results.configs) == sorted(
        (name, split) for name in ("greedy", "sc@2+cascade@0.5") for split in ("valid_seen", "valid_unseen"))
    report = tmp_path / "demo" / "report"
    assert (report / "report.md").is_file() and (report / "results.json").is_file()
    for stage in ("expert trajectories", "SFT", "student rollouts + REDI", "evaluation"):
        assert stage in config.stage_seconds
    summary = tmp_path / "demo" / "students" / "redi" / "training_summary.json"
    assert json.loads(summary.read_text())["stage"] == "redi"


def test_the_demos_training_budget_follows_the_precision_it_trains_in(monkeypatch):
    import torch

    from agentkd.demo import DemoConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("AGENTKD_CPU_BF16", "1")  # AMX / AVX512-BF16: bf16 trains 2.3x faster
    assert DemoConfig().sft_minutes == 15.0
    monkeypatch.setenv("AGENTKD_CPU_BF16", "0")  # float32 only
    assert DemoConfig().sft_minutes == 45.0
    assert DemoConfig(train_minutes=7).sft_minutes == 7.0
    assert DemoConfig(train_minutes=0).sft_minutes is None  # 0: train for the epochs


@pytest.mark.slow
def test_the_default_demo_trains_the_packaged_student_within_its_time_budget(tmp_path):
    """The README's demo, cut down: SmolLM2-135M, a one-minute SFT budget, two tasks."""
    pytest.importorskip("gguf")
    from rich.console import Console

    from agentkd.demo import DemoConfig, run_demo

    config = DemoConfig(workdir=str(tmp_path / "demo"), expert_episodes=16, train_minutes=1.0,
                        configs="greedy,sc@2+constrained", max_tasks=2, max_steps=3)
    with open(tmp_path / "log.txt", "w") as log:
        results = run_demo(config, Console(file=log))
    summary = json.loads((tmp_path / "demo" / "students" / "sft" / "training_summary.json").read_text())
    assert summary["base"] == "smollm2-135m" and summary["config"]["max_minutes"] == 1.0
    assert sorted(c.name for c in results.configs) == ["greedy", "sc@2+constrained"]
    constrained = next(c for c in results.configs if c.name == "sc@2+constrained")
    assert constrained.metrics.overall.episodes == 2


def test_the_action_trie_allows_free_thought_then_only_admissible_actions(engine):
    from agentkd.replay.constrained import build_constraint

    tok = engine.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    constraint = build_constraint(tok, ["go to cabinet 1", "go to cabinet 10", "look"])
    cursor = constraint.cursor()
    reply = tok("Thought: cabinets first.\nAction: go to cabinet 1", add_special_tokens=False)["input_ids"]
    action_start = len(tok("Thought: cabinets first.\nAction:", add_special_tokens=False)["input_ids"])
    for i, token in enumerate(reply):
        allowed = cursor.allowed()
        if i < action_start:
            assert allowed is None  # the thought is free
        else:
            assert token in allowed
        cursor.advance(token)
    assert set(cursor.allowed()) == {end, *tok("Action: go to cabinet 10", add_special_tokens=False)["input_ids"][-1:]}
    cursor.advance(end)
    assert cursor.allowed() == []


def test_constrained_decoding_spells_only_admissible_actions(engine, conversations):
    """Even a random student, sampled at temperature 1, writes admissible actions once its action line opens."""
    from agentkd.policies.hf import render_chat
    from agentkd.replay.constrained import build_constraint
    from agentkd.replay.engine import GenerationRequest

    constraint = build_constraint(engine.tokenizer, ADMISSIBLE)

    class OpenActionLine:  # as if the reply had just written "Action:" (a random model never does)
        def cursor(self):
            cursor = constraint.cursor()
            cursor.node = constraint.trie
            return cursor

    prompt = engine.encode(render_chat(engine.tokenizer, conversations[0][:2]))
    samples = engine.generate([GenerationRequest(key="constrained", prompt_ids=prompt, n=8, temperature=1.0,
                                                 max_new_tokens=24, constraint=OpenActionLine())])[0]
    engine.forget("constrained")
    for sample in samples:
        assert sample.finish_reason == "stop"
        assert sample.text.strip() in ADMISSIBLE
    greedy = engine.generate([GenerationRequest(key="constrained", prompt_ids=prompt, max_new_tokens=24,
                                                constraint=OpenActionLine())])[0][0]
    engine.forget("constrained")
    assert greedy.text.strip() in ADMISSIBLE


def test_nucleus_sampling_keeps_exactly_the_nucleus_whether_or_not_it_lies_in_the_first_ranks(engine):
    import torch

    rows = 512
    temperature, top_p = torch.full((rows,), 1.0), torch.full((rows,), 0.9)
    peaked = torch.full((rows, 1000), -20.0)
    peaked[:, :3] = torch.tensor([2.0, 1.0, 0.0])  # nucleus at 0.9: tokens 0 and 1 hold 0.67 + 0.24
    tokens, _ = engine._pick(peaked, temperature, top_p)
    assert set(tokens.tolist()) == {0, 1}  # token 2 starts past 0.9 of the mass
    flat = torch.zeros((rows, 1000))  # the nucleus is 900 tokens, far past the first ranks
    tokens, _ = engine._pick(flat, temperature, top_p)
    assert len(set(tokens.tolist())) > 200 and max(tokens.tolist()) < 1000


def test_bench_replay_prints_each_comparison_side_by_side():
    from typer.testing import CliRunner

    from agentkd.cli import app

    result = CliRunner().invoke(app, ["bench", "replay", "--episodes", "2", "--samples", "2", "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    for row in ("2 samples vs greedy", "one row per sample", "prompt cache copied per sample",
                "batched vs one after another", "prefix reuse vs recompute"):
        assert row in result.output
