"""Training data from the store: the episode conversation, its loss mask, packing, filters."""

from __future__ import annotations

import pytest

from agentkd.distill.datasets import _prompt_at, sft_conversations, task_of, trajectory_messages
from agentkd.models.student import PromptFormat
from agentkd.policies.base import PolicyInput
from agentkd.policies.prompt import build_messages, format_step

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def trajectories(mixed_store):
    return sorted(mixed_store.iterate(), key=lambda t: t.trajectory_id)


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def test_every_step_prompt_is_a_prefix_of_the_episode_conversation(trajectories):
    """One conversation per episode trains each step on exactly the prompt the student sees there."""
    fmt = PromptFormat()
    checked = 0
    for traj in trajectories:
        conversation = trajectory_messages(traj, fmt)
        assert len(conversation) == 1 + 2 * len(traj.steps)
        for t, step in enumerate(traj.steps):
            inp = PolicyInput(task=task_of(traj), observation=step.observation, history=traj.steps[:t],
                              admissible_actions=step.admissible_actions)
            prompt = build_messages(inp, fmt.max_history, fmt.show_admissible)
            if all(s.valid for s in traj.steps[:t]):
                assert conversation[: len(prompt)] == prompt
            assert _prompt_at(traj, t, fmt) == conversation[: 2 + 2 * t]
            checked += 1
        assert "Admissible actions" not in "".join(m["content"] for m in conversation)
    assert checked > 100


def test_unparsed_replies_stay_as_the_model_wrote_them(trajectories):
    failed = next(t for t in trajectories if any(not s.valid for s in t.steps))
    conversation = trajectory_messages(failed)
    for i, step in enumerate(failed.steps):
        said = conversation[2 + 2 * i]["content"]
        assert said == (format_step(step.thought, step.action) if step.valid else step.raw_output.strip())


def test_a_window_of_history_cannot_make_one_conversation(trajectories):
    with pytest.raises(ValueError, match="whole history"):
        trajectory_messages(trajectories[0], PromptFormat(max_history=1))


