"""Would prompt-lookup speculative decoding speed up a student's greedy replies? Both halves of the answer, measured.

    python benchmarks/prompt_lookup.py STUDENT STORE                 # the student's own stored episodes
    python benchmarks/prompt_lookup.py STUDENT STORE --rows 32 --cached 1500 --draft 4

Prompt lookup drafts the next tokens by finding the last few generated tokens earlier in the prompt
and proposing what followed them there; one forward pass then checks all drafts at once and keeps
the longest agreeing run (exact for greedy decoding). A household reply copies much of its history
("Thought: I saw a desklamp 2 on/in the dresser 1 ...\\nAction: go to dresser 1"), so drafts hit often.
It pays only if checking ``draft + 1`` tokens per row costs less than ``draft + 1`` times one token.

1. Acceptance: for every step of the student's episodes in STORE, the reply it actually wrote is
   replayed against its real prompt (the card's format), and the forward passes prompt lookup would
   need are counted (a pass yields its accepted drafts plus the model's own next token).
2. Cost: one forward pass of ``rows`` episodes over ``cached`` cached tokens each, with 1 new token
   per row and with ``draft + 1``, side by side (random cache contents: the cost does not depend on them).

Prints tokens per forward pass, the cost ratio, and the implied speed-up of the decode loop
(a batch also waits for its slowest row, which this leaves out, so the real figure is lower).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def _draft(seq: list[int], size: int, longest: int = 3) -> list[int]:
    """The ``size`` tokens that followed the latest earlier occurrence of the last n (3, 2, 1) tokens."""
    for n in range(min(longest, len(seq)), 0, -1):
        tail = seq[-n:]
        for i in range(len(seq) - n - 1, -1, -1):
            if seq[i:i + n] == tail:
                return seq[i + n:i + n + size]
    return []


def acceptance(student: str, store: str, size: int, max_episodes: int) -> tuple[int, int, int]:
    """(reply tokens, forward passes with prompt lookup, episodes) over the student's stored replies."""
    from transformers import AutoTokenizer

    from agentkd.distill.datasets import trajectory_messages
    from agentkd.models.generation import END_OF_TURN, render_chat
    from agentkd.models.student import PromptFormat, StudentCard
    from agentkd.store import ExperienceStore

    tokenizer = AutoTokenizer.from_pretrained(student)
    card = StudentCard.load(student)
    fmt = card.prompt if card else PromptFormat()
    end = [tokenizer.convert_tokens_to_ids(t) for t in END_OF_TURN if t in tokenizer.get_vocab()][:1]  # the turn's end
    tokens = passes = episodes = 0
    for traj in ExperienceStore(store).iterate():
        if episodes == max_episodes:
            break
        episodes += 1
        conversation = trajectory_messages(traj, fmt)
        for t, step in enumerate(traj.steps):
            seq = tokenizer.encode(render_chat(tokenizer, conversation[:2 + 2 * t]), add_special_tokens=False)
            reply = tokenizer.encode(step.raw_output, add_special_tokens=False) + end
            i = 0
            while i < len(reply):
                draft = _draft(seq, size)
                agreed = 0
                while agreed < len(draft) and i + agreed < len(reply) and draft[agreed] == reply[i + agreed]:
                    agreed += 1
                seq += reply[i:i + agreed + 1]
                i += agreed + 1
                passes += 1
            tokens += len(reply)
    return tokens, passes, episodes


def forward_seconds(engine: Any, rows: int, cached: int, new: int, repeats: int) -> float:
    """Seconds of one forward pass of ``rows`` rows with ``new`` tokens each over ``cached`` cached tokens.

    The pass runs as the replay engine's do: its model (with the engine's attention) over the engine's
    growing cache, whose buffers already have room for the new tokens (no copy of the cache per pass).
    """
    import torch

    from agentkd.replay.engine import _growing_cache

    model, config = engine.model, engine.model.config
    heads = getattr(config, "num_key_value_heads", config.num_attention_heads)
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    layers = [tuple(torch.randn(rows, heads, cached + new, dim, dtype=model.dtype) for _ in range(2))
              for _ in range(config.num_hidden_layers)]
    ids = torch.randint(100, config.vocab_size, (rows, new))
    mask = torch.ones(rows, cached + new, dtype=torch.long)
    positions = torch.arange(cached, cached + new).expand(rows, new)
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first pass warms up
            cache = _growing_cache(config, layers, cached)  # the same buffers again, holding `cached` tokens
            started = time.perf_counter()
            model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=new,
                  **{engine._cache_kw: cache})  # the engine's name for transformers' cache argument
            times.append(time.perf_counter() - started)
    return min(times[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("student")
    parser.add_argument("store", help="a store with the student's own episodes (an `agentkd eval --store`)")
    parser.add_argument("--draft", type=int, default=4, help="drafted tokens per pass")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--cached", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    tokens, passes, episodes = acceptance(args.student, args.store, args.draft, args.episodes)
    per_pass = tokens / passes
    print(f"acceptance: {episodes} episodes, {tokens} reply tokens in {passes} passes with {args.draft} drafted: "
          f"{per_pass:.2f} tokens per pass")
    from agentkd.replay.engine import ReplayEngine

    engine = ReplayEngine(args.student)
    one = forward_seconds(engine, args.rows, args.cached, 1, args.repeats)
    many = forward_seconds(engine, args.rows, args.cached, args.draft + 1, args.repeats)
    print(f"cost: {args.rows} rows over {args.cached} cached tokens: 1 new token {one * 1e3:.0f} ms, "
          f"{args.draft + 1} new tokens {many * 1e3:.0f} ms ({many / one:.2f}x)")
    print(f"implied decode speed-up: {per_pass * one / many:.2f}x (above 1: prompt lookup pays)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
