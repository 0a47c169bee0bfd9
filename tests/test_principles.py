"""The principles lifecycle on a real Chroma store with the offline embedder and real episodes.

Household episodes are played by the explorer (the expert without placement priors) in the real
environment; failures come from a scripted policy that keeps trying an impossible action, also in the
real environment. The chat models here are langchain_core's fake chat models (real LangChain chat
model classes that return given messages), standing in for a networked model: they test the prompts,
the structured-output plumbing and the parsing, not what a real model would write.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC

import pytest
from typer.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("chromadb")
pytest.importorskip("sentence_transformers")

from agentkd.agents import play_episode  # noqa: E402
from agentkd.collection import collect_async, plan_episodes  # noqa: E402
from agentkd.distill.principles import (  # noqa: E402
    RETRIEVED_KEY,
    SHOWN_KEY,
    MinerConfig,
    PrincipleRetriever,
    PrinciplesPolicy,
    add_principles,
    credit,
    deduplicate,
    distill_principles,
    mine_principles,
    prune,
    shown_principles,
)
from agentkd.distill.principles.mine import cautionary_principles, tool_sequence_principles  # noqa: E402
from agentkd.policies.base import Decision, PolicyInput  # noqa: E402
from agentkd.policies.expert import ExpertPolicy  # noqa: E402
from agentkd.policies.explorer import ExplorerPolicy  # noqa: E402
from agentkd.policies.prompt import build_messages, parse_output  # noqa: E402
from agentkd.schema import PolicyInfo, Principle, Trajectory, principle_id  # noqa: E402
from agentkd.store import ExperienceStore, similarity_from_distance  # noqa: E402
from environments.household import HouseholdEnv, load_split, world_for_task  # noqa: E402
from environments.household.explorer import HouseholdExplorer  # noqa: E402

SAME = "Always open a closed receptacle before looking for objects inside it."
SAME_REWORDED = "Always open closed receptacles before looking for objects inside them."  # cosine ~0.98
OTHER = "Heat food in the microwave before putting it on the table."  # cosine ~0.2 to SAME


@pytest.fixture(scope="module")
def embedder():
    from agentkd.store import default_embedding_function

    return default_embedding_function()


def _store(path, embedder) -> ExperienceStore:
    return ExperienceStore(path / "store", embedding_function=embedder, spool_dir=path / "spool")


@pytest.fixture(scope="module")
def explored(tmp_path_factory, embedder) -> tuple[ExperienceStore, list[Trajectory]]:
    """16 explorer episodes of valid_seen, recorded into a real store by collect_async."""
    store = _store(tmp_path_factory.mktemp("explored"), embedder)
    tasks = load_split("valid_seen")[:16]
    asyncio.run(collect_async(ExplorerPolicy(), "household", plan_episodes(tasks, len(tasks)), store, workers=8))
    return store, list(store.iterate(env="household"))


class ScriptedPolicy:
    """Plays a fixed list of actions (then repeats the last one): a failing agent in the real environment."""

    def __init__(self, actions: list[str]) -> None:
        self.actions = actions
        self.info = PolicyInfo(kind="scripted", name="stubborn", params={"actions": actions})

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        return [Decision(action=self.actions[min(len(inp.history), len(self.actions) - 1)]) for inp in inputs]


class Recording:
    """Wraps a policy and keeps every input it was given (to look at the prompt it would render)."""

    def __init__(self, policy) -> None:
        self.policy, self.info, self.inputs = policy, policy.info, []

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        self.inputs.extend(inputs)
        return self.policy.act(inputs)


def _failures(n: int = 3) -> list[Trajectory]:
    policy = ScriptedPolicy(["look", "take mug 9 from countertop 9"])
    return [play_episode(HouseholdEnv(), policy, task, max_steps=5) for task in load_split("valid_seen")[:n]]


def _fresh(tmp_path, embedder, principles: list[Principle]) -> ExperienceStore:
    store = _store(tmp_path, embedder)
    store.upsert_principles(principles)
    return store


# ---- mining -----------------------------------------------------------------------------------------


def test_the_miner_finds_search_orders_in_recorded_explorer_episodes(explored):
    store, trajectories = explored
    assert len(trajectories) == 16
    mined = mine_principles(store.iterate(env="household"))
    orders = {p.data["object"]: p for p in mined if p.data.get("kind") == "search_order"}
    goals = {t.params["obj"] for t in load_split("valid_seen")[:16]}
    assert len(goals & set(orders)) >= len(goals) // 2  # most goal objects turned up often enough
    for otype, p in orders.items():
        data = p.data
        assert p.kind == "guiding" and p.env == "household" and p.task_type is None
        assert p.key == f"household/search-order/{otype}" and p.principle_id == principle_id(p.key)
        assert all(0 <= data["found"].get(r, 0) <= data["looked"][r] for r in data["looked"])
        value = {r: data["rates"][r] / (2 if r in data["closed"] else 1) for r in data["order"]}
        assert [value[r] for r in data["order"]] == sorted(value.values(), reverse=True)
        named = [r for r in data["order"] if data["found"].get(r, 0) > 0][:3]
        assert p.text.startswith(("A ", "An ")) and all(r in p.text for r in named)
        assert p.source_trajectories and set(p.source_trajectories) <= {t.trajectory_id for t in trajectories}
    # Mining again gives the same records (same keys): distilling twice updates instead of duplicating.
    assert [p.principle_id for p in mine_principles(trajectories)] == [p.principle_id for p in mined]


def test_the_miner_turns_repeated_ineffective_actions_in_failures_into_cautions(explored):
    successes = [t for t in explored[1] if t.success]
    failures = _failures(3)
    assert all(not t.success for t in failures)
    assert all(t.steps[-1].next_observation == "Nothing happens." for t in failures)
    cautions = {p.key: p for p in cautionary_principles([*successes, *failures])}
    assert set(cautions) == {"household/caution/repeated-invalid", "household/caution/loop",
                             "household/caution/no-effect/take"}
    assert all(p.kind == "cautionary" and len(p.source_trajectories) == 3 for p in cautions.values())
    assert "take mug 9 from countertop 9" in cautions["household/caution/loop"].text
    assert cautions["household/caution/repeated-invalid"].data["failure_rate"] == 1.0
    assert cautionary_principles(successes) == []  # the explorer neither loops nor repeats what failed


class WritingRefused:
    """A model-like policy whose command the environment refuses: stored with an empty action, as replay does."""

    info = PolicyInfo(kind="scripted", name="refused")

    text = "Thought: I go to the toilet.\nAction: go to toilet 7"

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        parsed = [parse_output(self.text, inp.admissible_actions) for inp in inputs]
        return [Decision(action=p.action, thought=p.thought, raw_output=self.text, valid=p.valid, error=p.error)
                for p in parsed]


def test_the_miner_reads_the_command_a_refused_step_wrote(explored):
    successes = [t for t in explored[1] if t.success]
    failures = [play_episode(HouseholdEnv(), WritingRefused(), task, max_steps=5)
                for task in load_split("valid_seen")[:3]]
    assert all(s.action == "" and not s.valid for t in failures for s in t.steps)
    cautions = {p.key: p for p in cautionary_principles([*successes, *failures])}
    assert set(cautions) == {"household/caution/repeated-invalid", "household/caution/loop",
                             "household/caution/no-effect/go to"}
    assert all(p.data["example"] == "go to toilet 7" for k, p in cautions.items() if "no-effect" not in k)
    assert "go to toilet 7" in cautions["household/caution/no-effect/go to"].text


def test_the_miner_finds_the_successful_tool_sequence_per_qa_task_type(tmp_path):
    from agentkd.envs import load_tasks
    from agentkd.eval.run import MemoryStore

    tasks = load_tasks("qa", "train")
    chosen = [t for t in tasks if t.task_type == "founder_birthplace"][:3] + [
        t for t in tasks if t.task_type == "founder"][:3]
    store = MemoryStore()
    asyncio.run(collect_async(ExpertPolicy("qa"), "qa", plan_episodes(chosen, len(chosen)), store, workers=3,
                              max_steps=8))
    mined = {p.task_type: p for p in tool_sequence_principles(store.items.values(), MinerConfig(min_support=3))}
    bridge = mined["founder_birthplace"]
    assert bridge.data["sequence"] == ["search(question)", "search(results)", "final_answer"]
    assert bridge.text.startswith("For founder_birthplace tasks: search a name from the question, then search a "
                                  "name read in the earlier results, then call final_answer.")
    assert mined["founder"].data["sequence"] == ["search(question)", "final_answer"]
    assert bridge.env == "qa" and bridge.kind == "guiding" and len(bridge.source_trajectories) == 3


# ---- similarity and merging -------------------------------------------------------------------------


def test_similarity_direction_is_pinned(tmp_path, embedder):
    import numpy as np

    store = _fresh(tmp_path, embedder, [Principle.new(SAME, "guiding", "household"),
                                        Principle.new(OTHER, "guiding", "household")])
    hits = store.query_principles(SAME, k=2)
    assert [h.principle.text for h in hits] == [SAME, OTHER]  # most similar first
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-3) and hits[0].distance == pytest.approx(0.0, abs=1e-3)
    assert hits[1].similarity < 0.5 < hits[1].distance
    vectors = np.array(embedder([SAME, OTHER]))  # normalised: cosine similarity is the dot product
    assert hits[1].similarity == pytest.approx(float(vectors[0] @ vectors[1]), abs=1e-3)
    assert similarity_from_distance(0.1) == pytest.approx(0.9)


def test_near_duplicates_merge_and_different_lessons_do_not(tmp_path, embedder):
    store = _store(tmp_path, embedder)
    first = Principle.new(SAME, "guiding", "household", source_trajectories=["t1"])
    assert add_principles(store, [first]).added == [first.principle_id]
    # Threshold 0.5: the rewording (similarity ~0.98, distance ~0.02) merges; OTHER (similarity ~0.2,
    # distance ~0.8) does not. Comparing distances instead of similarities would do the opposite.
    reworded = Principle.new(SAME_REWORDED, "guiding", "household", source_trajectories=["t2", "t3"])
    report = add_principles(store, [reworded, Principle.new(OTHER, "guiding", "household")], threshold=0.5)
    assert [(c, into) for c, into, _ in report.merged] == [(reworded.principle_id, first.principle_id)]
    assert report.merged[0][2] > 0.9 and len(report.added) == 1
    merged = store.get_principle(first.principle_id)
    assert merged.text == SAME_REWORDED  # the better text: more source trajectories
    assert merged.source_trajectories == ["t1", "t2", "t3"] and merged.version == 2
    assert merged.history[-1].change == "merged" and merged.history[-1].details["text_before"] == SAME
    assert store.count_principles() == 2
    # A different kind or a judge that disagrees keeps them apart; structured (keyed) principles never merge.
    caution = Principle.new(SAME_REWORDED, "cautionary", "household")
    assert add_principles(store, [caution], threshold=0.5).added == [caution.principle_id]
    judged = Principle.new("Always open a closed receptacle before looking inside it.", "guiding", "household")
    assert add_principles(store, [judged], judge=lambda a, b: False).added == [judged.principle_id]
    mug = Principle.new("A mug is on a desk.", "guiding", "household", key="household/search-order/mug")
    cup = Principle.new("A mug is on a desk!", "guiding", "household", key="household/search-order/cup")
    assert len(add_principles(store, [mug, cup], threshold=0.5).added) == 2


def test_deduplicate_merges_stored_duplicates_into_the_better_one(tmp_path, embedder):
    weak = Principle.new(SAME_REWORDED, "guiding", "household", source_trajectories=["a"])
    strong = Principle.new(SAME, "guiding", "household", source_trajectories=["b", "c"])
    store = _fresh(tmp_path, embedder, [weak, strong, Principle.new(OTHER, "guiding", "household")])
    assert [(a, b) for a, b, _ in deduplicate(store)] == [(weak.principle_id, strong.principle_id)]
    absorbed, kept = store.get_principle(weak.principle_id), store.get_principle(strong.principle_id)
    assert absorbed.status == "merged" and absorbed.merged_into == strong.principle_id
    assert kept.text == SAME and kept.source_trajectories == ["b", "c", "a"]
    assert store.count_principles(status="active") == 2
    assert deduplicate(store) == []


# ---- credit, score, pruning, versions ---------------------------------------------------------------


def test_only_principles_shown_in_an_episode_are_credited_with_its_outcome(tmp_path, embedder, explored):
    _, trajectories = explored
    store = _fresh(tmp_path, embedder, mine_principles(trajectories))
    policy = PrinciplesPolicy(ExplorerPolicy(), PrincipleRetriever(store, "household", k=1))
    tasks = load_split("valid_unseen")[:3]
    played = [play_episode(HouseholdEnv(), policy, tasks[0], max_steps=2),  # cut short: a failure
              *(play_episode(HouseholdEnv(), policy, task) for task in tasks[1:])]
    assert not played[0].success and any(t.success for t in played[1:])
    shown = {t.trajectory_id: set(shown_principles(t)) for t in played}
    left_out = {pid for t in played for s in t.steps for pid in s.info[RETRIEVED_KEY]}
    never_shown = left_out - set().union(*shown.values())
    assert never_shown  # retrieved, ranked, but not shown: k=1

    report = credit(store, played)
    for pid, principle in store.get_principles(set().union(*shown.values()) | never_shown).items():
        episodes = [t for t in played if pid in shown[t.trajectory_id]]
        assert principle.usage_count == len(episodes)
        assert principle.success_count == sum(t.success for t in episodes)
        if pid in never_shown:
            assert principle.usage_count == 0 and principle.version == 1
    assert report.episodes == 3 and set(report.credited) == set().union(*shown.values())
    assert any(won < uses for uses, won in report.credited.values())  # the failure counted as a use only
    again = credit(store, played)  # an episode is credited once
    assert again.credited == {} and again.skipped == 3


def test_score_prune_after_min_usage_and_versioned_history_survive_reopening(tmp_path, embedder):
    tired = Principle.new("A mug is most often found in/on a garbagecan; look there first.", "guiding",
                          "household").model_copy(update={"usage_count": 4, "success_count": 0})
    store = _fresh(tmp_path, embedder, [tired])
    assert tired.score == pytest.approx(1 / 6)
    assert prune(store, threshold=0.3, min_usage=5) == []  # below the threshold, but used only 4 times

    policy = PrinciplesPolicy(ExplorerPolicy(), PrincipleRetriever(store, "household", k=1))
    failed = play_episode(HouseholdEnv(), policy, load_split("valid_unseen")[0], max_steps=2)
    assert not failed.success and shown_principles(failed) == [tired.principle_id]
    credit(store, [failed])
    assert store.get_principle(tired.principle_id).score == pytest.approx(1 / 7)
    assert [p.principle_id for p in prune(store, threshold=0.3, min_usage=5)] == [tired.principle_id]
    assert store.count_principles(status="active") == 0
    with pytest.raises(ValueError, match="no active principles for env=household"):
        PrincipleRetriever(store, "household")

    store.close()
    reopened = ExperienceStore(tmp_path / "store", embedding_function=embedder, spool_dir=tmp_path / "spool")
    kept = reopened.get_principle(tired.principle_id)
    assert kept.status == "pruned" and (kept.usage_count, kept.success_count, kept.version) == (5, 0, 3)
    assert [(c.version, c.change) for c in kept.history] == [(1, "created"), (2, "credited"), (3, "pruned")]
    assert kept.history[1].details["trajectories"] == [failed.trajectory_id]
    times = [c.at for c in kept.history]
    assert all(t.tzinfo is not None and t.utcoffset() == UTC.utcoffset(None) for t in times)
    assert times == sorted(times) and kept.updated_at == times[-1]


# ---- retrieval and use ------------------------------------------------------------------------------


def test_retrieval_ranks_by_similarity_times_score_within_the_budget(tmp_path, embedder):
    similar_but_failing = Principle.new("A mug is most often found in/on a dresser, desk or sidetable; look there "
                                        "first.", "guiding", "household").model_copy(
        update={"usage_count": 20, "success_count": 0})
    relevant = Principle.new("Look for a mug on the countertop and in the cabinets first.", "guiding", "household")
    proven = Principle.new(OTHER, "guiding", "household").model_copy(update={"usage_count": 20, "success_count": 10})
    other_type = Principle.new("Look for a mug on the countertop first.", "guiding", "household",
                               "pick_two_obj_and_place")
    store = _fresh(tmp_path, embedder, [similar_but_failing, relevant, proven, other_type])
    task = load_split("valid_unseen")[0].model_copy(update={"goal": "put a mug in coffeemachine.",
                                                            "task_type": "pick_and_place_simple"})
    inp = PolicyInput(task=task, observation="You are in the middle of a room.")

    got = PrincipleRetriever(store, "household", k=3, max_tokens=1000).retrieve([inp])[0]
    assert other_type.principle_id not in {pid for pid, _, _ in got.ranking}  # another task type
    values = {pid: (similarity, value) for pid, similarity, value in got.ranking}
    assert [p.principle_id for p in got.shown] == [relevant.principle_id, proven.principle_id,
                                                   similar_but_failing.principle_id]
    assert values[similar_but_failing.principle_id][0] > values[proven.principle_id][0]  # more similar ...
    for pid, (similarity, value) in values.items():  # ... but ranked by similarity x score
        assert value == pytest.approx(similarity * store.get_principle(pid).score)

    tight = PrincipleRetriever(store, "household", k=3, max_tokens=20).retrieve([inp])[0]
    assert [p.principle_id for p in tight.shown] == [relevant.principle_id]  # ~15 tokens each
    assert {p.principle_id for p in tight.left_out} == {proven.principle_id, similar_but_failing.principle_id}
    assert len(PrincipleRetriever(store, "household", k=1).retrieve([inp])[0].shown) == 1


def test_the_wrapper_puts_principles_into_the_prompt_and_records_the_shown_ids(tmp_path, embedder, explored):
    _, trajectories = explored
    store = _fresh(tmp_path, embedder, mine_principles(trajectories))
    inner = Recording(ExpertPolicy())
    policy = PrinciplesPolicy(inner, PrincipleRetriever(store, "household", k=2))
    assert policy.info.params["principles"] == {"k": 2, "max_tokens": 200}
    traj = play_episode(HouseholdEnv(), policy, load_split("valid_unseen")[1])
    assert traj.success
    for step, inp in zip(traj.steps, inner.inputs, strict=True):
        ids = step.info[SHOWN_KEY]
        assert 1 <= len(ids) <= 2 and ids == [p.principle_id for p in inp.principle_records]
        system = build_messages(inp)[0]["content"]
        assert "Principles:" in system and all(p.text in system for p in inp.principle_records)


def test_the_explorer_searches_where_a_search_order_principle_says(tmp_path, embedder):
    task = next(t for t in load_split("valid_unseen") if t.task_type == "pick_and_place_simple")
    world = world_for_task(task)
    obj = task.params["obj"]
    holders = sorted({world.receptacles[r].type for r, things in world.initial_contents.items()
                      if any(world.things[t].type == obj for t in things)})
    order = Principle.new(f"A {obj} is most often found in/on a {holders[0]}.", "guiding", "household",
                          key=f"household/search-order/{obj}",
                          data={"kind": "search_order", "object": obj, "rates": {holders[0]: 0.9}, "base_rate": 0.0})

    def first_search(principles: list[Principle]) -> str:
        world.reset()
        explorer = HouseholdExplorer(world, seed=task.task_id)
        explorer.use_principles(principles)
        return explorer.act()[1]

    assert first_search([order]).startswith(f"go to {holders[0]} ")
    assert first_search([]) == first_search([]) != ""  # without principles: a fixed, prior-free order

    alone = play_episode(HouseholdEnv(), ExplorerPolicy(), task)
    guided = play_episode(HouseholdEnv(), PrinciplesPolicy(ExplorerPolicy(), PrincipleRetriever(
        _fresh(tmp_path, embedder, [order]), "household", k=1)), task)
    assert guided.success and guided.steps[0].action.startswith(f"go to {holders[0]} ")
    assert guided.num_steps <= alone.num_steps


def test_the_eval_ablation_switch_parses():
    from agentkd.eval.run import parse_configs

    plain, shown, both = parse_configs("greedy,greedy+principles,sc@4+cascade@0.5+principles")
    assert not plain.principles and shown.principles and shown.samples == 1
    assert both.principles and both.cascade == 0.5 and both.samples == 4
    assert "principles" in both.describe()


# ---- extraction with a chat model -------------------------------------------------------------------


def _tool_calling_fake(answers: list[dict]):
    """GenericFakeChatModel that accepts tools, answering each call with a tool call carrying ``answers[i]``."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    class ToolCallingFake(GenericFakeChatModel):
        def bind_tools(self, tools, **kwargs):  # the schema is fixed by the answers
            return self

    messages = iter([AIMessage(content="", tool_calls=[{"name": "ExtractedPrinciples", "args": a, "id": str(i)}])
                     for i, a in enumerate(answers)])
    return ToolCallingFake(messages=messages)


