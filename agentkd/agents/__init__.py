"""LangGraph agent builders: environment agents that record every step into a Trajectory."""

from .env_agent import BatchingPolicy, EpisodeState, build_env_agent, env_agent_graph, play_episode, run_episode
from .message_recorder import MessageAgentRecorder

__all__ = ["BatchingPolicy", "EpisodeState", "MessageAgentRecorder", "build_env_agent", "env_agent_graph",
           "play_episode", "run_episode"]
