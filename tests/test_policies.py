"""Model-backed policies on a real (tiny, randomly initialised, locally built) language model.

One tiny Qwen2 model with a tokenizer trained on household text is built per session; every test
generates only a few tokens with it, so the whole file runs in well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("langchain_core")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402

from agentkd.agents import play_episode  # noqa: E402
from agentkd.models import build_tiny_model  # noqa: E402
from agentkd.policies import (  # noqa: E402
    ChatModelPolicy,
    Decision,
    HFGenerator,
    HFPolicy,
    LocalChatModel,
    Policy,
    PolicyInput,
    build_messages,
    cost_usd,
    first_paragraph,
    first_thought_messages,
    load_prices,
    price_for,
)
from agentkd.policies.chat import to_langchain  # noqa: E402
from agentkd.policies.expert import ExpertPolicy  # noqa: E402
from agentkd.policies.prompt import SYSTEM_PROMPT  # noqa: E402
from environments.household import HouseholdEnv, load_split  # noqa: E402

MAX_NEW = 8  # new tokens per household generation; shared so tests can reuse each other's results


@pytest.fixture(scope="session")
def generator(model_dir) -> HFGenerator:
    # float32 on any device: a random model's near-tied logits would make bf16 comparisons flaky.
    return HFGenerator(model_dir, dtype="float32")


@pytest.fixture(scope="session")
def household_inputs() -> list[PolicyInput]:
    """Three real inputs: two first steps and one third step with history."""
    tasks = load_split("valid_seen")
    inputs = []
    for task in tasks[:2]:
        env = HouseholdEnv()
        obs = env.reset(task)
        inputs.append(PolicyInput(task=task, observation=obs, admissible_actions=env.admissible_actions(), env=env))
    env = HouseholdEnv(max_steps=2)
    trajectory = play_episode(env, ExpertPolicy(), tasks[2], max_steps=2)
    inputs.append(PolicyInput(task=tasks[2], observation=trajectory.steps[-1].next_observation,
                              history=trajectory.steps, admissible_actions=env.admissible_actions(), env=env))
    return inputs


@pytest.fixture(scope="session")
def single_results(generator):
    """Each of :func:`_conversations` generated on its own (batch of one), greedy, 6 new tokens."""
    return [generator.generate([c], max_new_tokens=6)[0] for c in _conversations()]


@pytest.fixture(scope="session")
def hf_decisions(generator, household_inputs):
    """HFPolicy decisions on the household inputs, the reference for the chat-model policies."""
    return HFPolicy(generator, max_new_tokens=MAX_NEW).act(household_inputs)


def _conversations() -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": "You are in the middle of a room."}],
        [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "Your task is to: put a clean soapbar in bathtubbasin."},
        ],
        [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "Observation: You arrive at cabinet 1. The cabinet 1 is closed."},
            {"role": "assistant", "content": "Thought: I open it.\nAction: open cabinet 1"},
            {"role": "user", "content": "Observation: You open the cabinet 1. In it, you see a soapbottle 1."},
        ],
    ]


# ---------------------------------------------------------------------------------------------
# build_tiny_model


def test_tiny_model_loads_with_auto_classes(model_dir, corpus):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.config.tie_word_embeddings and model.config.max_position_embeddings == 4096
    n_params = sum(p.numel() for p in model.parameters())
    assert 2_000_000 <= n_params <= 5_000_000
    for token in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"):
        assert token in tok.get_vocab()
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|pad|>"

    # The loaded tokenizer splits text exactly as the trained one did.
    raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    sample = corpus[1] + "\n\nThought: 12 apples, café!  <|im_start|>"
    assert tok(sample, add_special_tokens=False)["input_ids"] == raw.encode(sample).ids
    assert tok.decode(tok(sample)["input_ids"]) == sample


def test_tiny_chat_template(model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    conv = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Thought: x\nAction: look"},
    ]
    full = tok.apply_chat_template(conv, tokenize=False)
    assert full == (
        "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\nThought: x\nAction: look<|im_end|>\n"
    )
    prompt = tok.apply_chat_template(conv[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    prefill = tok.apply_chat_template(conv, tokenize=False, continue_final_message=True)
    assert prefill.endswith("<|im_start|>assistant\nThought: x\nAction: look")
    # {% generation %} markers: the assistant mask covers exactly the assistant's text and <|im_end|>.
    enc = tok.apply_chat_template(conv, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m]
    assert tok.decode(masked) == "Thought: x\nAction: look<|im_end|>"


def test_tiny_model_is_deterministic(tmp_path, corpus):
    texts = corpus[:60]
    a = build_tiny_model(tmp_path / "a", texts, seed=3, vocab_size=1000)
    b = build_tiny_model(tmp_path / "b", texts, seed=3, vocab_size=1000)
    c = build_tiny_model(tmp_path / "c", texts, seed=4, vocab_size=1000)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="unknown size"):
        build_tiny_model(tmp_path / "d", texts, size="huge")


# ---------------------------------------------------------------------------------------------
# HFGenerator


def test_generator_batches_and_counts_tokens(generator, single_results):
    convs = _conversations()
    results = generator.generate(convs, max_new_tokens=6)
    assert len(results) == 3
    lengths = [len(generator.tokenizer(generator.render(c), add_special_tokens=False)["input_ids"]) for c in convs]
    assert [r.prompt_tokens for r in results] == lengths
    assert len(set(lengths)) == 3  # really different lengths, so padding matters
    for r in results:
        assert 1 <= r.completion_tokens <= 6
        assert isinstance(r.text, str) and r.latency_s > 0
        assert r.finish_reason in ("stop", "length")
        assert "<|im_start|>" not in r.text and "<|pad|>" not in r.text
    assert generator.device.type in ("cpu", "cuda")
    # Left padding is right: the batch gives exactly what each conversation gives alone.
    assert [r.text for r in results] == [r.text for r in single_results]
    assert [(r.prompt_tokens, r.completion_tokens) for r in results] == [
        (r.prompt_tokens, r.completion_tokens) for r in single_results
    ]
    assert generator.generate([]) == []


def test_continue_final_message_really_continues(generator, single_results):
    import torch

    conv = [*_conversations()[1], {"role": "assistant", "content": "Thought: I need a soapbar"}]
    prompt = generator.render(conv, continue_final_message=True)
    assert prompt.endswith("<|im_start|>assistant\nThought: I need a soapbar")  # open turn, no <|im_end|>
    assert prompt.count("<|im_start|>assistant") == 1  # no new assistant header
    fresh = generator.render(conv[:-1])
    assert fresh.endswith("<|im_start|>assistant\n")

    [result] = generator.generate([conv], max_new_tokens=5, continue_final_message=True)
    ids = generator.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert result.prompt_tokens == len(ids)
    # The continuation is exactly what the model produces right after the prefilled text.
    with torch.inference_mode():
        out = generator.model.generate(
            input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=5, do_sample=False, eos_token_id=generator.stop_token_ids,
            pad_token_id=generator.pad_token_id,
        )
    new = [t for t in out[0, len(ids):].tolist() if t not in generator.stop_token_ids]
    assert result.text == generator.tokenizer.decode(new, skip_special_tokens=True)

    # Mixed batch: one continued, one fresh; each equals its single run.
    mixed = generator.generate([conv, conv[:-1]], max_new_tokens=6, continue_final_message=[True, False])
    assert mixed[1].text == single_results[1].text
    assert mixed[0].text.startswith(result.text)
    with pytest.raises(ValueError, match="ends with an assistant"):
        generator.generate([conv[:-1]], continue_final_message=True)


def test_sampling_runs(generator):
    import torch

    torch.manual_seed(0)
    results = generator.generate(_conversations()[:2], max_new_tokens=4, temperature=1.0, top_p=0.9)
    assert len(results) == 2 and all(1 <= r.completion_tokens <= 4 for r in results)


def test_unknown_model_name_offline_fails_fast(tmp_path):
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"'agentkd-test/no-such-model-xyz' was not found locally"):
        HFGenerator("agentkd-test/no-such-model-xyz")
    assert time.perf_counter() - started < 10
    with pytest.raises(ValueError, match="allow_download=True"):
        HFGenerator("agentkd-test/no-such-model-xyz")
    with pytest.raises(ValueError, match="could not load"):
        HFGenerator(tmp_path)  # an existing directory without a model
    with pytest.raises(ValueError, match="no-such-model"):
        LocalChatModel(model="agentkd-test/no-such-model-xyz")


# ---------------------------------------------------------------------------------------------
# HFPolicy


def test_hf_policy_on_household_inputs(generator, household_inputs, hf_decisions, model_dir):
    policy = HFPolicy(generator, max_new_tokens=MAX_NEW)
    assert isinstance(policy, Policy)
    assert policy.info.kind == "hf_model" and policy.info.name == str(model_dir)
    assert policy.info.params == {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": MAX_NEW, "max_history": 8,
                                  "show_admissible": True}
    assert len(hf_decisions) == 3
    for inp, d in zip(household_inputs, hf_decisions, strict=True):
        assert isinstance(d, Decision)
        prompt = generator.render(build_messages(inp))
        assert d.prompt_tokens == len(generator.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert d.prompt_tokens > 100 and 1 <= d.completion_tokens <= MAX_NEW and d.latency_s > 0
        assert isinstance(d.raw_output, str)  # the model's text, recorded as produced
        if d.valid:
            assert d.action in inp.admissible_actions
        else:  # a random model mostly writes garbage: invalid, recorded, never raised
            assert d.action == "" and d.error
    assert policy.act([]) == []


# ---------------------------------------------------------------------------------------------
# LocalChatModel (LangChain)


def test_local_chat_model_invoke_and_batch(generator, model_dir, single_results):
    chat = LocalChatModel(generator=generator, max_tokens=6)
    assert chat.model_name == str(model_dir)
    lc_conversations = [to_langchain(c) for c in _conversations()]
    reply = chat.invoke(lc_conversations[1])
    assert isinstance(reply, AIMessage) and isinstance(reply.content, str)
    assert reply.content == single_results[1].text
    usage = reply.usage_metadata
    assert (usage["input_tokens"], usage["output_tokens"]) == (
        single_results[1].prompt_tokens, single_results[1].completion_tokens
    )
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert reply.response_metadata["model_name"] == str(model_dir)

    short = chat.invoke("You are in the middle of a room.", max_tokens=2)
    assert 1 <= short.usage_metadata["output_tokens"] <= 2

    batched = chat.batch(lc_conversations)  # one batched generation
    assert len(batched) == 3 and all(isinstance(m, AIMessage) and m.usage_metadata for m in batched)
    assert [m.content for m in batched] == [r.text for r in single_results]
    assert chat.batch([]) == []
    assert [m.content for m in asyncio.run(chat.abatch(lc_conversations))] == [r.text for r in single_results]


def test_local_chat_model_callbacks_path(generator):
    class Counter(BaseCallbackHandler):
        def __init__(self) -> None:
            self.starts = 0

        def on_chat_model_start(self, serialized, messages, **kwargs):
            self.starts += 1

    chat = LocalChatModel(generator=generator, max_tokens=3)
    counter = Counter()
    replies = chat.batch(["a", "b"], config={"callbacks": [counter]})
    assert counter.starts == 2
    assert [r.content for r in replies] == [r.content for r in chat.batch(["a", "b"])]


def test_local_chat_model_loads_by_path_and_prefills(model_dir, generator):
    chat = LocalChatModel(model=str(model_dir), max_tokens=4)
    assert chat.model_name == str(model_dir) and chat._llm_type
    prefix = "Thought: I need a soapbar"
    reply = chat.invoke([HumanMessage(content="Your task is to: put a clean soapbar in bathtubbasin."),
                         AIMessage(content=prefix)])
    expected = generator.generate(
        [[{"role": "user", "content": "Your task is to: put a clean soapbar in bathtubbasin."},
          {"role": "assistant", "content": prefix}]],
        max_new_tokens=4, continue_final_message=True,
    )[0]
    assert reply.content == expected.text  # only the continuation, not the prefix
    assert reply.usage_metadata["input_tokens"] == expected.prompt_tokens


# ---------------------------------------------------------------------------------------------
# ChatModelPolicy


def test_chat_model_policy(generator, household_inputs, hf_decisions, model_dir):
    chat = LocalChatModel(generator=generator, max_tokens=MAX_NEW)
    policy = ChatModelPolicy(chat)
    assert isinstance(policy, Policy)
    assert policy.info.kind == "chat_model" and policy.info.name == str(model_dir)
    assert policy.info.params["max_tokens"] == MAX_NEW and policy.info.params["temperature"] == 0.0
    assert policy.info.params["first_thought"] is False
    assert ChatModelPolicy(chat, name="teacher").info.name == "teacher"

    decisions = policy.act(household_inputs)
    assert len(decisions) == 3
    for d, h in zip(decisions, hf_decisions, strict=True):  # same model, same prompt, same parse
        assert d.raw_output == h.raw_output
        assert (d.action, d.thought, d.valid, d.error) == (h.action, h.thought, h.valid, h.error)
        assert (d.prompt_tokens, d.completion_tokens) == (h.prompt_tokens, h.completion_tokens)
        assert d.latency_s > 0
    assert policy.act([]) == []


def test_first_thought_prefix(generator, household_inputs, hf_decisions):
    chat = LocalChatModel(generator=generator, max_tokens=MAX_NEW)
    policy = ChatModelPolicy(chat, first_thought=True, first_thought_max_chars=60)
    assert policy.info.params["first_thought"] is True
    assert policy.info != ChatModelPolicy(chat).info  # a different policy, so different trajectory ids
    first, later = household_inputs[0], household_inputs[2]
    assert not first.history and later.history

    # The prefix the policy must use: the first paragraph of the teacher's step-by-step plan.
    plan_prompt = first_thought_messages(first)[0]["content"]
    assert first.task.goal in plan_prompt and first.observation.strip() in plan_prompt
    plan = chat.invoke(to_langchain(first_thought_messages(first)))
    paragraph = first_paragraph(plan.content, 60)
    assert paragraph and len(paragraph) <= 60
    prefix = "Thought: " + paragraph

    d_first, d_later = policy.act([first, later])
    assert d_first.raw_output.startswith(prefix)
    assert d_first.thought.startswith(paragraph)
    # The rest of the raw output is the model's continuation of the prefilled turn.
    prefilled = [*build_messages(first), {"role": "assistant", "content": prefix}]
    cont = generator.generate([prefilled], max_new_tokens=MAX_NEW, continue_final_message=True)[0]
    assert d_first.raw_output in (prefix + cont.text, prefix + "\n" + cont.text.lstrip())
    # The planning call's tokens are added to the step's.
    assert d_first.prompt_tokens == plan.usage_metadata["input_tokens"] + cont.prompt_tokens
    assert d_first.completion_tokens == plan.usage_metadata["output_tokens"] + cont.completion_tokens

    # Later steps get no prefix and no planning call: exactly the plain decision.
    assert not d_later.raw_output.startswith(prefix)
    assert d_later.raw_output == hf_decisions[2].raw_output
    assert (d_later.prompt_tokens, d_later.completion_tokens) == (
        hf_decisions[2].prompt_tokens, hf_decisions[2].completion_tokens
    )
    assert policy.first_thoughts([later]) == [(None, 0, 0, 0.0)]


def test_first_paragraph():
    assert first_paragraph("Plan: go to the sink.\nThen clean it.\n\nSecond paragraph.") == (
        "go to the sink. Then clean it."
    )
    assert first_paragraph("\n\n  Thought: look first  \n \nmore") == "look first"
    assert first_paragraph("word " * 100, max_chars=22) == "word word word word"
    assert first_paragraph("x" * 50, max_chars=10) == "x" * 10
    assert first_paragraph("   ") == ""
    assert first_paragraph("**Plan:** open the fridge.") == "open the fridge."


# ---------------------------------------------------------------------------------------------
# Pricing


def test_pricing(tmp_path):
    assert price_for("gpt-4o-mini-2024-07-18") == (0.15, 0.60)  # longest prefix wins over "gpt-4o"
    assert price_for("openai/gpt-4o") == (2.50, 10.00)
    assert price_for("my-local-student") is None
    assert cost_usd(1_000_000, 1_000_000, "my-local-student") == 0.0
    assert cost_usd(2_000_000, 500_000, "gpt-4o") == pytest.approx(2 * 2.50 + 0.5 * 10.00)
    assert cost_usd(1000, 1000, "teacher", {"teacher": (1.0, 3.0)}) == pytest.approx(0.004)

    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"teacher": [1.0, 3.0], "other": {"input": 0.5, "output": 1.5}}))
    assert load_prices(path) == {"teacher": (1.0, 3.0), "other": (0.5, 1.5)}
    assert cost_usd(1_000_000, 0, "other", path) == pytest.approx(0.5)
    path.write_text(json.dumps({"teacher": "cheap"}))
    with pytest.raises(ValueError, match="teacher"):
        load_prices(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_prices(tmp_path / "missing.json")


def test_chat_policy_cost(generator):
    policy = ChatModelPolicy(LocalChatModel(generator=generator), name="teacher", prices={"teacher": (1.0, 2.0)})
    decision = Decision(action="look", prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert policy.cost_usd(decision) == pytest.approx(3.0)


def test_a_decision_fills_every_step_field_it_shares_with_step():
    import dataclasses

    from agentkd.schema import Candidate, Step

    decision = Decision(action="go to desk 1", thought="look there", raw_output="raw", valid=False,
                        candidates=[Candidate(action="go to desk 1", votes=2)], deferred=True, prompt_tokens=3,
                        completion_tokens=4, latency_s=0.5, error="bad", info={"agreement": 0.5})
    fields = decision.step_fields()
    shared = {f.name for f in dataclasses.fields(Decision)} & set(Step.model_fields)
    assert set(fields) == shared  # a new shared field has to be added to step_fields
    assert fields["info"] == {"agreement": 0.5, "error": "bad"} and decision.info == {"agreement": 0.5}
    step = Step(index=0, observation="obs", **fields)
    assert (step.action, step.valid, step.deferred, step.completion_tokens) == ("go to desk 1", False, True, 4)
    assert Decision(action="x").step_fields()["info"] == {}