def test_a_chat_model_extracts_guiding_and_cautionary_principles(explored):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from agentkd.distill.principles.extract import extract_principles, extraction_messages

    success, failure = explored[1][0], _failures(1)[0]
    prompts = [m[1].content for m in (extraction_messages(success), extraction_messages(failure))]
    assert "SUCCEEDED" in prompts[0] and success.goal in prompts[0] and success.steps[0].action in prompts[0]
    assert "FAILED" in prompts[1] and "Nothing happens." in prompts[1]

    model = _tool_calling_fake([
        {"principles": [{"text": "Put the object down only  once it is   clean.", "applies_to_task_type": True}]},
        {"principles": [{"text": "Do not repeat an action that had no effect.", "applies_to_task_type": False}]},
    ])
    report = extract_principles(model, [success, failure], max_concurrency=1)
    guiding, caution = report.principles
    assert (guiding.kind, guiding.task_type, guiding.text) == ("guiding", success.task_type,
                                                               "Put the object down only once it is clean.")
    assert (caution.kind, caution.task_type) == ("cautionary", None)
    assert caution.source_trajectories == [failure.trajectory_id] and not report.failed

    # A chat model without tool calling is asked for JSON; an unreadable answer is reported, not raised.
    plain = FakeListChatModel(responses=['{"principles": [{"text": "Check the fridge for food."}]}', "no idea"])
    report = extract_principles(plain, [success, failure], max_concurrency=1)
    assert [p.text for p in report.principles] == ["Check the fridge for food."]
    assert [tid for tid, _ in report.failed] == [failure.trajectory_id]


