"""Training data from the experience store: SFT conversations, REDI pairs and GRPO prompts.

Every builder renders episodes with the prompt code the student is replayed with
(:func:`~agentkd.policies.prompt.build_messages`), so training and inference see the same text:

- **SFT**: one chat conversation per trajectory — system prompt, the task and the first
  observation as the first user turn, then ``Thought … / Action …`` (assistant) and the next
  observation (user) in turn. With the default :class:`~agentkd.models.student.PromptFormat`
  (whole history, no admissible list) the prompt at every step is a prefix of this conversation,
  so one example trains every step of an episode exactly as it is prompted.
- **REDI**: ``(prompt, chosen, rejected)`` conversations. Trajectory pairs put a failed episode
  of a task against a successful one of the same task (same first turn, different
  continuations); step pairs take a failed episode's state where its action differs from what
  the environment's expert does there, and the expert — run on from that state — wins.
- **GRPO**: the first turn of each task, for rollouts in the environment.

Each builder returns its rows and a :class:`DataReport` that counts what was kept, truncated and
dropped (and why); trainers copy it into ``training_summary.json``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentkd.envs import is_code
from agentkd.errors import ConfigError, EmptyDatasetError
from agentkd.models.chat_template import honours_train_flags
from agentkd.models.student import PromptFormat
from agentkd.policies.base import PolicyInput
from agentkd.policies.expert import MISTAKE
from agentkd.policies.prompt import assistant_text, build_messages, format_step
from agentkd.schema import Step, Task, Trajectory

__all__ = [
    "DataReport",
    "EmptyDatasetError",
    "assistant_text",
    "is_mistake",
    "icd_step_examples",
    "grpo_prompts",
    "redi_pairs",
    "sft_conversations",
    "task_of",
    "trajectory_messages",
]

Messages = list[dict[str, str]]


@dataclass
class DataReport:
    """What a dataset builder did with its input."""

    considered: int = 0  # trajectories looked at
    kept: int = 0  # examples produced
    truncated: int = 0  # examples shortened to fit max_length (whole turns removed from the end)
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    tokens: int = 0  # tokens in the kept examples
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"considered": self.considered, "kept": self.kept, "truncated": self.truncated,
                "dropped": dict(self.dropped), "tokens": self.tokens, **self.extra}


def task_of(traj: Trajectory) -> Task:
    """The task record a trajectory was run on (enough for prompts; params are not stored with it)."""
    return Task(task_id=traj.task_id, env=traj.env, split=traj.split, task_type=traj.task_type, goal=traj.goal,
                params={})


def _code(env: str) -> bool:
    return is_code(env)


def _prompt_at(traj: Trajectory, t: int, fmt: PromptFormat) -> Messages:
    """The student's prompt before step ``t`` of ``traj``."""
    steps = traj.steps
    inp = PolicyInput(task=task_of(traj), observation=steps[t].observation, history=steps[:t],
                      admissible_actions=steps[t].admissible_actions)
    return build_messages(inp, fmt.max_history, fmt.show_admissible)


def trajectory_messages(traj: Trajectory, fmt: PromptFormat | None = None) -> Messages:
    """The whole episode as one conversation (the prompt at its last step plus the last reply).

    Needs ``fmt.max_history`` of ``None`` (or at least the episode's length) so that every earlier
    step's prompt is a prefix of it.
    """
    fmt = fmt or PromptFormat()
    if not traj.steps:
        raise ValueError(f"trajectory {traj.trajectory_id} has no steps")
    if fmt.max_history is not None and fmt.max_history < len(traj.steps):
        raise ValueError("one conversation per episode needs the whole history in the prompt (max_history=None)")
    t = len(traj.steps) - 1
    messages = [*_prompt_at(traj, t, fmt),
                {"role": "assistant", "content": assistant_text(traj.steps[t], _code(traj.env))}]
    # A deliberate mistake (ExpertPolicy(mistake_rate=...)) stays in the history but is not learnt: the chat
    # template leaves turns marked train=False outside its {% generation %} markers.
    for i, step in enumerate(traj.steps):
        if is_mistake(step):
            messages[2 + 2 * i]["train"] = False
    return messages


def is_mistake(step: Step) -> bool:
    """A step the teacher took wrong on purpose, to show recoveries (shown in prompts, never trained on)."""
    return bool(step.info.get(MISTAKE))


def _episode_key(traj: Trajectory) -> tuple:
    return (traj.env, traj.task_id, tuple(s.action for s in traj.steps))


