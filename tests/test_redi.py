"""REDI (stage 2): the loss against a hand computation, the stage end to end, and its data errors."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentkd.distill.datasets import EmptyDatasetError  # noqa: E402
from agentkd.models.student import StudentCard  # noqa: E402
from agentkd.train.redi import RediRunConfig, RediTrainer, tokenize_pair, train_redi  # noqa: E402

SYSTEM = {"role": "system", "content": "You are in a house. Act."}
TASK = {"role": "user", "content": "Your task is to: put a mug in the cabinet.\nYou are in the middle of a room."}
PROMPT_REPLY = "Thought: zebra zebra in the prompt.\nAction: look"  # an assistant turn inside the prompt
OBSERVATION = "Nothing happens. quokka quokka"  # a user turn inside a continuation

PAIRS = [
    {  # trajectory pair: a multi-turn chosen continuation with an observation between two replies
        "prompt": [SYSTEM, TASK],
        "chosen": [{"role": "assistant", "content": "Thought: find the mug.\nAction: go to countertop 1"},
                   {"role": "user", "content": OBSERVATION},
                   {"role": "assistant", "content": "Action: take mug 1 from countertop 1"}],
        "rejected": [{"role": "assistant", "content": "Action: go to drawer 2"}],
    },
    {  # step pair: the prompt holds an earlier assistant turn, the rejected side is multi-turn
        "prompt": [SYSTEM, TASK, {"role": "assistant", "content": PROMPT_REPLY},
                   {"role": "user", "content": "You see a cabinet 1."}],
        "chosen": [{"role": "assistant", "content": "Thought: open it.\nAction: open cabinet 1"}],
        "rejected": [{"role": "assistant", "content": "Action: inventory"},
                     {"role": "user", "content": OBSERVATION},
                     {"role": "assistant", "content": "Action: look"}],
    },
]


@pytest.fixture(scope="module")
def tiny(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def _hand_mean_logp(model, tokenizer, prompt, continuation):
    """log π(y|x)/|y| computed independently: assistant spans found by character offsets, one unpadded pass.

    Returns (mean log-prob, the target token ids).
    """
    text = tokenizer.apply_chat_template([*prompt, *continuation], tokenize=False)
    pos = len(tokenizer.apply_chat_template(prompt, tokenize=False))  # the continuation starts here
    spans = []
    for message in continuation:
        if message["role"] == "assistant":
            header = "<|im_start|>assistant\n"
            start = text.index(header + message["content"] + "<|im_end|>", pos) + len(header)
            pos = start + len(message["content"]) + len("<|im_end|>")
            spans.append((start, pos))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    targets = [k for k, (a, b) in enumerate(enc["offset_mapping"]) if any(s <= a and b <= e for s, e in spans)]
    with torch.no_grad():
        logps = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    total = sum(logps[k - 1, ids[k]] for k in targets)  # the logits at k - 1 predict token k
    return float(total) / len(targets), [ids[k] for k in targets]


def _trainer(model, tokenizer, tmp_path, alpha):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    return RediTrainer(model=model, args=args, processing_class=tokenizer, alpha=alpha)


def test_loss_matches_hand_computation(tiny, tmp_path):
    model, tokenizer = tiny
    features = [tokenize_pair(row, tokenizer) for row in PAIRS]

    # The masks pick exactly the continuation's assistant tokens (content + <|im_end|>).
    expected_c, expected_r = [], []
    for row, feat in zip(PAIRS, features, strict=True):
        for side, expected in (("chosen", expected_c), ("rejected", expected_r)):
            mean_logp, target_ids = _hand_mean_logp(model, tokenizer, row["prompt"], row[side])
            expected.append(mean_logp)
            masked = [i for i, m in zip(feat[f"{side}_input_ids"], feat[f"{side}_loss_mask"], strict=True) if m]
            assert masked == target_ids
            text = tokenizer.decode(masked)
            assert "zebra" not in text and "quokka" not in text  # prompt reply, observation: context only
            replies = [m["content"] for m in row[side] if m["role"] == "assistant"]
            assert text == "".join(r + "<|im_end|>" for r in replies)

    trainer = _trainer(model, tokenizer, tmp_path, alpha=0.8)
    batch = trainer.data_collator(features)
    assert batch["input_ids"].shape[0] == 4 and batch["attention_mask"].sum() < batch["attention_mask"].numel()
    with torch.no_grad():
        loss = float(trainer.compute_loss(model, batch))
    hand = sum(-c + 0.8 * r for c, r in zip(expected_c, expected_r, strict=True)) / len(PAIRS)
    assert loss == pytest.approx(hand, abs=1e-5)

    trainer.alpha = 0.0  # only the chosen term left: a different number, so the test can tell
    with torch.no_grad():
        loss0 = float(trainer.compute_loss(model, batch))
    assert loss0 == pytest.approx(-sum(expected_c) / len(PAIRS), abs=1e-5)
    assert abs(loss0 - loss) > 1e-3


def test_template_without_generation_markers_is_refused(model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(ValueError, match="generation"):
        tokenize_pair(PAIRS[0], tokenizer)


def test_train_redi_end_to_end(mixed_store, model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sft_dir = tmp_path / "sft"  # stands in for the SFT stage's output: a student with an "sft" stage
    shutil.copytree(model_dir, sft_dir)
    StudentCard(base="tiny:tiny", stages=[{"stage": "sft", "steps": 1}]).save(sft_dir)
    out = tmp_path / "redi"
    config = RediRunConfig(split="valid_unseen", max_steps=2, batch_size=4, logging_steps=1)
    summary = train_redi(mixed_store, sft_dir, out, config)

    assert summary.stage == "redi" and summary.steps == 2
    assert summary.data.extra("pairs") == {"trajectory": 8, "step": 16}
    assert summary.data.extra("negatives") == 8
    assert summary.tokens > 0 and summary.tokens_per_second > 0
    logged = [entry for entry in summary.losses if "logps/chosen" in entry]
    assert logged and all("logps/rejected" in e and "logps/margin" in e for e in logged)
    assert all(e["logps/chosen"] < 0 and e["logps/rejected"] < 0 for e in logged)
    assert summary.config["alpha"] == 0.8

    on_disk = json.loads((out / "training_summary.json").read_text())
    assert on_disk["stage"] == "redi"
    card = StudentCard.load(out)
    assert [s["stage"] for s in card.stages] == ["sft", "redi"]
    AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)


def test_no_negatives_says_how_to_collect_them(model_dir, tmp_path):
    from agentkd.collection import collect
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.store import ExperienceStore

    store = ExperienceStore(tmp_path / "s", spool_dir=tmp_path / "sp")
    collect(ExpertPolicy(), "household", "valid_unseen", 4, store)
    with pytest.raises(EmptyDatasetError, match="agentkd collect --teacher"):
        train_redi(store, model_dir, tmp_path / "out", RediRunConfig(split="valid_unseen"))


def test_the_head_runs_at_the_continuation_only_and_a_wrapped_model_gets_the_same_logps(model_dir):
    """A plain model scores only the masked positions; a wrapper (PEFT, DDP) takes the full-logits path."""
    from transformers import AutoModelForCausalLM

    from agentkd.train.compact_head import labelled_logps

    class Wrapped(torch.nn.Module):  # what DDP or PEFT hand the trainer: not a PreTrainedModel
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, **kwargs):
            return self.inner(**kwargs)

    torch.manual_seed(0)
    ids = torch.randint(4, 500, (3, 30))
    attention = torch.ones_like(ids)
    attention[2, :6] = 0  # left padding
    labelled = torch.zeros_like(ids)
    labelled[:, 20:] = 1
    labelled[1, 27:] = 0
    results = []
    for wrap in (False, True):
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        head_inputs = []
        head = model.get_output_embeddings()
        head.register_forward_hook(lambda m, args, out, seen=head_inputs: seen.append(args[0].shape))
        logps = labelled_logps(Wrapped(model) if wrap else model, ids, attention, labelled)
        logps.sum().backward()
        results.append((logps.detach(), model.get_output_embeddings().weight.grad.clone(), head_inputs))
    (compact, compact_grad, compact_head), (full, full_grad, full_head) = results
    assert compact_head == [torch.Size([10 + 7 + 10, compact_grad.shape[1]])]  # labelled positions only
    assert full_head[0][:2] == torch.Size([3, 30])  # every position
    assert (compact[labelled[:, 1:] == 0] == 0).all() and (compact[labelled[:, 1:] == 1] < 0).all()
    torch.testing.assert_close(compact, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compact_grad, full_grad, rtol=1e-4, atol=1e-6)
