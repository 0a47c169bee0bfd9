"""One replay step late in long episodes: the prefill of many episodes' new tokens against long cached prompts.

    python benchmarks/long_prefill.py STUDENT                       # 32 episodes, ~1,200-token caches, 100 new tokens
    python benchmarks/long_prefill.py STUDENT --episodes 16 --profile
    python benchmarks/long_prefill.py STUDENT --reply 40              # and a greedy reply of up to 40 tokens

Late in a 50-step household episode every prompt is 1,000-2,000 tokens, and each step prefills only
the last reply and observation. Then what costs is moving the cached keys and values, not the
matmuls: stacking the episodes' caches into one batch, copying them into the cache's growing buffers,
and transformers' ``repeat_kv`` writing them once per query head for grouped-query attention. Prints
the step's seconds (and with ``--profile`` the top operators). With ``--reply N`` each episode then decodes
a greedy reply of up to N tokens, as a real step does (a household reply is 20-40 tokens): each decode
token attends over the whole cached prompt. Run it on two checkouts to compare them.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import random
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("student")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--past", type=int, default=1500, help="the longest cached prompt (each next: 20 fewer)")
    parser.add_argument("--new", type=int, default=100, help="new tokens per episode")
    parser.add_argument("--reply", type=int, default=1, help="greedy reply tokens per episode (at most)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    from agentkd.replay.engine import GenerationRequest, ReplayEngine

    engine = ReplayEngine(args.student)
    rng = random.Random(0)
    vocab = engine.tokenizer.vocab_size
    prompts = {e: [rng.randrange(100, vocab) for _ in range(args.past - 20 * e)] for e in range(args.episodes)}

    replies = []

    def step() -> float:
        started = time.perf_counter()
        out = engine.generate([GenerationRequest(key=e, prompt_ids=p, max_new_tokens=args.reply)
                               for e, p in prompts.items()])
        replies.append(sum(len(samples[0].token_ids) for samples in out) / len(out))
        return time.perf_counter() - started

    step()  # the caches
    times = []
    for _ in range(args.repeats):
        for p in prompts.values():
            p += [rng.randrange(100, vocab) for _ in range(args.new)]
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                times.append(step())
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
        else:
            times.append(step())
    cached = sum(len(p) for p in prompts.values()) - args.new * args.episodes
    print(f"{engine.name} ({engine.dtype}): {args.episodes} episodes, {cached / args.episodes:.0f} cached tokens each "
          f"on average, {args.new} new, replies of {sum(replies[1:]) / len(times):.1f} tokens on average: "
          f"{' '.join(f'{t:.2f}' for t in times)} s per step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
