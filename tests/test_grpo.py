"""GRPO with multi-turn household rollouts: the rollout's token sequences and masks, the reward, a short run.

The students are the session's random tiny model and a copy of it that is eager to end its turn
(see ``eager_dir``), so reply lengths — and with them turns and invalid actions per episode —
differ between the episodes of one task. Everything runs on CPU in well under a minute.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

import torch  # noqa: E402

from agentkd.distill.datasets import grpo_prompts  # noqa: E402
from agentkd.envs import load_tasks, make_env  # noqa: E402
from agentkd.models.student import PromptFormat, load_student  # noqa: E402
from agentkd.policies.prompt import parse_output  # noqa: E402
from agentkd.train import grpo  # noqa: E402
from agentkd.train.common import SUMMARY_FILE  # noqa: E402
from agentkd.train.grpo import EnvReward, GRPORunConfig, MultiTurnRollout, env_turn_text, train_grpo  # noqa: E402

END = "<|im_end|>"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices gain nothing from threads, and on a busy 2-core machine two threads each can slow
    these tests many times over (seen: 9 s alone vs 57 s beside other jobs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def eager_dir(model_dir, tmp_path_factory):
    """The tiny model with ``<|im_end|>`` pointed along its average final hidden state: it ends a turn
    after a few tokens about as often as it runs to ``max_new_tokens``."""
    model, tokenizer = load_student(model_dir)
    rows, _ = grpo_prompts(load_tasks("household", "valid_unseen")[:1], make_env)
    inputs = tokenizer.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, return_dict=True,
                                           return_tensors="pt")
    with torch.no_grad():
        mean = model(**inputs, output_hidden_states=True).hidden_states[-1][0].mean(0)
        model.get_input_embeddings().weight[tokenizer.convert_tokens_to_ids(END)] = 5.0 * mean / mean.norm() ** 2
    out = tmp_path_factory.mktemp("eager") / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def household_prompts():
    rows, by_prompt = grpo_prompts(load_tasks("household", "valid_unseen")[:2], make_env)
    return rows, by_prompt


def test_env_turn_text_is_what_chatml_writes_between_replies(model_dir):
    _, tokenizer = load_student(model_dir)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Your task: x"}]
    text = env_turn_text(tokenizer, messages, "Observation: Nothing happens.")
    assert text == f"{END}\n<|im_start|>user\nObservation: Nothing happens.{END}\n<|im_start|>assistant\n"
    reply = "Thought: t\nAction: look"
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": reply},
                                          {"role": "user", "content": "Observation: Nothing happens."}],
                                         tokenize=False, add_generation_prompt=True)
    prefix = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert full == prefix + reply + text


def test_rollout_sequences_masks_and_episodes(eager_dir, household_prompts, monkeypatch):
    model, tokenizer = load_student(eager_dir)
    rows, by_prompt = household_prompts
    calls = []  # (contexts, replies) of every batched generate

    def recording_sample(model, rows, **kwargs):
        replies = sample(model, rows, **kwargs)
        calls.append((rows, replies))
        return replies

    sample = grpo._sample
    monkeypatch.setattr(grpo, "_sample", recording_sample)
    rollout = MultiTurnRollout("household", by_prompt, max_turns=3, max_new_tokens=12)
    prompts = [row["prompt"] for row in rows for _ in range(2)]  # as TRL passes them: each repeated per generation
    torch.manual_seed(0)
    model.train()
    episodes = rollout.play(prompts, model, tokenizer, max_completion_length=60, temperature=1.0)
    assert model.training  # train mode restored
    assert len(episodes) == len(prompts) == len(calls[0][0])  # one episode per prompt, all in the first batch
    end = tokenizer.convert_tokens_to_ids(END)
    stopped_replies = 0

    for ep, prompt in zip(episodes, prompts, strict=True):
        assert ep.task is by_prompt[prompt[-1]["content"]]
        assert ep.prompt_ids == tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                              return_dict=False)
        assert 1 <= len(ep.steps) <= 3 and ep.ended in {"done", "max_turns", "length"}
        assert len(ep.completion_ids) == len(ep.env_mask) <= 60
        assert ep.env_mask[0] == 1 and ep.env_mask[-1] == 1  # starts and ends with what the model said

        # env_mask is 1 exactly on sampled tokens: every reply follows exactly the context it was sampled from.
        full = ep.prompt_ids + ep.completion_ids
        sampled = [0] * len(ep.completion_ids)
        for turn, step in enumerate(ep.steps):
            contexts, replies = calls[turn]
            row = [e for e in episodes if len(e.steps) > turn].index(ep)  # each turn batches the running episodes
            context, reply = contexts[row], replies[row]
            assert full[: len(context)] == context
            start = len(context) - len(ep.prompt_ids)
            assert ep.completion_ids[start: start + step.completion_tokens] == reply[: step.completion_tokens]
            sampled[start: start + step.completion_tokens] = [1] * step.completion_tokens
        assert sampled == ep.env_mask
        runs = _runs(ep.env_mask)
        assert [n for bit, n in runs if bit == 1] == [s.completion_tokens for s in ep.steps]
        stopped_replies += sum(ep.completion_ids[i - 1] == end for i in _run_ends(runs, 1))

        # The environment's tokens are its observations in the chat template's turn markers.
        pos = 0
        for bit, n in runs:
            if bit == 0:
                text = tokenizer.decode(ep.completion_ids[pos: pos + n])
                assert "<|im_start|>user\nObservation: " in text and text.endswith("<|im_start|>assistant\n")
            pos += n

        # prompt + completion is the episode's conversation as the chat template writes it, up to the
        # template's close of the last reply ("\n" after <|im_end|>, or "<|im_end|>\n" when it ran out).
        decoded = tokenizer.decode(full)
        rendered = tokenizer.apply_chat_template(ep.messages, tokenize=False)
        assert rendered.startswith(decoded)
        assert rendered[len(decoded):] == ("\n" if full[-1] == end else f"{END}\n")
        assert [m["role"] for m in ep.messages[1:]] == ["user", *["assistant", "user"] * (len(ep.steps) - 1),
                                                        "assistant"]

        # Rewards and invalid actions agree with replaying the parsed actions in a fresh environment.
        env = make_env("household")
        assert env.reset(ep.task) == ep.steps[0].observation
        total, invalid = 0.0, 0
        for step in ep.steps:
            parsed = parse_output(step.raw_output, env.admissible_actions())
            assert parsed.action == step.action
            observation, reward, _, info = env.step(step.action)
            assert observation == step.next_observation
            total += reward
            invalid += not (parsed.valid and info["admissible"])
        assert (total, invalid) == (ep.env_reward, ep.invalid_actions)

    assert stopped_replies > 0  # the end-of-turn token came from the model at least once (and was not doubled)
    assert not any(a == b == end for ep in episodes for a, b in itertools.pairwise(ep.completion_ids))

    out = rollout.trl_output(episodes)
    assert set(out) >= {"prompt_ids", "completion_ids", "env_mask", "logprobs", "env_reward", "invalid_actions"}
    assert out["logprobs"] is None and all(len(v) == len(episodes) for k, v in out.items() if k != "logprobs")
    assert rollout.stats.episodes == len(episodes)
    assert rollout.stats.model_tokens == sum(map(sum, out["env_mask"]))


def _runs(mask: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for bit in mask:
        if runs and runs[-1][0] == bit:
            runs[-1] = (bit, runs[-1][1] + 1)
        else:
            runs.append((bit, 1))
    return runs


def _run_ends(runs: list[tuple[int, int]], bit: int) -> list[int]:
    ends, pos = [], 0
    for b, n in runs:
        pos += n
        if b == bit:
            ends.append(pos)
    return ends


def test_rollout_needs_the_whole_episode_as_one_conversation():
    with pytest.raises(ValueError, match="one conversation"):
        MultiTurnRollout("household", {}, PromptFormat(max_history=8, show_admissible=True))


def test_env_reward_subtracts_the_invalid_action_penalty_and_logs_env_metrics():
    logged = {}
    reward = EnvReward(invalid_action_penalty=0.25)
    values = reward(completions=["a", "b", "c"], env_reward=[1.0, 0.0, 0.0], invalid_actions=[0, 2, 4],
                    won=[True, False, False], turns=[3, 5, 6], log_metric=logged.__setitem__, task_id=["t"] * 3)
    assert values == [1.0, -0.5, -1.0]
    assert logged == pytest.approx({"env/reward": 1 / 3, "env/invalid_actions": 2.0, "env/win_rate": 1 / 3,
                                    "env/turns": 14 / 3})
    assert EnvReward(0.0)(completions=["a"], env_reward=[0.0], invalid_actions=[3]) == [0.0]


def test_train_grpo_runs_in_the_household_and_updates_the_student(eager_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    logged = []

    class Capture(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logged.append(dict(logs or {}))

    config = GRPORunConfig(split="valid_unseen", max_tasks=2, max_steps=2, num_generations=4, batch_size=4,
                           max_turns=3, max_new_tokens=12, max_completion_length=60, learning_rate=1e-3,
                           invalid_action_penalty=0.1)
    out = tmp_path / "grpo"
    summary = train_grpo(eager_dir, out, config, callbacks=[Capture()])

    assert summary.stage == "grpo" and summary.steps == 2
    assert json.loads((out / SUMMARY_FILE).read_text())["stage"] == "grpo"
    losses = summary.losses
    assert len(losses) == 2 and all(math.isfinite(e["loss"]) for e in losses)
    assert all("env/win_rate" in e and "env/invalid_actions" in e and "reward" in e for e in losses)
    rollouts = summary.data.extra("rollouts")
    assert rollouts["episodes"] == 8 and summary.data.kept == 2
    assert summary.tokens == rollouts["prompt_tokens"] + rollouts["model_tokens"] + rollouts["env_tokens"] > 0

    # TRL took env_mask as its mask: the completion lengths it logs count the model's tokens only.
    step_logs = [e for e in logged if "completions/mean_length" in e]
    mean_length = sum(e["completions/mean_length"] for e in step_logs) / len(step_logs)
    assert mean_length == pytest.approx(rollouts["model_tokens"] / rollouts["episodes"])
    # Episodes of a task ended at different turns, so rewards differed within groups and the policy moved.
    assert any(e["reward_std"] > 0 for e in step_logs)

    tokenizer = AutoTokenizer.from_pretrained(out)
    trained = AutoModelForCausalLM.from_pretrained(out)
    before = AutoModelForCausalLM.from_pretrained(eager_dir)
    assert len(tokenizer) == trained.config.vocab_size
    changed = [name for name, p in trained.state_dict().items() if not torch.equal(p, before.state_dict()[name])]
    assert changed
