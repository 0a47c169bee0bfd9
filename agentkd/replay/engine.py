"""Batched generation for many running episodes, with a prefix cache per episode.

:class:`ReplayEngine` answers one call per environment step for *all* running episodes:

1. **Prefix reuse.** Each episode keeps the key/value cache of its last prompt. A student's prompt
   at step *t+1* starts with its prompt at step *t* (one conversation per episode), so only the
   new tokens — the last reply, the new observation — are prefilled. The match is on tokens, never
   on trust: whatever differs from the cached prefix is recomputed, so a reused cache is always
   exactly the cache of the current prompt.
2. **One batched prefill.** The new tokens of all episodes go through the model in one forward
   pass: cached prefixes are left-padded to a common length, new tokens right-aligned, and a 2-D
   attention mask (with holes) plus explicit position ids keep every row exact.
3. **Shared prompt for samples.** For ``n`` samples the prompt is prefilled once, and the samples
   decode against that one copy of its cache (:mod:`agentkd.replay.shared_prefix`).
4. **One decode loop** for every row: one token per forward pass, finished rows masked out, until
   every row has stopped or hit ``max_new_tokens``. Samples of a prompt that have drawn the same
   tokens so far are one row of that pass (a fine-tuned student's samples mostly agree).

Imports torch and transformers only. Works on CPU and CUDA (bf16 + SDPA by default on GPUs).
"""

from __future__ import annotations

import inspect
import random
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentkd.models.student import trim_cpu_heap
from agentkd.replay.shared_prefix import SharedPrefix, install, shared_prefix

__all__ = ["GenerationRequest", "ReplayEngine", "Sample"]


#: Candidates ranked before nucleus sampling looks further (see ReplayEngine._pick).
_NUCLEUS_CANDIDATES = 64


@dataclass
class GenerationRequest:
    """One episode's prompt and how to sample from it."""

    key: Hashable  # the episode (its cached prefix is looked up under this key)
    prompt_ids: list[int]
    n: int = 1  # samples
    temperature: float = 0.0  # 0: greedy (then n > 1 gives n identical samples: use n=1)
    top_p: float = 1.0
    max_new_tokens: int = 64
    constraint: Any = None  # an agentkd.replay.constrained.ActionConstraint: the action must be admissible
    # Seeds this request's samples: the same seed draws the same samples whatever else shares the batch (an
    # evaluation's result per task then does not depend on the number of workers or on a resumed run).
    # None: the engine's generator.
    seed: Hashable | None = None


@dataclass
class Sample:
    """One generated reply."""

    token_ids: list[int]  # generated tokens, the stop token included when there was one
    text: str  # decoded reply without special tokens
    logprob: float  # sum of the tokens' log-probabilities under the model (temperature 1)
    finish_reason: str  # "stop" or "length"

    @property
    def mean_logprob(self) -> float:
        return self.logprob / max(1, len(self.token_ids))


@dataclass
class _Prefix:
    """A cached prompt: its tokens and, per layer, keys and values of shape (heads, len, dim)."""

    ids: list[int]
    kv: list[tuple[Any, Any]]


@dataclass
class EngineStats:
    """Token counts since the engine was built (or since :meth:`ReplayEngine.reset_stats`)."""

    calls: int = 0
    prompt_tokens: int = 0  # tokens of all prompts
    prefilled_tokens: int = 0  # of those, the ones computed (the rest came from the prefix cache)
    generated_tokens: int = 0
    seconds: float = 0.0
    rows: list[int] = field(default_factory=list)  # decode rows per call


