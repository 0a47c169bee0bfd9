"""Environment agents as LangGraph graphs: recording, batching, extension by authors."""

from __future__ import annotations

import asyncio

from agentkd.agents import BatchingPolicy, build_env_agent, env_agent_graph, run_episode
from agentkd.policies.base import Decision, PolicyInput
from agentkd.policies.expert import ExpertPolicy
from agentkd.policies.prompt import build_messages
from agentkd.schema import PolicyInfo
from environments.household import HouseholdEnv, load_split


def test_expert_episode_is_recorded_step_by_step():
    task = load_split("valid_unseen")[0]
    agent = build_env_agent(HouseholdEnv(), ExpertPolicy())
    trajectory = asyncio.run(run_episode(agent, task))
    assert trajectory.success and trajectory.reward == 1.0
    assert [s.index for s in trajectory.steps] == list(range(trajectory.num_steps))
    first, last = trajectory.steps[0], trajectory.steps[-1]
    assert first.observation.startswith("-= Welcome to TextWorld, ALFRED! =-")
    assert first.thought and first.action in first.admissible_actions
    assert last.done and last.reward == 1.0
    for a, b in zip(trajectory.steps, trajectory.steps[1:], strict=False):
        assert b.observation == a.next_observation
    assert trajectory.policy.kind == "expert" and trajectory.task_type == task.task_type
    assert trajectory.finished_at is not None and trajectory.wall_time_s > 0


def test_same_task_policy_and_seed_give_the_same_trajectory_id():
    task = load_split("valid_unseen")[1]
    ids = {asyncio.run(run_episode(build_env_agent(HouseholdEnv(), ExpertPolicy()), task, seed=3)).trajectory_id
           for _ in range(2)}
    other = asyncio.run(run_episode(build_env_agent(HouseholdEnv(), ExpertPolicy()), task, seed=4)).trajectory_id
    assert len(ids) == 1 and other not in ids


class Babbler:
    """A policy whose output never parses: every step must be recorded as invalid, with its raw text."""

    info = PolicyInfo(kind="scripted", name="babbler")

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        return [Decision(action="", raw_output="blah " * 5, valid=False, error="no action found") for _ in inputs]


def test_unparseable_output_is_recorded_as_invalid_and_the_episode_goes_on_to_the_limit():
    task = load_split("valid_unseen")[2]
    trajectory = asyncio.run(run_episode(build_env_agent(HouseholdEnv(max_steps=6), Babbler(), max_steps=6), task,
                                         max_steps=6))
    assert trajectory.num_steps == 6 and not trajectory.success
    assert all(not s.valid and s.raw_output.startswith("blah") and s.next_observation == "Nothing happens."
               for s in trajectory.steps)
    assert trajectory.steps[0].info["error"] == "no action found"


def test_concurrent_episodes_share_batched_policy_calls():
    tasks = load_split("valid_seen")[:16]
    policy = BatchingPolicy(ExpertPolicy())

    async def main():
        return await asyncio.gather(*(run_episode(build_env_agent(HouseholdEnv(), policy), t) for t in tasks))

    trajectories = asyncio.run(main())
    assert all(t.success for t in trajectories)
    total_steps = sum(t.num_steps for t in trajectories)
    assert sum(policy.batches) == total_steps
    assert max(policy.batches) > 1 and len(policy.batches) < total_steps


def test_authors_can_add_nodes_without_touching_the_recorder():
    """A guard node between policy and env rewrites one action; the recorder still sees every step."""
    task = load_split("valid_unseen")[0]
    env = HouseholdEnv()
    graph = env_agent_graph(env, ExpertPolicy())
    seen = []

    def guard(state):
        seen.append(state["decision"].action)
        return {}

    graph.add_node("guard", guard)
    # Re-route policy -> guard -> env (edges added by the builder are replaced by rebuilding the branch).
    graph.edges.discard(("policy", "env"))
    graph.add_edge("policy", "guard")
    graph.add_edge("guard", "env")
    trajectory = asyncio.run(run_episode(graph.compile(), task))
    assert trajectory.success and seen == [s.action for s in trajectory.steps]


def test_first_thought_prefix_starts_the_recorded_first_step(model_dir):
    """A local transformers model as a LangChain chat teacher: its CoT plan's first paragraph is prefilled
    into its first agent turn, so the recorded first step starts with it; later steps get no prefix."""
    from agentkd.policies import ChatModelPolicy, LocalChatModel

    task = load_split("valid_unseen")[4]
    chat = LocalChatModel(model=str(model_dir), max_tokens=12)
    policy = ChatModelPolicy(chat, first_thought=True)
    env = HouseholdEnv(max_steps=3)
    first_obs = env.reset(task)
    first_input = PolicyInput(task=task, observation=first_obs, admissible_actions=env.admissible_actions())
    prefix, plan_prompt_tokens, _, _ = policy.first_thoughts([first_input])[0]
    assert prefix and prefix.startswith("Thought: ")
    expected = prefix.removeprefix("Thought: ")
    trajectory = asyncio.run(run_episode(build_env_agent(HouseholdEnv(max_steps=3), policy, max_steps=3), task,
                                         max_steps=3))
    first = trajectory.steps[0]
    assert first.raw_output.startswith(prefix)
    assert first.thought.startswith(expected)
    assert not trajectory.steps[1].raw_output.startswith(prefix)
    # The step's prompt tokens are the prefilled agent turn's plus the planning call's.
    prefilled = build_messages(first_input, policy.max_history) + [{"role": "assistant", "content": prefix}]
    rendered = chat.generator.render(prefilled, continue_final_message=True)
    turn_tokens = len(chat.generator.tokenizer(rendered, add_special_tokens=False)["input_ids"])
    assert plan_prompt_tokens > 0 and first.prompt_tokens == turn_tokens + plan_prompt_tokens
    assert trajectory.policy.kind == "chat_model"


def test_a_local_hf_student_plays_batched_and_garbage_is_recorded_not_raised(model_dir):
    from agentkd.policies import HFPolicy

    tasks = load_split("valid_unseen")[:4]
    policy = BatchingPolicy(HFPolicy(str(model_dir), max_new_tokens=8))

    async def main():
        return await asyncio.gather(*(run_episode(build_env_agent(HouseholdEnv(max_steps=3), policy, max_steps=3),
                                                  t, max_steps=3) for t in tasks))

    trajectories = asyncio.run(main())
    assert all(t.num_steps == 3 for t in trajectories)
    assert max(policy.batches) > 1
    for step in (s for t in trajectories for s in t.steps):
        assert step.raw_output and step.completion_tokens > 0
        assert step.valid == (step.action in step.admissible_actions)


def test_trajectory_cost_follows_the_configured_price_table(model_dir):
    from agentkd.policies import ChatModelPolicy, LocalChatModel

    policy = ChatModelPolicy(LocalChatModel(model=str(model_dir), max_tokens=6), name="tiny-teacher",
                             prices={"tiny-teacher": (2.0, 10.0)})
    task = load_split("valid_unseen")[5]
    trajectory = asyncio.run(run_episode(build_env_agent(HouseholdEnv(max_steps=2), policy, max_steps=2), task,
                                         max_steps=2))
    expected = (trajectory.prompt_tokens * 2.0 + trajectory.completion_tokens * 10.0) / 1e6
    assert trajectory.prompt_tokens > 0 and abs(trajectory.cost_usd - expected) < 1e-12