def test_a_chat_model_judge_can_veto_a_merge(tmp_path, embedder):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from agentkd.distill.principles.extract import model_judge

    store = _fresh(tmp_path, embedder, [Principle.new(SAME, "guiding", "household")])
    judge = model_judge(FakeListChatModel(responses=['{"same": false, "reason": "different objects"}',
                                                     '{"same": true}']))
    reworded = Principle.new(SAME_REWORDED, "guiding", "household")
    assert add_principles(store, [reworded], judge=judge).added == [reworded.principle_id]
    third = Principle.new("Always open any closed receptacle before looking for objects inside it.", "guiding",
                          "household")
    assert len(add_principles(store, [third], judge=judge).merged) == 1


# ---- command line -----------------------------------------------------------------------------------


def test_cli_distills_lists_and_shows_principles(explored):
    from agentkd.cli import app

    store, _ = explored
    runner = CliRunner()
    result = runner.invoke(app, ["distill", "principles", "--store", str(store.path), "--env", "household"])
    assert result.exit_code == 0, result.output
    assert "16 trajectories" in result.output and "added" in result.output
    again = runner.invoke(app, ["distill", "principles", "--store", str(store.path)])
    assert again.exit_code == 0 and "0 added" in again.output and "unchanged" in again.output

    listed = runner.invoke(app, ["principles", "list", "--store", str(store.path), "--kind", "guiding"],
                           env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "most often found in/on" in listed.output
    first = next(p for p in store.iterate_principles(status="active"))
    shown = runner.invoke(app, ["principles", "show", first.principle_id, "--store", str(store.path)],
                          env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and first.text in shown.output and "created" in shown.output

    missing = runner.invoke(app, ["principles", "show", "p-missing", "--store", str(store.path)])
    assert missing.exit_code == 2 and "no principle 'p-missing'" in missing.output
    assert runner.invoke(app, ["distill", "principles", "--store", str(store.path), "--judge"]).exit_code == 2
    empty = runner.invoke(app, ["distill", "principles", "--store", str(store.path), "--env", "math"])
    assert empty.exit_code == 2 and "no (non-evaluation) trajectories" in empty.output


def test_distill_credits_stored_episodes_that_showed_principles(tmp_path, embedder, explored):
    _, trajectories = explored
    store = _store(tmp_path, embedder)
    store.upsert(trajectories[:6])
    report = distill_principles(store, env="household")
    assert report.source == "miner" and report.added.added and report.credited.episodes == 0
    policy = PrinciplesPolicy(ExplorerPolicy(), PrincipleRetriever(store, "household", k=2))
    shown = play_episode(HouseholdEnv(), policy, load_split("valid_unseen")[2])
    shown.metadata["evaluation"] = "explorer+principles"
    store.upsert(shown)
    again = distill_principles(store, env="household")
    assert again.trajectories == 6  # evaluation episodes are not distilled ...
    assert again.credited.episodes == 1 and set(again.credited.credited) == set(shown_principles(shown))


@pytest.mark.slow
def test_the_principles_ablation_runs_end_to_end():
    from agentkd.bench.principles import principles_ablation

    result = principles_ablation(train_episodes=40, max_tasks=12, workers=8)
    assert [row.name for row in result.rows] == ["expert (privileged priors)", "explorer", "explorer + principles"]
    assert result.principles > 0 and result.credited.episodes == 12
    assert result.paired_tasks > 0 and result.steps_ratio < 1.0


def test_a_student_evaluates_with_principles_in_its_prompt(model_dir, tmp_path, embedder, explored):
    from agentkd.eval.run import evaluate, parse_configs

    store = _fresh(tmp_path, embedder, mine_principles(explored[1]))
    results = evaluate(str(model_dir), parse_configs("greedy,greedy+principles"), splits=["valid_unseen"],
                       store=store, max_tasks=2, max_steps=2, max_new_tokens=6)
    plain, shown = results.configs
    assert "principles" not in plain.params and shown.params["principles"] == {"k": 3, "max_tokens": 200}
    played = list(store.iterate(evaluation=True))
    assert len(played) == 4
    with_principles = [t for t in played if "principles" in t.policy.params]
    assert len(with_principles) == 2 and all(shown_principles(t) for t in with_principles)
    assert not any(shown_principles(t) for t in played if t not in with_principles)