class _Decoding:
    """Per sample of one decode loop: its tokens so far (-1 once finished), sum of log-probs, stopped, done."""

    def __init__(self, rows: int, device: Any, stop_token_ids: list[int]) -> None:
        import torch

        self.stop = torch.tensor(stop_token_ids or [-1], device=device)
        self.tokens: list[Any] = []  # one (rows,) tensor per step
        self.logprob = torch.zeros(rows, dtype=torch.float32, device=device)
        self.stopped = torch.zeros(rows, dtype=torch.bool, device=device)
        self.done = torch.zeros(rows, dtype=torch.bool, device=device)
        self.step = 0

    def results(self) -> list[tuple[list[int], float, bool]]:
        import torch

        table = torch.stack(self.tokens, dim=1).tolist()
        return [([t for t in row if t >= 0], float(lp), bool(st))
                for row, lp, st in zip(table, self.logprob.tolist(), self.stopped.tolist(), strict=True)]


def _growing_cache(model_config: Any, layers: list[tuple[Any, Any]] | None, length: int = 0) -> Any:
    """A DynamicCache whose layers append into preallocated buffers.

    transformers' DynamicLayer concatenates on every update, copying the whole cache once per
    generated token; for many rows with long prompts that copy dominates decoding on CPU.
    ``layers``: per layer, key and value buffers whose first ``length`` positions hold the cache so far;
    they are adopted as they are (the rest is room to grow), not copied.
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.buffers, self.length = None, 0
            need = self.length + key_states.shape[-2]
            if self.buffers is None or need > self.buffers[0].shape[-2]:
                # Room for a reply first (a prompt's cache is large: doubling it would double the memory),
                # then doubling: amortised O(1) copies per token.
                capacity = need + 256 if self.buffers is None else 2 * need
                grown = []
                for old, new in ((self.keys, key_states), (self.values, value_states)):
                    buffer = new.new_empty((*new.shape[:2], capacity, new.shape[-1]))
                    if self.length:
                        buffer[..., : self.length, :] = old
                    grown.append(buffer)
                self.buffers = tuple(grown)
            keys, values = self.buffers
            keys[..., self.length : need, :] = key_states
            values[..., self.length : need, :] = value_states
            self.length = need
            self.keys, self.values = keys[..., :need, :], values[..., :need, :]
            return self.keys, self.values

        def batch_select_indices(self, indices: Any) -> None:
            if self.is_initialized and self.length:
                self.buffers = tuple(b[indices, ...] for b in self.buffers)
                self.keys, self.values = (b[..., : self.length, :] for b in self.buffers)

    cache = DynamicCache(config=model_config)
    if all(type(layer) is DynamicLayer for layer in cache.layers):  # full attention everywhere
        cache.layers = [GrowingLayer() for _ in cache.layers]
    for layer, (keys, values) in zip(cache.layers, layers or [], strict=False):
        if isinstance(layer, GrowingLayer):
            layer.lazy_initialization(keys, values)
            layer.buffers, layer.length = (keys, values), length
            layer.keys, layer.values = keys[..., :length, :], values[..., :length, :]
        else:
            layer.update(keys[..., :length, :], values[..., :length, :])
    return cache


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the usual case (the new prompt extends the cached one), compared in C
        return n
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class ReplayEngine:
    """Generates replies for many episodes at once, reusing each episode's cached prompt prefix.

    Args:
        model: a causal LM (loaded) or anything :func:`agentkd.models.student.load_student` loads.
        tokenizer: needed with a loaded model.
        device, dtype: default CUDA + bf16 when there is a GPU; on CPU bf16 where it is native (AMX), else float32.
        max_cached: episodes whose prefix is kept (least recently used ones are dropped); each holds
            its prompt's keys and values (2 KB per token for the tiny student, 12 KB at 0.5B size).
        max_rows: most sequences decoded in one forward pass; larger calls run in chunks.
        seed: seeds sampling: with the request's own seed where it has one, else one generator per engine
            (repeatable for the same batches in the same order).
        shared_attention: decode samples against one copy of their prompt's cache
            (:mod:`agentkd.replay.shared_prefix`); off, the prompt rows are repeated per sample.
        dedup_samples: with shared attention, samples that have drawn the same tokens so far are decoded as one
            row (:meth:`_decode_samples`); off, one row per sample (to measure the difference).
        trim_heap: return the heap's free pages to the system after a call
            (:func:`agentkd.models.student.trim_cpu_heap`), at most once per :attr:`TRIM_EVERY_S` seconds of
            generation (a trim walks the heap: after every millisecond call it would cost more than the call);
            default: on the CPU.
    """

    #: Seconds of generation between two heap trims (an evaluation's calls take seconds each: one per call).
    TRIM_EVERY_S = 1.0

    def __init__(self, model: Any, tokenizer: Any = None, *, device: Any = None, dtype: Any = None,
                 allow_download: bool = False, max_cached: int = 1024, max_rows: int = 1024, seed: int = 0,
                 shared_attention: bool = True, dedup_samples: bool = True, trim_heap: bool | None = None) -> None:
        import torch

        from agentkd.models.generation import load_for_generation

        # name, model, tokenizer, device, dtype, card, stop_token_ids, pad_token_id, context_length
        self.__dict__.update(vars(load_for_generation(model, tokenizer, device=device, dtype=dtype,
                                                      allow_download=allow_download, owner="ReplayEngine")))
        # transformers renamed the cache argument (past_key_values -> cache) during 5.x; the cache object
        # is updated in place either way.
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        # Only the last position's logits are needed after a prefill: a 49k-token vocabulary's logits for
        # every new token would cost more time and memory than the prefill's attention.
        self._last_logits = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.shared_attention = install(self.model) if shared_attention else False
        self.dedup_samples = dedup_samples
        self.max_cached = max_cached
        self.max_rows = max_rows
        self.seed = seed
        self.trim_heap = self.device.type == "cpu" if trim_heap is None else trim_heap
        self._untrimmed_s = 0.0  # generation time since the last trim
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._prefixes: OrderedDict[Hashable, _Prefix] = OrderedDict()
        self.stats = EngineStats()

    # ---- public -------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def forget(self, key: Hashable) -> None:
        """Drop an episode's cached prefix (e.g. when it ends)."""
        self._prefixes.pop(key, None)

    def clear(self) -> None:
        """Drop every cached prefix (e.g. between evaluation runs)."""
        self._prefixes.clear()

    def reset_stats(self) -> None:
        self.stats = EngineStats()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Sample]]:
        """``request.n`` samples for every request, all requests batched; results in request order."""
        started = time.perf_counter()
        results: list[list[Sample]] = []
        chunk: list[GenerationRequest] = []
        rows = 0
        for request in requests:  # chunks of at most max_rows decode rows (one request is never split)
            if chunk and rows + request.n > self.max_rows:
                results += self._generate(chunk)
                chunk, rows = [], 0
            chunk.append(request)
            rows += request.n
        if chunk:
            results += self._generate(chunk)
        self._untrimmed_s += time.perf_counter() - started
        if self.trim_heap and self._untrimmed_s >= self.TRIM_EVERY_S:  # this call's tensors are freed by now
            trim_cpu_heap()
            self._untrimmed_s = 0.0
        return results

    # ---- internals ----------------------------------------------------------------------------

    def _fit(self, request: GenerationRequest) -> tuple[list[int], int]:
        """The prompt cut to fit the context with room for the reply, and the reply budget."""
        max_new = max(1, min(request.max_new_tokens, self.context_length // 2))
        ids = list(request.prompt_ids)
        if not ids:
            ids = [self.pad_token_id]
        limit = self.context_length - max_new
        if len(ids) > limit:  # keep the end: the current observation matters most
            ids = ids[-limit:]
        return ids, max_new

    def _generate(self, requests: Sequence[GenerationRequest]) -> list[list[Sample]]:
        import torch

        started = time.perf_counter()
        prompts, budgets, reused = [], [], []
        for request in requests:
            ids, max_new = self._fit(request)
            prefix = self._prefixes.get(request.key)
            keep = 0
            if prefix is not None:
                keep = min(_common_prefix(prefix.ids, ids), len(ids) - 1)  # always prefill >= 1 token
            prompts.append(ids)
            budgets.append(max_new)
            reused.append((prefix, keep))

        # ---- batched prefill: cached prefixes left-padded, new tokens right-aligned ----
        batch = len(requests)
        past_len = max(keep for _, keep in reused)
        width = max(len(ids) - keep for ids, (_, keep) in zip(prompts, reused, strict=True))
        device = self.device
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((batch, past_len + width), dtype=torch.long)
        positions = torch.zeros((batch, width), dtype=torch.long)
        for i, (ids, (_, keep)) in enumerate(zip(prompts, reused, strict=True)):
            new = ids[keep:]
            input_ids[i, width - len(new):] = torch.tensor(new, dtype=torch.long)
            mask[i, past_len - keep:past_len] = 1
            mask[i, past_len + width - len(new):] = 1
            positions[i, width - len(new):] = torch.arange(keep, keep + len(new))
        # The prompts' caches go straight into buffers with room for the new tokens and a reply.
        room = width + max(budgets) + 1
        cache = _growing_cache(self.model.config, self._stack_prefixes(reused, past_len, room) if past_len else None,
                               past_len)
        for request in requests:  # read (and emptied by the stacking): _save_prefixes puts the new ones back
            self._prefixes.pop(request.key, None)
        with torch.inference_mode():
            out = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                             position_ids=positions.to(device), use_cache=True, **{self._cache_kw: cache},
                             **self._last_logits)
        self._save_prefixes(requests, prompts, mask, cache)
        logits = out.logits[:, -1, :].float()

        # ---- samples share their prompt's prefill; decode all rows together ----
        rows = [i for i, request in enumerate(requests) for _ in range(max(1, request.n))]
        index = torch.tensor(rows, device=device)
        temperature = torch.tensor([requests[i].temperature for i in rows], device=device, dtype=torch.float32)
        top_p = torch.tensor([requests[i].top_p for i in rows], device=device, dtype=torch.float32)
        budget = torch.tensor([budgets[i] for i in rows], device=device)
        cursors = [requests[i].constraint.cursor() if requests[i].constraint is not None else None for i in rows]
        draws: list[random.Random | None] = []  # a seeded request's sample j: its own stream
        for request in requests:
            draws += [random.Random(f"{self.seed}:{request.seed}:{j}") if request.seed is not None else None
                      for j in range(max(1, request.n))]
        sampling = (temperature, top_p, budget, cursors if any(cursors) else None, draws if any(draws) else None)
        samples = {max(1, request.n) for request in requests}
        if self.shared_attention and len(samples) == 1 and samples != {1}:
            # One copy of each prompt's cache; the samples attend to it through the shared-prefix attention.
            shared = SharedPrefix(layers=[(layer.keys, layer.values) for layer in cache.layers],
                                  prefix_mask=mask.to(device).bool(), samples=samples.pop())
            prompt_len = torch.tensor([len(ids) for ids in prompts], device=device)
            generated = self._decode_samples(logits, index, shared, prompt_len, *sampling)
        else:
            logits = logits[index]
            if len(rows) == batch:  # one sample per prompt: the prefill's cache as it is, not a copy
                mask = mask.to(device)
            else:  # repeat each prompt's rows once per sample
                cache.batch_select_indices(index)
                mask = mask.to(device)[index]
            next_pos = torch.tensor([len(prompts[i]) for i in rows], device=device)
            generated = self._decode(logits, cache, mask, next_pos, *sampling)

        results: list[list[Sample]] = [[] for _ in requests]
        for row, (tokens, logprob, stopped) in zip(rows, generated, strict=True):
            text = self.tokenizer.decode([t for t in tokens if t not in self.stop_token_ids], skip_special_tokens=True)
            results[row].append(Sample(token_ids=tokens, text=text, logprob=logprob,
                                       finish_reason="stop" if stopped else "length"))

        s = self.stats
        s.calls += 1
        s.prompt_tokens += sum(len(ids) for ids in prompts)
        s.prefilled_tokens += sum(len(ids) - keep for ids, (_, keep) in zip(prompts, reused, strict=True))
        s.generated_tokens += sum(len(tokens) for tokens, _, _ in generated)
        s.seconds += time.perf_counter() - started
        s.rows.append(len(rows))
        return results

    def _decode(self, logits: Any, cache: Any, mask: Any, next_pos: Any, temperature: Any, top_p: Any,
                budget: Any, cursors: list[Any] | None = None,
                draws: list[random.Random | None] | None = None) -> list[tuple[list[int], float, bool]]:
        """Sample until every row stopped or used its budget; (tokens, sum of log-probs, stopped) per row.

        ``mask`` covers what each row sees in ``cache``, which holds each row's prompt; finished rows stay in
        the batch, fed a masked pad (taking them out would copy every other row's prompt cache).
        ``cursors`` (one per row, or None) restrict a row's next token (constrained action decoding).
        ``draws`` (one per row, or None) are the seeded rows' random streams (see :meth:`_pick`).
        """
        import torch

        state = _Decoding(logits.shape[0], logits.device, self.stop_token_ids)
        while True:
            live = (~state.done).nonzero().squeeze(1)
            token = self._advance(state, logits[live], None, live, temperature, top_p, budget, cursors, draws)
            if bool(state.done.all()):
                return state.results()
            feed = torch.full_like(state.done, self.pad_token_id, dtype=torch.long)
            feed[live] = token
            mask = torch.cat([mask, (~state.done).long().unsqueeze(1)], dim=1)
            with torch.inference_mode():
                out = self.model(input_ids=feed.unsqueeze(1), attention_mask=mask,
                                 position_ids=next_pos.unsqueeze(1), use_cache=True, **{self._cache_kw: cache})
            logits = out.logits[:, -1, :].float()
            next_pos = next_pos + (~state.done).long()

    def _decode_samples(self, logits: Any, owner: Any, shared: SharedPrefix, prompt_len: Any, temperature: Any,
                        top_p: Any, budget: Any, cursors: list[Any] | None = None,
                        draws: list[random.Random | None] | None = None) -> list[tuple[list[int], float, bool]]:
        """:meth:`_decode` for the samples of prompts whose caches are shared (``shared``): one row of the
        forward pass per distinct reply so far.

        ``logits``: per prompt, after its prefill; ``owner``: each sample's prompt. Samples of a prompt that
        have drawn the same tokens so far have the same next-token distribution, so they are one row of the
        forward pass, and each draws its own next token from it: the samples are the ones k rows would give
        (with ``dedup_samples`` off, each sample is its own row). A row splits when its samples draw different
        tokens and leaves when they have all finished. A fine-tuned student's samples mostly agree.
        """
        import torch

        device = logits.device
        state = _Decoding(owner.shape[0], device, self.stop_token_ids)
        owner = owner.clone()  # sample -> its row of `logits`
        episode = torch.arange(logits.shape[0], device=device)  # row of the forward pass -> its prompt
        episodes, vocab = len(episode), logits.shape[-1]
        cache = _growing_cache(self.model.config, None)  # the replies' keys and values only
        while True:
            live = (~state.done).nonzero().squeeze(1)
            token = self._advance(state, logits, owner[live], live, temperature, top_p, budget, cursors, draws)
            if bool(state.done.all()):
                return state.results()
            going = ~state.done[live]
            samples, token = live[going], token[going]
            parent = owner[samples]
            if self.dedup_samples:  # one row per (row, token) drawn; sorted, so rows stay grouped by prompt
                rows, inverse = torch.unique(parent * vocab + token, return_inverse=True)
                parent, token = rows // vocab, rows % vocab
                owner[samples] = inverse
            else:
                owner[samples] = torch.arange(len(samples), device=device)
            if len(parent) != len(episode) or not torch.equal(parent, torch.arange(len(parent), device=device)):
                cache.batch_select_indices(parent)
            episode = episode[parent]
            shared.place(episode, episodes)
            shared.reply_mask = torch.ones((len(parent), state.step), dtype=torch.bool, device=device)
            position = prompt_len[episode] + state.step - 1  # of the token fed: the reply's step-th
            with torch.inference_mode(), shared_prefix(shared):
                out = self.model(input_ids=token.unsqueeze(1), position_ids=position.unsqueeze(1), use_cache=True,
                                 **{self._cache_kw: cache})
            logits = out.logits[:, -1, :].float()

    def _advance(self, state: _Decoding, logits: Any, owner: Any, live: Any, temperature: Any, top_p: Any,
                 budget: Any, cursors: list[Any] | None, draws: list[random.Random | None] | None) -> Any:
        """One token for each of the samples ``live``, recorded in ``state``; returns the tokens.

        ``logits`` has a row per distinct history and ``owner`` says whose each live sample is (None: a row per
        live sample). Samples of one row share its request (temperature, top_p, constraint) and their
        cursors are in the same state, so a row is constrained and ranked once: only the draw is the sample's.
        """
        import torch

        rows = live.tolist()
        first = live if owner is None else torch.empty(len(logits), dtype=torch.long, device=live.device).scatter_(
            0, owner, live)  # a sample of each row (any: they agree on all but the draw)
        if cursors is not None:
            logits = self._constrain(logits, [cursors[i] for i in first.tolist()])
        token, token_logprob = self._pick(logits, temperature[first], top_p[first],
                                          [draws[i] for i in rows] if draws is not None else None, owner)
        if cursors is not None:
            for i, t in zip(rows, token.tolist(), strict=True):
                if cursors[i] is not None:
                    cursors[i].advance(t)
        state.step += 1
        recorded = torch.full_like(state.logprob, -1, dtype=torch.long)
        recorded[live] = token
        state.tokens.append(recorded)
        state.logprob[live] += token_logprob
        hit = torch.isin(token, state.stop)
        state.stopped[live[hit]] = True
        state.done[live[hit | (state.step >= budget[live])]] = True
        return token

    def _constrain(self, logits: Any, cursors: list[Any]) -> Any:
        """Logits with every token a row's cursor does not allow set to -inf (a dead end may only stop)."""
        import torch

        limited = [(i, c.allowed()) for i, c in enumerate(cursors) if c is not None]
        limited = [(i, allowed or self.stop_token_ids[:1]) for i, allowed in limited if allowed is not None]
        if not limited:
            return logits
        logits = logits.clone()
        for i, allowed in limited:
            keep = torch.tensor(allowed, device=logits.device)
            row = torch.full_like(logits[i], float("-inf"))
            row[keep] = logits[i, keep]
            logits[i] = row
        return logits

    def _pick(self, logits: Any, temperature: Any, top_p: Any, draws: list[random.Random | None] | None = None,
              owner: Any = None) -> tuple[Any, Any]:
        """Next token per sample (greedy where temperature is 0, else temperature + nucleus sampling).

        ``logits``, ``temperature`` and ``top_p`` are per row; ``owner`` gives each sample's row (None: one
        sample per row). The ranking is done once per row; each sample takes one uniform number per token,
        from its own stream in ``draws`` where it has one (a seeded request), else from the engine's
        generator, and picks by the nucleus's cumulative mass.
        """
        import torch

        rows = torch.arange(len(logits), device=logits.device) if owner is None else owner
        logprobs = torch.log_softmax(logits, dim=-1)
        greedy = logits.argmax(dim=-1)
        sampling = temperature > 0
        if not bool(sampling.any()):
            token = greedy[rows]
            return token, logprobs[rows, token]
        scaled = logits / temperature.clamp(min=1e-5).unsqueeze(1)
        probs = torch.softmax(scaled, dim=-1)
        # The nucleus almost always lies in the first few ranks: sort only the top candidates (sorting the
        # whole 49k vocabulary of every row was a third of a self-consistency step), unless their mass
        # falls short of top_p, then everything. The kept set, and so the distribution, is the same.
        sorted_probs, order = probs.topk(min(_NUCLEUS_CANDIDATES, probs.shape[-1]), dim=-1)
        if bool((sorted_probs.sum(dim=-1) < top_p).any()):
            sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the tokens ranked above each one
        sorted_probs = sorted_probs.masked_fill(before >= top_p.unsqueeze(1), 0.0)
        mass, order = sorted_probs.cumsum(dim=-1)[rows], order[rows]
        uniform = torch.rand(len(rows), generator=self.generator, device=mass.device)
        if draws is not None:
            seeded = [i for i, draw in enumerate(draws) if draw is not None]
            uniform[seeded] = torch.tensor([draws[i].random() for i in seeded], device=uniform.device)
        # The first rank whose cumulative mass exceeds u x the nucleus's mass (ranks left out hold no mass).
        choice = torch.searchsorted(mass, (uniform * mass[:, -1]).unsqueeze(1), right=True)
        choice = choice.clamp(max=mass.shape[1] - 1).squeeze(1)
        sampled = order.gather(1, choice.unsqueeze(1)).squeeze(1)
        token = torch.where(sampling[rows], sampled, greedy[rows])
        return token, logprobs[rows, token]

    def _stack_prefixes(self, reused: list[tuple[_Prefix | None, int]], past_len: int,
                        room: int = 0) -> list[tuple[Any, Any]]:
        """Per layer, (batch, heads, past_len + room, dim) keys and values: each row's kept prefix, left-padded
        with zeros (masked, but finite), in the first ``past_len`` positions; the ``room`` after them is unset.

        Each copied layer is released from its cached prefix at once (the prefix is replaced after the
        prefill anyway), so the old prefixes and the stacked batch are not all held at the same time.
        """
        import torch

        template = next(prefix for prefix, keep in reused if prefix is not None and keep)
        (heads, _, dim), (v_heads, _, v_dim) = (t.shape for t in template.kv[0])
        dtype, device = template.kv[0][0].dtype, template.kv[0][0].device
        layers = []
        for layer in range(len(template.kv)):
            keys = torch.empty((len(reused), heads, past_len + room, dim), dtype=dtype, device=device)
            values = torch.empty((len(reused), v_heads, past_len + room, v_dim), dtype=dtype, device=device)
            for i, (prefix, keep) in enumerate(reused):
                keys[i, :, : past_len - keep] = 0
                values[i, :, : past_len - keep] = 0
                if prefix is not None and keep:
                    k, v = prefix.kv[layer]
                    keys[i, :, past_len - keep : past_len] = k[:, :keep]
                    values[i, :, past_len - keep : past_len] = v[:, :keep]
            layers.append((keys, values))
            for prefix, _ in reused:
                if prefix is not None:
                    prefix.kv[layer] = None  # type: ignore[call-overload]
        return layers

    def _save_prefixes(self, requests: Sequence[GenerationRequest], prompts: list[list[int]], mask: Any,
                       cache: Any) -> None:
        """Keep each prompt's keys and values (its unmasked positions) for the episode's next step."""
        for i, (request, ids) in enumerate(zip(requests, prompts, strict=True)):
            where = mask[i].nonzero().squeeze(1).to(self.device)
            kv = [(layer.keys[i].index_select(1, where), layer.values[i].index_select(1, where))
                  for layer in cache.layers]
            self._prefixes[request.key] = _Prefix(ids=list(ids), kv=kv)
            self._prefixes.move_to_end(request.key)
        while len(self._prefixes) > self.max_cached:
            self._prefixes.popitem(last=False)