class _Lengths:
    """Token lengths of conversations under one tokenizer's chat template."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def __call__(self, messages: Messages) -> int:
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)


def _fit(messages: Messages, length: Callable[[Messages], int], max_length: int | None,
         min_messages: int) -> tuple[Messages | None, int, bool]:
    """``messages`` cut by whole (user, assistant) turns from the end until they fit ``max_length``.

    Returns (messages or None when even ``min_messages`` do not fit, token count, truncated?).
    """
    n = length(messages)
    if max_length is None or n <= max_length:
        return messages, n, False
    cut = list(messages)
    while len(cut) - 2 >= min_messages:
        cut = cut[:-2]
        n = length(cut)
        if n <= max_length:
            return cut, n, True
    return None, n, False


def _usable(trajectories: Iterable[Trajectory], report: DataReport, success_only: bool,
            task_types: Sequence[str] | None, dedup: bool) -> Iterable[Trajectory]:
    """The trajectories an SFT set keeps; what it leaves out is counted in ``report``."""
    seen: set[tuple] = set()
    for traj in trajectories:
        report.considered += 1
        if success_only and not traj.success:
            report.dropped["failed"] += 1
            continue
        if task_types and traj.task_type not in task_types:
            report.dropped["task_type"] += 1
            continue
        if not traj.steps:
            report.dropped["no_steps"] += 1
            continue
        key = _episode_key(traj)
        if dedup and key in seen:
            report.dropped["duplicate"] += 1
            continue
        seen.add(key)
        yield traj


def sft_conversations(
    trajectories: Iterable[Trajectory],
    tokenizer: Any = None,
    *,
    fmt: PromptFormat | None = None,
    max_length: int | None = None,
    overlong: str = "truncate",
    task_types: Sequence[str] | None = None,
    success_only: bool = True,
    dedup: bool = True,
) -> tuple[list[dict[str, Messages]], DataReport]:
    """``{"messages": conversation}`` rows for SFT (TRL's conversational format).

    Args:
        trajectories: e.g. ``store.iterate(env="household", split="train")``.
        tokenizer: measures lengths with its chat template (needed when ``max_length`` is set).
        fmt: the student's prompt format (default: whole history, no admissible list).
        max_length: longest example in tokens; longer ones are cut by whole turns
            (``overlong="truncate"``) or left out (``"drop"``).
        task_types: keep only these task types.
        success_only: keep only successful trajectories (the usual distillation set).
        dedup: drop repeated episodes (same task, same actions).
    """
    if overlong not in ("truncate", "drop"):
        raise ConfigError(f"overlong must be 'truncate' or 'drop', not {overlong!r}")
    if max_length is not None and tokenizer is None:
        raise ValueError("max_length needs a tokenizer to measure examples")
    fmt = fmt or PromptFormat()
    report = DataReport()
    length = _Lengths(tokenizer) if tokenizer is not None else None
    rows: list[dict[str, Messages]] = []
    for traj in _usable(trajectories, report, success_only, task_types, dedup):
        messages = trajectory_messages(traj, fmt)
        if tokenizer is not None and any(m.get("train") is False for m in messages) and not honours_train_flags(
                tokenizer):
            raise ValueError(f"trajectory {traj.trajectory_id} has deliberate mistakes, which must not be trained on, "
                             "but the student's chat template would train them (it predates mistake masking): start "
                             "from a student whose template is agentkd.models.chat_template.CHATML_TEMPLATE")
        if length is not None:
            fitted, n, truncated = _fit(messages, length, max_length if overlong == "truncate" else None, 3)
            if overlong == "drop" and max_length is not None and n > max_length:
                fitted = None
            if fitted is None:
                report.dropped["too_long"] += 1
                continue
            report.tokens += n
            report.truncated += truncated
            messages = fitted
        rows.append({"messages": messages})
        report.kept += 1
    return rows, report


def icd_step_examples(
    trajectories: Iterable[Trajectory],
    retriever: Any,
    tokenizer: Any = None,
    *,
    fmt: PromptFormat,
    max_length: int | None = None,
    task_types: Sequence[str] | None = None,
    success_only: bool = True,
    dedup: bool = True,
) -> tuple[list[dict[str, Messages]], DataReport]:
    """``{"prompt": ..., "completion": ...}`` rows, one per step, for training with in-context distillation.

    Each prompt is what the student sees at replay with ``+icd``: its usual messages (``fmt``; a
    bounded ``max_history`` keeps the per-step examples short) with the teacher's most similar steps
    (``retriever``, a :class:`~agentkd.distill.demos.DemoRetriever`) in front of the current turn. Steps of
    the example's own task are never shown to it: the student must learn to use similar cases, not to
    copy the answer. Examples longer than ``max_length`` tokens are left out.
    """
    from agentkd.distill.demos import with_demos

    if max_length is not None and tokenizer is None:
        raise ValueError("max_length needs a tokenizer to measure examples")
    report = DataReport()
    length = _Lengths(tokenizer) if tokenizer is not None else None
    trajectories = list(trajectories)
    kept = list(_usable(trajectories, report, success_only, task_types, dedup))
    # Every trajectory, also the duplicates dedup left out: their steps are the closest hits of all.
    task_by_trajectory = {t.trajectory_id: t.task_id for t in trajectories}
    steps = [(traj, t) for traj in kept for t in range(len(traj.steps)) if not is_mistake(traj.steps[t])]
    inputs = [PolicyInput(task=task_of(traj), observation=traj.steps[t].observation, history=traj.steps[:t])
              for traj, t in steps]
    demos = retriever.retrieve(
        inputs, skip=lambda inp, hit: task_by_trajectory.get(hit.trajectory_id) == inp.task.task_id)
    rows: list[dict[str, Messages]] = []
    for (traj, t), shown in zip(steps, demos, strict=True):
        prompt = with_demos(_prompt_at(traj, t, fmt), shown)
        completion = [{"role": "assistant", "content": assistant_text(traj.steps[t], _code(traj.env))}]
        if length is not None:
            n = length(prompt + completion)
            if max_length is not None and n > max_length:
                report.dropped["too_long"] += 1
                continue
            report.tokens += n
        rows.append({"prompt": prompt, "completion": completion})
    report.kept = len(rows)
    report.extra["episodes"] = len(kept)
    report.extra["with_demos"] = sum(bool(d) for d in demos)
    return rows, report


# ---- REDI ---------------------------------------------------------------------------------------


def _expert_pairs_for(traj: Trajectory, make_env: Callable[[], Any], task: Task, fmt: PromptFormat,
                      max_pairs: int, only: Callable[[Step], bool] | None = None) -> list[tuple[int, str]]:
    """Steps of ``traj`` (those ``only`` accepts) where the expert would act differently and win from there.

    Returns (step index, expert reply) for up to ``max_pairs`` steps: refused commands first, then the
    others, each earliest first. A refused command ("go to desk 5" in a room with four) is wrong for
    certain; a valid action other than the expert's is often just another order of search, and
    pushing it down teaches little.
    """
    pairs: list[tuple[int, str]] = []
    candidates = [i for i, step in enumerate(traj.steps) if only is None or only(step)]
    for t in sorted(candidates, key=lambda i: (traj.steps[i].valid, i)):
        if len(pairs) >= max_pairs:
            break
        step = traj.steps[t]
        env = make_env()
        env.reset(task)
        for past in traj.steps[:t]:  # replay the student to the state before step t
            env.expert_action()  # the expert watches the episode so its memory matches
            env.step(past.action)
        choice = env.expert_action()
        if choice is None:
            continue
        thought, action = choice
        if step.valid and step.action == action:
            continue
        # Does the expert win when it takes over here?
        reward, done, info = 0.0, False, {}
        next_choice: tuple[str, str] | None = choice
        while next_choice is not None and not done:
            _, reward, done, info = env.step(next_choice[1])
            next_choice = None if done else env.expert_action()
        if done and (info.get("won") or reward > 0):
            pairs.append((t, format_step(thought, action, _code(task.env))))
    return pairs


def redi_pairs(
    trajectories: Iterable[Trajectory],
    tokenizer: Any = None,
    *,
    fmt: PromptFormat | None = None,
    max_length: int | None = None,
    step_pairs: bool = True,
    trajectory_pairs: bool = True,
    make_env: Callable[[str], Any] | None = None,
    load_task: Callable[[Trajectory], Task | None] | None = None,
    max_step_pairs_per_episode: int = 2,
    mistake_pairs: bool = True,
) -> tuple[list[dict[str, Any]], DataReport]:
    """``{"prompt", "chosen", "rejected"}`` conversation rows for REDI, from successes and failures.

    Trajectory pairs: every failed trajectory against a successful one of the same task (they
    share the first turn; chosen/rejected are the rest of each episode). Step pairs (when the
    environment has an expert and ``make_env``/``load_task`` are given): at up to
    ``max_step_pairs_per_episode`` states of the failed episode where its action differs from the
    expert's and the expert wins from there (refused commands first), the expert's reply is chosen
    and the failed episode's reply rejected. Mistake pairs (``mistake_pairs``, with ``make_env``):
    the same at the teacher's own marked mistakes (``collect --mistake-rate``), up to
    ``max_step_pairs_per_episode`` per episode. REDI's negatives are the teacher's wrong traces in
    the paper; a student that fails too seldom on its training tasks to supply negatives still
    learns from them which commands the environment refuses.

    Raises :class:`EmptyDatasetError` when there are no failed trajectories (negatives) or no
    pair could be formed.
    """
    fmt = fmt or PromptFormat()
    report = DataReport()
    successes: dict[tuple[str, str], list[Trajectory]] = defaultdict(list)
    failures: list[Trajectory] = []
    mistaken: list[Trajectory] = []
    for traj in trajectories:
        report.considered += 1
        if not traj.steps:
            report.dropped["no_steps"] += 1
        elif any(is_mistake(s) for s in traj.steps):
            # A positive would make its mistakes likelier, a negative its recoveries less likely:
            # never a whole trajectory pair, only step pairs at its mistakes.
            report.dropped["with_mistakes"] += 1
            mistaken.append(traj)
        elif traj.success:
            successes[(traj.env, traj.task_id)].append(traj)
        else:
            failures.append(traj)
    by_expert = step_pairs and make_env is not None and load_task is not None
    if not (mistake_pairs and by_expert):
        mistaken = []
    report.extra.update(positives=sum(len(v) for v in successes.values()), negatives=len(failures),
                        with_mistakes=len(mistaken))
    if not failures and not mistaken:
        raise EmptyDatasetError(
            "REDI needs negatives: failed trajectories, e.g. the SFT student's own rollouts, or the teacher's "
            "marked mistakes, and the store has none. Record them with `agentkd collect --teacher <sft student "
            "dir> --env ENV --split train --store STORE` (or `--teacher expert --mistake-rate 0.1`) and run REDI "
            "again."
        )
    length = _Lengths(tokenizer) if tokenizer is not None else None
    rows: list[dict[str, Any]] = []
    kinds: Counter = Counter()

    def add(prompt: Messages, chosen: Messages, rejected: Messages, kind: str, traj: Trajectory) -> None:
        if length is not None and max_length is not None:
            longest = max(length([*prompt, *chosen]), length([*prompt, *rejected]))
            if longest > max_length:
                report.dropped["too_long"] += 1
                return
            report.tokens += length([*prompt, *chosen]) + length([*prompt, *rejected])
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "kind": kind,
                     "task_id": traj.task_id, "rejected_trajectory": traj.trajectory_id})
        kinds[kind] += 1

    for neg in failures:
        wins = successes.get((neg.env, neg.task_id), [])
        if trajectory_pairs:
            if wins:
                pos = min(wins, key=lambda tr: (len(tr.steps), tr.trajectory_id))  # the most direct success
                pos_msgs, neg_msgs = trajectory_messages(pos, fmt), trajectory_messages(neg, fmt)
                add(pos_msgs[:2], pos_msgs[2:], neg_msgs[2:], "trajectory", neg)
            else:
                report.dropped["no_success_for_task"] += 1
    # Step pairs: at any step of a failure, and at the teacher's marked mistakes.
    sources = [(traj, "step", None) for traj in failures] if by_expert else []
    sources += [(traj, "mistake", is_mistake) for traj in mistaken]
    for traj, kind, only in sources:
        task = load_task(traj)
        if task is None:
            report.dropped["task_not_found"] += 1
            continue
        for t, reply in _expert_pairs_for(traj, lambda env=traj.env: make_env(env), task, fmt,
                                          max_step_pairs_per_episode, only):
            add(_prompt_at(traj, t, fmt), [{"role": "assistant", "content": reply}],
                [{"role": "assistant", "content": assistant_text(traj.steps[t], _code(traj.env))}], kind, traj)
    report.kept = len(rows)
    report.extra["pairs"] = dict(kinds)
    if not rows:
        raise EmptyDatasetError(
            f"no REDI pair could be formed from {len(failures)} failed trajectories: none of their tasks has a "
            "successful trajectory in the store, and no step pair was found. Collect teacher trajectories on the "
            "same split (`agentkd collect --teacher expert ...`)."
        )
    return rows, report


# ---- GRPO ---------------------------------------------------------------------------------------


def grpo_prompts(tasks: Iterable[Task], make_env: Callable[[str], Any], fmt: PromptFormat | None = None,
                 ) -> tuple[list[dict[str, Any]], dict[str, Task]]:
    """The first turn of each task (``{"prompt": messages}`` rows) and the task behind each first turn.

    Rollouts only see the prompt, so tasks are keyed by their first user turn; tasks whose first
    turns are identical are indistinguishable to the agent and kept once.
    """
    fmt = fmt or PromptFormat()
    rows: list[dict[str, Any]] = []
    by_prompt: dict[str, Task] = {}
    for task in tasks:
        env = make_env(task.env)
        observation = env.reset(task)
        inp = PolicyInput(task=task, observation=observation, admissible_actions=env.admissible_actions())
        messages = build_messages(inp, fmt.max_history, fmt.show_admissible)
        key = messages[-1]["content"]
        if key in by_prompt:
            continue
        by_prompt[key] = task
        rows.append({"prompt": messages, "task_id": task.task_id})
    return rows, by_prompt
