"""An ordinary LangGraph message agent (LangChain's create_agent, a LangGraph graph, with two real tools)
recorded into a real Chroma store, and its episodes turned into tool-calling SFT conversations.

The chat model is LangChain's fake chat model replaying scripted turns, because this test is about the
recorder: what the graph streams (tool calls, tool answers, the final answer) must land in the records."""

from __future__ import annotations

import json

import pytest

from agentkd.agents.message_recorder import FINAL_ANSWER, MessageAgentRecorder
from agentkd.distill.tool_calls import tool_call_conversations
from agentkd.store import ExperienceStore

agents = pytest.importorskip("langchain.agents")  # LangChain's create_agent: the prebuilt ReAct loop
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402

CAPITALS = {"france": "Paris is the capital of France.", "peru": "Lima is the capital of Peru."}


@tool
def search(query: str) -> str:
    """Look a fact up in the encyclopedia."""
    return next((text for key, text in CAPITALS.items() if key in query.lower()), "no result")


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    return str(eval(expression, {"__builtins__": {}}))  # noqa: S307 - digits and operators from the test script


class ScriptedModel(GenericFakeChatModel):
    def bind_tools(self, tools, **kwargs):  # the script already holds the tool calls
        return self


def _script() -> list[AIMessage]:
    return [
        AIMessage("I look the capital up.", tool_calls=[{"name": "search", "args": {"query": "capital of France"},
                                                          "id": "c1"}],
                  usage_metadata={"input_tokens": 40, "output_tokens": 12, "total_tokens": 52}),
        AIMessage("Two checks at once.", tool_calls=[
            {"name": "search", "args": {"query": "Peru"}, "id": "c2"},
            {"name": "calculator", "args": {"expression": "6*7"}, "id": "c3"}]),
        AIMessage("Paris"),
    ]


def test_a_react_agent_is_recorded_step_by_step_and_becomes_tool_calling_data(tmp_path):
    agent = agents.create_agent(ScriptedModel(messages=iter(_script())), [search, calculator])
    store = ExperienceStore(tmp_path / "store")
    recorder = MessageAgentRecorder(agent, tools=[search, calculator], name="capitals-agent", store=store,
                                    judge=lambda answer: answer.strip() == "Paris")
    traj = recorder.run("What is the capital of France?", split="valid")

    assert traj.success and traj.reward == 1.0 and traj.metadata["judged"]
    assert [json.loads(s.action) if s.action != FINAL_ANSWER else s.action for s in traj.steps] == [
        {"name": "search", "args": {"query": "capital of France"}},
        [{"name": "search", "args": {"query": "Peru"}}, {"name": "calculator", "args": {"expression": "6*7"}}],
        FINAL_ANSWER]
    first, second, final = traj.steps
    assert first.observation == "What is the capital of France?" and first.thought == "I look the capital up."
    assert first.next_observation == "search: Paris is the capital of France." and first.prompt_tokens == 40
    assert second.observation == first.next_observation
    assert second.next_observation == "search: Lima is the capital of Peru.\ncalculator: 42"
    assert final.done and final.info["answer"] == "Paris" and final.reward == 1.0
    assert store.get(traj.trajectory_id) == traj and store.count(env="agent", success=True) == 1

    again = MessageAgentRecorder(
        agents.create_agent(ScriptedModel(messages=iter(_script())), [search, calculator]),
        tools=[search, calculator], name="capitals-agent", store=store).run("What is the capital of France?",
                                                                           split="valid")
    assert again.trajectory_id == traj.trajectory_id and store.count() == 1  # same goal and agent: upserted
    assert not again.success and not again.metadata["judged"]  # no judge: unjudged, never counted a success

    rows = tool_call_conversations([traj, again])
    assert len(rows) == 1  # the unjudged run is not a success
    messages = rows[0]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["function"] == {"name": "search", "arguments": {"query": "capital of France"}}
    assert messages[5] == {"role": "tool", "name": "calculator", "tool_call_id": "c3", "content": "42"}
    assert messages[-1] == {"role": "assistant", "content": "Paris"}
    assert [t["function"]["name"] for t in rows[0]["tools"]] == ["search", "calculator"]
    assert rows[0]["tools"][0]["function"]["parameters"]["properties"]["query"]["type"] == "string"


def test_an_agent_that_never_answers_is_recorded_as_unfinished(tmp_path):
    looping = [AIMessage("again", tool_calls=[{"name": "search", "args": {"query": "x"}, "id": f"c{i}"}])
               for i in range(10)]
    agent = agents.create_agent(ScriptedModel(messages=iter(looping)), [search])
    traj = MessageAgentRecorder(agent, tools=[search], judge=lambda answer: True, max_steps=3).run("Find x.")
    assert 1 <= traj.num_steps <= 3 and not any(step.done for step in traj.steps)
    assert not traj.success and traj.metadata["stopped"] == "step limit (3 model turns)"
