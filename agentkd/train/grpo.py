"""Stage 3: GRPO with multi-turn rollouts in the environment, on TRL's ``GRPOTrainer``.

**Rollout.** Each prompt is the first turn of a task (:func:`agentkd.distill.datasets.grpo_prompts`;
TRL's sampler already repeats every prompt ``num_generations`` times, and each copy is its own
episode in its own environment). :class:`MultiTurnRollout` plays all episodes of a batch
together, step-synchronously: one batched, left-padded ``generate`` per turn for the episodes
still running; each reply is parsed (:func:`~agentkd.policies.prompt.parse_output`) against the
admissible actions and stepped in the environment — an unparseable or inadmissible reply steps a
no-op and counts as invalid, as in replay. An episode ends when the environment says done, after
``max_turns`` replies, or when the next turn would not fit ``max_completion_length``.

**One sequence per episode.** The student's prompt format (whole history, no admissible list)
makes an episode one growing conversation, so a rollout is ``prompt_ids`` (system + first user
turn + assistant header) followed by a completion that alternates what the model sampled and
what the environment said::

    model (env_mask 1)        <reply 0><|im_end|>
    environment (env_mask 0)  \\n<|im_start|>user\\nObservation: ...<|im_end|>\\n<|im_start|>assistant\\n
    model (env_mask 1)        <reply 1><|im_end|>
    ...

Model tokens are kept exactly as sampled (never decoded and re-encoded) and every turn is
generated from exactly the tokens the loss later scores. The environment tokens are what the
chat template puts between the end of one reply's content and the start of the next: rendered by
``apply_chat_template`` with a sentinel as the reply and the next user turn after it, everything
after the sentinel is tokenized — minus the end-of-turn token when the model already sampled it.
``env_mask`` marks them 0, so the loss covers the model's tokens only.

**Reward.** :class:`EnvReward` scores an episode by the environment's return (household: 1 when
won, else 0) minus ``invalid_action_penalty`` per invalid action. The penalty also gives a
random or early student a signal: with only the win reward, groups of failures all score 0 and
carry no advantage. Win rate, return, invalid actions and turns are logged under ``env/``.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentkd.distill.datasets import DataReport, EmptyDatasetError, grpo_prompts
from agentkd.envs import is_code, load_tasks, make_env
from agentkd.models.generation import left_pad, render_chat, stop_token_ids
from agentkd.models.student import PromptFormat, apply_lora, resolve_student
from agentkd.policies.base import PolicyInput
from agentkd.policies.prompt import build_messages, parse_output
from agentkd.schema import Step, Task
from agentkd.train.common import TrainConfigError, finish_run, run_training, stage_callbacks, trl_config
from agentkd.train.config import GRPORunConfig
from agentkd.train.distributed import shared_start
from agentkd.train.summary import TrainingSummary

__all__ = ["EnvReward", "Episode", "GRPORunConfig", "MultiTurnRollout", "RolloutStats", "env_turn_text",
           "train_grpo"]

Messages = list[dict[str, str]]

# Stands in for a reply's content when rendering what follows it; nothing a model or env writes.
_SENTINEL = "\u27e6agentkd:end-of-reply\u27e7"


def env_turn_text(tokenizer: Any, messages: Messages, user_content: str) -> str:
    """What the chat template writes after an assistant reply to ``messages``, up to the next reply.

    That is the reply's end of turn, the user turn ``user_content`` and the new assistant header
    (ChatML: ``<|im_end|>\\n<|im_start|>user\\n...<|im_end|>\\n<|im_start|>assistant\\n``). The
    conversation is rendered whole, so templates that treat turns by position still agree.
    """
    rendered = render_chat(tokenizer, [*messages, {"role": "assistant", "content": _SENTINEL},
                                       {"role": "user", "content": user_content}])
    return rendered[rendered.rindex(_SENTINEL) + len(_SENTINEL):]


def _end_of_turn_id(tokenizer: Any, stop_ids: list[int]) -> int | None:
    """The stop token the chat template itself writes after a reply (ChatML: ``<|im_end|>``), if any."""
    text = env_turn_text(tokenizer, [{"role": "user", "content": "x"}], "y")
    first = tokenizer(text, add_special_tokens=False)["input_ids"][:1]
    return first[0] if first and first[0] in stop_ids else None


@dataclass
class Episode:
    """One multi-turn rollout: the token sequence TRL trains on and the episode behind it."""

    task: Task
    messages: Messages  # the conversation: the prompt, then each reply (as its tokens spell it) and observation
    prompt_ids: list[int]
    budget: int  # most completion tokens allowed (max_completion_length, within the model's context)
    env: Any = field(repr=False)
    observation: str = ""  # the current observation
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)  # 1: sampled by the model, 0: written by the environment
    steps: list[Step] = field(default_factory=list)
    env_reward: float = 0.0  # the environment's return
    won: bool = False
    ended: str | None = None  # "done" (the environment ended it), "max_turns" or "length"

    @property
    def invalid_actions(self) -> int:
        return sum(not s.valid for s in self.steps)


@dataclass
class RolloutStats:
    """Running totals over every episode a :class:`MultiTurnRollout` played."""

    episodes: int = 0
    wins: int = 0
    env_reward: float = 0.0
    invalid_actions: int = 0
    turns: int = 0
    prompt_tokens: int = 0
    model_tokens: int = 0
    env_tokens: int = 0

    def add(self, ep: Episode) -> None:
        self.episodes += 1
        self.wins += int(ep.won)
        self.env_reward += ep.env_reward
        self.invalid_actions += ep.invalid_actions
        self.turns += len(ep.steps)
        self.prompt_tokens += len(ep.prompt_ids)
        self.model_tokens += sum(ep.env_mask)
        self.env_tokens += len(ep.env_mask) - sum(ep.env_mask)

    def merged(self, others: Sequence[RolloutStats]) -> RolloutStats:
        """These totals plus ``others``' (every process's, after a run on several)."""
        return RolloutStats(**{name: sum(getattr(s, name) for s in (self, *others)) for name in asdict(self)})

    def as_dict(self) -> dict[str, Any]:
        n = max(1, self.episodes)
        return asdict(self) | {"win_rate": round(self.wins / n, 4), "mean_env_reward": round(self.env_reward / n, 4),
                               "mean_turns": round(self.turns / n, 2),
                               "invalid_per_turn": round(self.invalid_actions / max(1, self.turns), 4)}


class MultiTurnRollout:
    """TRL ``rollout_func``: plays each prompt's task in the environment, one batched generate per turn.

    Args:
        env_name: environment to play in (:func:`agentkd.envs.make_env`).
        tasks_by_prompt: the task behind each first user turn (from ``grpo_prompts``).
        fmt: the student's prompt format; it must make an episode one conversation (whole
            history, no admissible list), the only format whose turns form one token sequence.
        max_turns: most replies (environment steps) per episode.
        max_new_tokens: most tokens per reply.
        env_kwargs: passed to ``make_env`` for every episode.
    """

    def __init__(self, env_name: str, tasks_by_prompt: dict[str, Task], fmt: PromptFormat | None = None, *,
                 max_turns: int = 20, max_new_tokens: int = 96, env_kwargs: dict[str, Any] | None = None) -> None:
        self.fmt = fmt or PromptFormat()
        if self.fmt.max_history is not None or self.fmt.show_admissible:
            raise TrainConfigError(f"multi-turn GRPO needs the student to see its whole episode as one conversation "
                                   f"(max_history=None, show_admissible=False); its card says {self.fmt}")
        self.env_name = env_name
        self.tasks_by_prompt = tasks_by_prompt
        self.max_turns = max_turns
        self.max_new_tokens = max_new_tokens
        self.env_kwargs = env_kwargs or {}
        self.stats = RolloutStats()

    def __call__(self, prompts: list[Messages], trainer: Any) -> dict[str, Any]:
        """The rollout contract of ``GRPOTrainer``: one completion per prompt received, in order."""
        from trl.models import unwrap_model_for_generation

        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
                                         gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
                                         ) as model, trainer.accelerator.autocast():
            # Generate in the trainer's precision (bf16 autocast where the CPU or GPU has it: ~2x fp32 on AMX).
            # Sample as the trainer scores: its log-probs use the same temperature (top-p/top-k unscaled).
            episodes = self.play(prompts, model, trainer.processing_class,
                                 max_completion_length=trainer.max_completion_length,
                                 temperature=trainer.temperature, top_p=trainer.top_p, top_k=trainer.top_k)
        return self.trl_output(episodes)

    @staticmethod
    def trl_output(episodes: Sequence[Episode]) -> dict[str, Any]:
        """Token ids and mask for the trainer; the other keys reach the reward functions as kwargs."""
        return {
            "prompt_ids": [ep.prompt_ids for ep in episodes],
            "completion_ids": [ep.completion_ids for ep in episodes],
            "env_mask": [ep.env_mask for ep in episodes],
            "logprobs": None,  # the trainer computes its own (only vLLM rollouts need sampling log-probs)
            "env_reward": [ep.env_reward for ep in episodes],
            "won": [ep.won for ep in episodes],
            "invalid_actions": [ep.invalid_actions for ep in episodes],
            "turns": [len(ep.steps) for ep in episodes],
        }

    def play(self, prompts: list[Messages], model: Any, tokenizer: Any, *, max_completion_length: int,
             temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0) -> list[Episode]:
        """Play one episode per prompt with ``model`` (unwrapped), all in step; returns them in order."""
        stop_ids = stop_token_ids(model, tokenizer)
        end_of_turn = _end_of_turn_id(tokenizer, stop_ids)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
        context = int(getattr(model.config, "max_position_embeddings", 0) or 1 << 30)
        episodes = [self._start(prompt, tokenizer, max_completion_length, context) for prompt in prompts]
        was_training = model.training
        model.eval()
        try:
            while live := [ep for ep in episodes if ep.ended is None]:
                room = [ep.budget - len(ep.completion_ids) for ep in live]
                replies = _sample(model, [ep.prompt_ids + ep.completion_ids for ep in live],
                                  max_new_tokens=min(self.max_new_tokens, max(room)), stop_ids=stop_ids,
                                  pad_id=pad_id, temperature=temperature, top_p=top_p, top_k=top_k)
                for ep, reply, r in zip(live, replies, room, strict=True):
                    # Cutting a sampled reply at r tokens is the same as sampling it with max_new_tokens=r.
                    self._advance(ep, reply[:r], tokenizer, end_of_turn)
        finally:
            model.train(was_training)
        for ep in episodes:
            self.stats.add(ep)
        return episodes

    def _start(self, prompt: Messages, tokenizer: Any, max_completion_length: int, context: int) -> Episode:
        first_turn = prompt[-1]["content"]
        task = self.tasks_by_prompt.get(first_turn)
        if task is None:
            raise KeyError(f"no task starts with this turn (prompts come from grpo_prompts): {first_turn[:80]!r}")
        env = make_env(self.env_name, **self.env_kwargs)
        observation = env.reset(task)
        prompt_ids = tokenizer(render_chat(tokenizer, prompt),
                               add_special_tokens=False)["input_ids"]
        budget = min(max_completion_length, context - len(prompt_ids))
        if budget < 1:
            raise TrainConfigError(f"the prompt of {task.task_id} ({len(prompt_ids)} tokens) leaves no room to reply")
        return Episode(task=task, messages=[dict(m) for m in prompt], prompt_ids=prompt_ids, env=env,
                       observation=observation, budget=budget)

    def _advance(self, ep: Episode, reply: list[int], tokenizer: Any, end_of_turn: int | None) -> None:
        """Append one sampled reply, step the environment with it, and append the next user turn."""
        ep.completion_ids += reply
        ep.env_mask += [1] * len(reply)
        # A reply closed by the template's own end-of-turn token is the message content plus that token;
        # any other stop token (e.g. EOS) stays part of the content, which the template then closes.
        closed = bool(reply) and reply[-1] == end_of_turn
        content = reply[:-1] if closed else reply
        raw = tokenizer.decode(content, skip_special_tokens=True)
        admissible = ep.env.admissible_actions()
        parsed = parse_output(raw, admissible, code=is_code(ep.task.env))
        observation, reward, done, info = ep.env.step(parsed.action)  # invalid: "" is a no-op, as in replay
        ep.steps.append(Step(
            index=len(ep.steps), observation=ep.observation, thought=parsed.thought, action=parsed.action,
            raw_output=raw, valid=parsed.valid and bool(info.get("admissible", True)), next_observation=observation,
            reward=reward, done=done, admissible_actions=admissible, completion_tokens=len(reply),
            info={k: v for k, v in {"error": parsed.error, "won": info.get("won")}.items() if v is not None},
        ))
        # The conversation keeps the reply as its tokens spell it (special tokens too), so it renders back to them.
        ep.messages.append({"role": "assistant", "content": tokenizer.decode(content, skip_special_tokens=False)})
        ep.observation = observation
        ep.env_reward += reward
        ep.won = ep.won or bool(info.get("won"))
        if done:
            ep.ended = "done"
            return
        if len(ep.steps) >= self.max_turns:
            ep.ended = "max_turns"
            return
        inp = PolicyInput(task=ep.task, observation=observation, history=ep.steps,
                          admissible_actions=ep.env.admissible_actions())
        user = build_messages(inp, self.fmt.max_history, self.fmt.show_admissible)[-1]
        env_ids = tokenizer(env_turn_text(tokenizer, ep.messages[:-1], user["content"]),
                            add_special_tokens=False)["input_ids"]
        if closed and env_ids[:1] == reply[-1:]:
            env_ids = env_ids[1:]  # the model already closed its turn
        if len(ep.completion_ids) + len(env_ids) >= ep.budget:  # no room left for another reply
            ep.ended = "length"
            return
        ep.completion_ids += env_ids
        ep.env_mask += [0] * len(env_ids)
        ep.messages.append(user)


def _sample(model: Any, rows: list[list[int]], *, max_new_tokens: int, stop_ids: list[int], pad_id: int,
            temperature: float, top_p: float, top_k: int) -> list[list[int]]:
    """One left-padded ``generate`` for all rows; each reply up to and including its first stop token."""
    import torch

    input_ids, attention_mask = left_pad(rows, pad_id)
    width = input_ids.shape[1]
    if temperature > 0:
        sampling = {"do_sample": True, "temperature": float(temperature), "top_p": float(top_p), "top_k": int(top_k)}
    else:
        sampling = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    device = next(model.parameters()).device
    with torch.no_grad():
        output = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                max_new_tokens=max_new_tokens, eos_token_id=stop_ids, pad_token_id=pad_id, **sampling)
    stop = set(stop_ids)
    replies = []
    for row in output[:, width:].tolist():
        end = next((j for j, t in enumerate(row) if t in stop), None)
        replies.append(row if end is None else row[: end + 1])
    return replies


class EnvReward:
    """GRPO reward from the rollout's fields: the environment's return minus a penalty per invalid action.

    Also logs, per batch, ``env/reward`` (mean return), ``env/win_rate``, ``env/invalid_actions``
    (per episode) and ``env/turns`` — ``finish_run`` keeps ``env/`` keys in the summary's losses.
    """

    def __init__(self, invalid_action_penalty: float = 0.1) -> None:
        self.invalid_action_penalty = invalid_action_penalty
        self.__name__ = "env_reward"  # how TRL names it in its logs

    def __call__(self, completions: list[Any], env_reward: list[float], invalid_actions: list[int],
                 won: list[bool] | None = None, turns: list[int] | None = None, log_metric: Any = None,
                 **kwargs: Any) -> list[float]:
        rewards = [float(r) - self.invalid_action_penalty * n for r, n in zip(env_reward, invalid_actions, strict=True)]
        if log_metric is not None:
            n = len(rewards)
            log_metric("env/reward", sum(env_reward) / n)
            log_metric("env/invalid_actions", sum(invalid_actions) / n)
            if won is not None:
                log_metric("env/win_rate", sum(map(bool, won)) / n)
            if turns is not None:
                log_metric("env/turns", sum(turns) / n)
        return rewards


def _tasks(config: GRPORunConfig) -> list[Task]:
    tasks = load_tasks(config.env, config.split)
    if config.task_types:
        tasks = [t for t in tasks if t.task_type in config.task_types]
    if config.max_tasks is not None and len(tasks) > config.max_tasks:
        tasks = random.Random(config.seed).sample(tasks, config.max_tasks)
    if not tasks:
        raise EmptyDatasetError(f"no {config.env} tasks in split {config.split!r}"
                                + (f" of types {config.task_types}" if config.task_types else ""))
    return tasks


def train_grpo(student: str | Path, out_dir: str | Path, config: GRPORunConfig | None = None, *,
               allow_download: bool = False, callbacks: list[Any] | None = None) -> TrainingSummary:
    """Train ``student`` (``tiny``, a directory, or a hub name) by GRPO in the environment into ``out_dir``.

    Returns the training summary (also written to ``out_dir/training_summary.json``); its
    ``data`` holds the prompt counts and the rollout totals (episodes, win rate, mean return,
    invalid actions, tokens). ``tokens`` (for tokens/s) counts every rollout's prompt and
    completion tokens, environment turns included: the sequences the policy was trained on.

    Example::

        train_grpo("runs/redi", "runs/grpo", GRPORunConfig(split="train", max_minutes=60, beta=0.04))
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    config = config or GRPORunConfig()
    started = time.perf_counter()
    spec = str(student)
    if spec == "tiny":
        spec = f"tiny:{config.tiny_size}"

    def build() -> tuple[Any, Any, Any, tuple[list[dict[str, Any]], dict[str, Task], DataReport]]:
        """On the main process only: the tasks drawn, the student resolved, the first turns rendered."""
        tasks = _tasks(config)
        texts: list[str] = []
        if spec.startswith("tiny:"):  # a tokenizer for a fresh student, from the text it will see
            rows, _ = grpo_prompts(tasks, make_env)
            texts = [m["content"] for row in rows for m in row["prompt"]]
        model, tokenizer, card = resolve_student(spec, out_dir, texts, allow_download=allow_download,
                                                 seed=config.seed)
        rows, by_prompt = grpo_prompts(tasks, make_env, card.prompt)
        report = DataReport(considered=len(tasks), kept=len(rows), tokens=sum(
            len(tokenizer(render_chat(tokenizer, row["prompt"]), add_special_tokens=False)["input_ids"])
            for row in rows))
        if len(rows) < len(tasks):
            report.dropped = Counter({"same first turn as another task": len(tasks) - len(rows)})
        return model, tokenizer, card, (rows, by_prompt, report)

    model, tokenizer, card, (rows, by_prompt, report) = shared_start(build, spec, out_dir,
                                                                     allow_download=allow_download)
    rollout = MultiTurnRollout(config.env, by_prompt, card.prompt, max_turns=config.max_turns,
                               max_new_tokens=config.max_new_tokens)
    if config.lora:
        model = apply_lora(model, r=config.lora_r, alpha=2 * config.lora_r)

    args = trl_config(
        config,         GRPOConfig, out_dir,
        config.pick_learning_rate(tiny=card.base.startswith("tiny"), lora=config.lora),
        lr_scheduler_type="constant_with_warmup",
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        temperature=config.temperature,
        top_p=config.top_p,
        beta=config.beta,
        epsilon=config.epsilon,
        loss_type=config.loss_type,
        shuffle_dataset=True,
        # GRPO batches carry no input_ids for the Trainer to count; TRL counts prompt + model tokens itself.
        include_num_input_tokens_seen="no",
    )
    trainer = GRPOTrainer(model=model, reward_funcs=[EnvReward(config.invalid_action_penalty)], args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer, rollout_func=rollout,
                          callbacks=stage_callbacks(config, callbacks))
    output = run_training(trainer, config)
    stats = rollout.stats
    if trainer.accelerator.num_processes > 1:  # each process played its share of the episodes
        from accelerate.utils import gather_object

        stats = RolloutStats().merged(gather_object([stats]))
    report.extra["rollouts"] = stats.as_dict()
    return finish_run(trainer, output, stage="grpo", out_dir=out_dir, card=card, data=report, started=started,
                      tokens=stats.prompt_tokens + stats.model_tokens + stats.env_tokens, config=asdict(config))