def _spans(mask: list[bool]) -> list[tuple[int, int]]:
    spans, start = [], None
    for i, on in enumerate([*mask, False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            spans.append((start, i))
            start = None
    return spans


def test_sft_labels_train_every_assistant_turn_and_nothing_else(trajectories, tokenizer, model_dir, tmp_path):
    """Decode the labels TRL's SFTTrainer builds for a real episode: only assistant turns, each with <|im_end|>."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    rows, _ = sft_conversations(trajectories, tokenizer)
    args = SFTConfig(output_dir=str(tmp_path), assistant_only_loss=True, packing=False, report_to="none",
                     use_cpu=True, max_length=4096)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=args,
                         train_dataset=Dataset.from_list(rows[:2]), processing_class=tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    for row, ids, labels in zip(rows[:2], batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True):
        trained = [label != -100 for label in labels]
        assert all(label == tok for label, tok in zip(labels, ids, strict=True) if label != -100)
        pieces = [tokenizer.decode(ids[a:b]) for a, b in _spans(trained)]
        replies = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        assert pieces == [reply + "<|im_end|>" for reply in replies]
        pad = tokenizer.pad_token_id
        masked = tokenizer.decode([t for t, on in zip(ids, trained, strict=True) if not on and t != pad])
        assert "Your task:" in masked and "Observation:" in masked and "<|im_start|>system" in masked
        assert not any(reply in masked for reply in replies)  # no reply is left untrained


def test_packed_rows_keep_examples_apart(trajectories, tokenizer, model_dir):
    """Padding-free packing on CPU (SDPA) gives each example the logits it has on its own.

    transformers splits a packed row by its position ids only without a KV cache, which is how
    SFTTrainer calls the model (``use_cache=False``); with a cache the examples would see each other.
    """
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    rows, _ = sft_conversations(trajectories[:3], tokenizer)
    sequences = [tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"]
                 for r in rows]
    packed = torch.tensor([sum(sequences, [])])
    positions = torch.tensor([[p for s in sequences for p in range(len(s))]])
    with torch.no_grad():
        together = model(input_ids=packed, position_ids=positions, use_cache=False).logits[0]
        start = 0
        for seq in sequences:
            alone = model(input_ids=torch.tensor([seq])).logits[0]
            assert torch.allclose(together[start : start + len(seq)], alone, atol=1e-4)
            start += len(seq)


def test_sft_filters_count_what_they_drop(trajectories, tokenizer):
    wins = sum(t.success for t in trajectories)
    rows, report = sft_conversations(trajectories + trajectories[:2], tokenizer)
    assert report.kept == len(rows) == wins
    assert report.dropped["failed"] == len(trajectories) - wins + sum(not t.success for t in trajectories[:2])
    assert report.dropped["duplicate"] == sum(t.success for t in trajectories[:2])

    one_type = trajectories[0].task_type
    rows, report = sft_conversations(trajectories, tokenizer, task_types=[one_type])
    assert rows and all(r["messages"][1]["content"] for r in rows)
    assert report.dropped["task_type"] == sum(t.success and t.task_type != one_type for t in trajectories)

    lengths = sorted(
        len(tokenizer.apply_chat_template(trajectory_messages(t), tokenize=True, return_dict=True)["input_ids"])
        for t in trajectories if t.success)
    limit = lengths[len(lengths) // 2]
    too_long = sum(n > limit for n in lengths)
    cut, report = sft_conversations(trajectories, tokenizer, max_length=limit)
    assert report.truncated == too_long and report.kept == wins
    for row in cut:
        ids = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"]
        assert len(ids) <= limit
        assert row["messages"][-1]["role"] == "assistant"
    kept, report = sft_conversations(trajectories, tokenizer, max_length=limit, overlong="drop")
    assert report.dropped["too_long"] == too_long and len(kept) == wins - too_long


def test_the_experts_mistakes_are_shown_recovered_from_and_never_trained(tokenizer, model_dir, tmp_path):
    """ExpertPolicy(mistake_rate): wrong admissible actions on purpose, then the expert's recovery; SFT masks them."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from agentkd.collection import collect
    from agentkd.distill.datasets import is_mistake, redi_pairs
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.policies.prompt import assistant_text
    from agentkd.store import ExperienceStore

    store = ExperienceStore(tmp_path / "store", spool_dir=tmp_path / "spool")
    policy = ExpertPolicy("household", mistake_rate=0.3)
    assert policy.info.kind == "noisy_expert"
    collect(policy, "household", "valid_unseen", 8, store)
    noisy = sorted(store.iterate(), key=lambda t: t.trajectory_id)
    mistakes = [s for t in noisy for s in t.steps if is_mistake(s)]
    assert mistakes and all(s.action != s.info["expert_action"] for s in mistakes)
    # Wrong admissible actions, and slips the environment refuses, shown as written next to its answer.
    slips = [s for s in mistakes if not s.valid]
    assert slips and len(slips) < len(mistakes)
    assert all(s.next_observation == "Nothing happens." and s.action not in s.admissible_actions for s in slips)
    assert all(assistant_text(s) == format_step(s.thought, s.action) for s in slips)
    assert sum(t.success for t in noisy) >= 6  # the expert recovers from where its mistakes left it

    traj = next(t for t in noisy if t.success and any(is_mistake(s) for s in t.steps))
    (row,), _ = sft_conversations([traj], tokenizer)
    flags = [m.get("train") for m in row["messages"] if m["role"] == "assistant"]
    assert flags == [False if is_mistake(s) else None for s in traj.steps]
    args = SFTConfig(output_dir=str(tmp_path / "o"), assistant_only_loss=True, packing=False, report_to="none",
                     use_cpu=True, max_length=4096)
    rows = [row, *sft_conversations([t for t in noisy if t is not traj][:1], tokenizer)[0]]
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=args,
                         train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    pieces = [tokenizer.decode(ids[a:b]) for a, b in _spans([label != -100 for label in labels])]
    trained = [format_step(s.thought, s.action) + "<|im_end|>" for s in traj.steps if not is_mistake(s)]
    assert pieces == trained  # every expert turn is learnt, no mistake is
    text = tokenizer.decode(ids)
    assert all(format_step(s.thought, s.action) in text for s in traj.steps if is_mistake(s))  # but shown

    collect(ExpertPolicy("household"), "household", "valid_unseen", 1, store)
    clean = next(t for t in store.iterate(policy_kind="expert"))
    failed = clean.model_copy(update={"success": False, "trajectory_id": "a-failure"})
    report = redi_pairs([*noisy, clean, failed], tokenizer, step_pairs=False)[1]
    assert report.dropped["with_mistakes"] == len(noisy)  # never a REDI positive or negative

    old = AutoTokenizer.from_pretrained(model_dir)
    old.chat_template = old.chat_template.replace("message['train'] is sameas false", "false")
    with pytest.raises(ValueError, match="deliberate mistakes"):
        sft_conversations([traj], old)


def test_the_experts_premature_slips_come_from_its_own_next_moves_played_on_a_copy(tmp_path):
    """ExpertPolicy(lookahead=K): a slip may be a move the expert makes within K steps, refused now; the real
    episode is not advanced by looking ahead, and trajectories collected without lookahead keep their ids."""
    from agentkd.collection import collect
    from agentkd.envs import load_tasks, make_env
    from agentkd.errors import ConfigError
    from agentkd.policies.expert import ExpertPolicy, _premature
    from agentkd.store import ExperienceStore

    task = next(t for t in load_tasks("household", "valid_unseen") if t.task_type == "look_at_obj_in_light")
    env = make_env("household")
    observation = env.reset(task)
    solution = []  # the expert's moves on a second environment, for reference
    reference = make_env("household")
    reference.reset(task)
    while not reference.done:
        solution.append(reference.expert_action()[1])
        reference.step(solution[-1])
    _, first = env.expert_action()
    inp = PolicyInput(task=task, observation=observation, admissible_actions=env.admissible_actions(), env=env)
    early = _premature(inp, first, lookahead=len(solution))
    assert early and all(m in solution[1:] and m not in inp.admissible_actions for m in early)
    assert any(m.startswith(("take ", "use ")) for m in early)  # acting on what it has not reached
    assert _premature(inp, first, lookahead=0) == []
    assert env.steps == 0 and env.admissible_actions() == inp.admissible_actions
    env.step(first)
    assert env.expert_action()[1] == solution[1]  # its memory, too, is the copy's alone

    store = ExperienceStore(tmp_path / "store", spool_dir=tmp_path / "spool")
    policy = ExpertPolicy("household", mistake_rate=0.4, lookahead=3)
    assert policy.info.params["lookahead"] == 3 and "lookahead" not in ExpertPolicy(mistake_rate=0.4).info.params
    collect(policy, "household", "valid_unseen", 6, store)
    # The other slips are never made later (a number past the last) or repeat the previous command.
    premature = [s for t in store.iterate() for i, s in enumerate(t.steps) if s.info.get("mistake") and not s.valid
                 and (i == 0 or s.action != t.steps[i - 1].action) and s.action in [x.action for x in t.steps[i:]
                                                                                    if x.valid]]
    assert premature and all(s.next_observation == "Nothing happens." for s in premature)
    with pytest.raises(ConfigError, match="lookahead"):
        ExpertPolicy(lookahead=2)


def test_step_pairs_reject_a_refused_command_before_another_order_of_search():
    """A failed episode that first goes somewhere the expert would not (valid) and then writes a command the
    environment refuses: with one step pair per episode, the pair is at the refused command, as written."""
    from agentkd.distill.datasets import redi_pairs
    from agentkd.envs import load_tasks, make_env
    from agentkd.schema import PolicyInfo, Step, Trajectory

    task = next(t for t in load_tasks("household", "valid_unseen") if t.task_type == "look_at_obj_in_light")
    env = make_env("household")
    first_obs = env.reset(task)
    _, expert_first = env.expert_action()
    detour = next(a for a in env.admissible_actions() if a.startswith("go to ") and a != expert_first)
    second_obs = env.step(detour)[0]
    refused = "Thought: I will look further.\nAction: go to desk 99"
    third_obs = env.step("go to desk 99")[0]
    assert third_obs == "Nothing happens."
    steps = [Step(index=0, observation=first_obs, thought="I look here first.", action=detour,
                  raw_output=format_step("I look here first.", detour), next_observation=second_obs),
             Step(index=1, observation=second_obs, action="", raw_output=refused, valid=False,
                  next_observation=third_obs)]
    failed = Trajectory.start(task, PolicyInfo(name="student", kind="hf")).model_copy(update={"steps": steps})
    rows, report = redi_pairs([failed], trajectory_pairs=False, make_env=make_env, load_task=lambda _: task,
                              max_step_pairs_per_episode=1)
    (row,) = rows
    assert row["kind"] == "step" and row["rejected"] == [{"role": "assistant", "content": refused}]
    assert row["prompt"][-1]["content"].startswith(f"Observation: {second_obs}")
    assert report.extra["pairs"] == {"step": 1}


def test_the_teachers_marked_mistakes_are_redi_step_pairs(tmp_path):
    """A store without a failed episode still gives REDI negatives: at each of the noisy expert's marked
    mistakes (refused slips first), its own move is chosen and the mistake, as written, rejected."""
    from agentkd.collection import collect
    from agentkd.distill.datasets import EmptyDatasetError, is_mistake, redi_pairs
    from agentkd.envs import load_tasks, make_env
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.policies.prompt import assistant_text
    from agentkd.store import ExperienceStore

    store = ExperienceStore(tmp_path / "store", spool_dir=tmp_path / "spool")
    collect(ExpertPolicy("household", mistake_rate=0.3), "household", "valid_unseen", 8, store)
    noisy = sorted(store.iterate(), key=lambda t: t.trajectory_id)
    tasks = {t.task_id: t for t in load_tasks("household", "valid_unseen")}
    rows, report = redi_pairs(noisy, make_env=make_env, load_task=lambda traj: tasks[traj.task_id],
                              max_step_pairs_per_episode=1)
    assert report.extra["negatives"] == 0 and report.extra["with_mistakes"] == len(noisy)
    assert rows and {row["kind"] for row in rows} == {"mistake"}
    assert len(rows) <= len(noisy)
    by_id = {t.trajectory_id: t for t in noisy}
    for row in rows:
        traj = by_id[row["rejected_trajectory"]]
        t = sum(m["role"] == "assistant" for m in row["prompt"])  # the step the pair is at
        step = traj.steps[t]
        assert is_mistake(step)
        assert row["rejected"][0]["content"] == assistant_text(step)
        assert row["chosen"][0]["content"] == format_step(step.thought, step.info["expert_action"])
        # a refused slip is preferred to an admissible mistake of the same episode
        assert step.valid is False or all(s.valid for s in traj.steps if is_mistake(s))
    with pytest.raises(EmptyDatasetError, match="negatives"):
        redi_pairs(noisy, make_env=make_env, load_task=lambda traj: tasks[traj.task_id], mistake_pairs=False)
