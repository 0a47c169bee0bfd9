"""The ReAct prompt and output parser shared by every language-model policy.

:func:`build_messages` turns a :class:`~agentkd.policies.base.PolicyInput` into chat messages
(``{"role": ..., "content": ...}`` dicts): a system message with the answer format (and any
principles), then the episode as alternating turns — the user speaks the observations, the
assistant answers ``Thought: ...`` / ``Action: ...`` — ending with the current observation and the
admissible actions. The same messages serve teachers (LangChain chat models), students (local
transformers models) and SFT datasets, so a student is trained on exactly the prompt it is
replayed with.

:func:`parse_output` reads the action (and thought) back out of whatever a model wrote. It is
lenient about format — label spelling and case, markdown, quotes, trailing punctuation, ALFWorld's
``> think:`` / ``> action`` style — strict about admissibility, and never raises.
"""

from __future__ import annotations

import re
import textwrap
import warnings
from dataclasses import dataclass

from agentkd.envs import is_code
from agentkd.policies.base import Decision, PolicyInput
from agentkd.schema import Step

__all__ = ["CODE_SYSTEM_PROMPT", "SYSTEM_PROMPT", "ParsedAction", "assistant_text", "build_messages",
           "decide_from_text", "format_step", "parse_output"]

SYSTEM_PROMPT = (
    "You are an agent acting in a text environment. Each turn you see an observation; reply with "
    "exactly two lines:\n"
    "Thought: <your reasoning about what to do next>\n"
    "Action: <one action>\n"
    "When a list of admissible actions is given, the action must be copied exactly from that list."
)

#: For environments whose actions are Python code (``is_code(env)``).
CODE_SYSTEM_PROMPT = (
    "You are an agent that solves tasks by writing Python code. Each turn you see an observation; reply with:\n"
    "Thought: <your reasoning about what to do next>\n"
    "Code:\n```py\n<python code>\n```\n"
    "The code runs in a persistent interpreter with the tools described in the task. Use print() to see "
    "values; call final_answer(answer) when you know the answer."
)


def format_step(thought: str, action: str, code: bool = False) -> str:
    """The assistant turn for one step, as the model is asked to write it (``code``: a Python block)."""
    if code:
        return f"Thought: {thought.strip()}\nCode:\n```py\n{action.strip()}\n```"
    return f"Thought: {thought.strip()}\nAction: {action.strip()}"


def assistant_text(step: Step, code: bool = False) -> str:
    """What the assistant said at ``step``: the canonical reply (``code``: with a Python block), or, when it
    did not give a valid action, the text it actually wrote, so the next prompt shows the agent its own
    mistake next to the environment's answer ("Nothing happens.")."""
    if step.valid or (code and step.action):  # code that ran but raised is replayed in the canonical form too
        return format_step(step.thought, step.action, code)
    return step.raw_output.strip()


def written_action(step: Step) -> str:
    """The command the agent wrote at ``step``: its action, or for a refused one (stored with an empty action)
    the action line of its raw output; "" where it wrote none."""
    return step.action or parse_output(step.raw_output, None).action


def _system_message(principles: list[str], code: bool = False) -> str:
    prompt = CODE_SYSTEM_PROMPT if code else SYSTEM_PROMPT
    if not principles:
        return prompt
    listed = "\n".join(f"- {p.strip()}" for p in principles if p.strip())
    return f"{prompt}\n\nPrinciples:\n{listed}"


def _current_turn(observation: str, admissible: list[str] | None) -> str:
    text = f"Observation: {observation.strip()}"
    if admissible is not None:
        text += "\n\nAdmissible actions:\n" + "\n".join(f"- {a}" for a in admissible)
    return text


def build_messages(
    inp: PolicyInput, max_history: int | None = 8, show_admissible: bool = True
) -> list[dict[str, str]]:
    """Chat messages for one policy input.

    The first user turn carries the task goal; the last ``max_history`` steps (all of them when
    ``None``) follow as observation (user) / ``Thought … Action …`` (assistant) pairs; the final
    user turn holds the current observation and, when the action space is closed and
    ``show_admissible`` is set, the admissible actions.

    With ``max_history=None, show_admissible=False`` the messages at step *t* are a prefix of the
    messages at step *t+1*: one conversation per episode, which is how students are trained
    (:func:`agentkd.distill.datasets.trajectory_messages`) and what lets replay reuse its cache.
    """
    if max_history is None:
        history = list(inp.history)
    else:
        history = inp.history[-max_history:] if max_history > 0 else []
    omitted = len(inp.history) - len(history)
    header = f"Your task: {inp.task.goal.strip()}\n"
    if omitted:
        header += f"({omitted} earlier step{'s' if omitted != 1 else ''} not shown.)\n"
    header += "\n"

    code = is_code(inp.task.env)
    messages = [{"role": "system", "content": _system_message(inp.principles, code)}]
    for i, step in enumerate(history):
        turn = f"Observation: {step.observation.strip()}"
        messages.append({"role": "user", "content": header + turn if i == 0 else turn})
        messages.append({"role": "assistant", "content": assistant_text(step, code)})
    current = _current_turn(inp.observation, inp.admissible_actions if show_admissible else None)
    messages.append({"role": "user", "content": current if history else header + current})
    return messages


@dataclass
class ParsedAction:
    """An action read from model output. ``valid=False`` comes with ``action=""`` and an ``error``."""

    action: str
    thought: str = ""
    valid: bool = True
    error: str | None = None


# A label at the start of a line, after optional quote markers, bullets and markdown emphasis:
# "Thought:", "**Action:**", "> think:", "- act:", "### Action", "Action -".
_PREFIX = r"^[ \t]*(?:>[ \t]*)?(?:[-*+][ \t]+)?(?:#+[ \t]*)?[*_`]*[ \t]*"
_THOUGHT_LABEL = re.compile(_PREFIX + r"(?:thought|think|thinking|reasoning)[*_`]*[ \t]*[:：][*_`]*[ \t]*",
                            re.IGNORECASE | re.MULTILINE)
_ACTION_LABEL = re.compile(_PREFIX + r"(?:action|act)[*_`]*[ \t]*[:：][*_`]*[ \t]*", re.IGNORECASE | re.MULTILINE)
# ALFWorld's ReAct style: "> go to cabinet 1" (a quoted line that is not a think line).
_ANGLE_ACTION = re.compile(r"^[ \t]*>[ \t]*(?![*_`]*(?:think|thought)\b)(\S.*)$", re.IGNORECASE | re.MULTILINE)
# Mid-line "Action:" (e.g. "Thought: ... Action: go to x"), only used when no line-start label exists.
_INLINE_ACTION = re.compile(r"\baction[*_`]*[ \t]*:[*_`]*[ \t]*", re.IGNORECASE)
_THINK_TAGS = re.compile(r"<think>(.*?)(?:</think>|$)", re.IGNORECASE | re.DOTALL)
_FENCE = re.compile(r"^[ \t]*```[\w-]*[ \t]*$", re.MULTILINE)

_STRIP_CHARS = " \t\r\n\"'`*“”‘’«»"
_BRACKETS = {"[": "]", "<": ">", "(": ")"}
_TRAILING = ".,;:!?。"
_SEPARATORS = ("(", "[", ",", ";", "-", "—", "–", ".", "!", "#", "//")


def _squash(text: str) -> str:
    return " ".join(text.split())


def _clean_action(value: str) -> str:
    """First line of ``value``, without quotes, markdown, trailing punctuation or extra spaces."""
    line = next((ln for ln in value.splitlines() if ln.strip(_STRIP_CHARS)), "")
    line = line.strip()
    if line.startswith(">"):
        line = line[1:]
    prev = None
    while prev != line:  # peel layers like '"go to x".' or **`go to x`**
        prev = line
        line = line.strip(_STRIP_CHARS).rstrip(_TRAILING)
        if line[:1] in _BRACKETS and line.endswith(_BRACKETS[line[:1]]):  # "[go to x]", not "Search[x]"
            line = line[1:-1]
    return _squash(line)


def _clean_thought(text: str) -> str:
    lines = [ln for ln in text.splitlines() if not _FENCE.match(ln)]
    return " ".join(_squash(ln).strip("*_`") for ln in lines if ln.strip(" \t*_`")).strip()


def _match_admissible(action: str, admissible: list[str]) -> str | None:
    """The admissible spelling of ``action`` (case and whitespace insensitive), or None."""
    key = action.casefold()
    table = {_squash(a).casefold(): a for a in admissible}
    if key in table:
        return table[key]
    # "go to cabinet 1 (to look inside)" → "go to cabinet 1": the longest admissible action the
    # text starts with, followed by a clear separator (never by more words, or by "0" as in "10").
    best = ""
    for norm in table:
        rest = key[len(norm):]
        if key.startswith(norm) and rest and not rest[0].isalnum() and rest.lstrip().startswith(_SEPARATORS):
            best = max(best, norm, key=len)
    return table[best] if best else None


def _invalid(thought: str, error: str) -> ParsedAction:
    return ParsedAction(action="", thought=thought, valid=False, error=error)


# A code action: "Code:" (or "Action:") then a fenced block; the closing fence may be missing only
# when nothing follows the code (a reply cut at its token cap is caught by the syntax check).
_CODE_LABEL = re.compile(_PREFIX + r"(?:code|action)[*_`]*[ \t]*[:：][*_`]*[ \t]*", re.IGNORECASE | re.MULTILINE)
_FENCED = r"[ \t]*```[ \t]*(?:py|python|python3)?[ \t]*\n(.*?)(?:^[ \t]*```|\Z)"
_CODE_BLOCK = re.compile(r"^" + _FENCED, re.IGNORECASE | re.MULTILINE | re.DOTALL)
_CODE_BLOCK_HERE = re.compile(_FENCED, re.IGNORECASE | re.MULTILINE | re.DOTALL)  # "Code: ```py" on one line
# A model's odd but valid code ("x is 1") makes compile() warn; that is not the host's concern.
warnings.filterwarnings("ignore", category=SyntaxWarning, module="<action>")


def _parse_code(text: str) -> ParsedAction:
    """Thought and Python code from a code-agent reply; the code must compile."""
    tagged = [m.group(1) for m in _THINK_TAGS.finditer(text)]
    body = _THINK_TAGS.sub("\n", text)
    label = _CODE_LABEL.search(body)
    block = (_CODE_BLOCK_HERE.match(body, label.end()) if label else None) or _CODE_BLOCK.search(
        body, label.end() if label else 0)
    if block is not None:
        code, before = block.group(1), body[: label.start() if label else block.start()]
    elif label is not None:  # "Code: final_answer(42)" without a fence
        code, before = body[label.end():], body[: label.start()]
    else:
        return _invalid(_clean_thought(body), "no code found: expected 'Code:' and a ```py block")
    thought = _clean_thought("\n".join([*tagged, _THOUGHT_LABEL.sub("", before)]))
    code = textwrap.dedent(code).strip("\n").rstrip()
    if not code.strip():
        return _invalid(thought, "no code found: the code block is empty")
    try:
        compile(code, "<action>", "exec")
    except (SyntaxError, ValueError) as exc:
        where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        return _invalid(thought, f"code does not parse: {getattr(exc, 'msg', exc)}{where}")
    return ParsedAction(action=code, thought=thought)


def parse_output(text: str, admissible: list[str] | None, code: bool = False) -> ParsedAction:
    """Read ``Thought`` and ``Action`` from model output ``text``; never raises.

    Only the first action counts. With ``admissible`` given, the action must match one of them
    (case-insensitively, whitespace normalised) and is returned in the admissible spelling; an
    unlabelled output that is exactly an admissible action is accepted too. With ``code``, the
    action is the reply's Python block (see :data:`CODE_SYSTEM_PROMPT`), which must compile.
    """
    if not isinstance(text, str) or not text.strip():
        return _invalid("", "no action found: empty output")
    if code:
        return _parse_code(text)

    # <think>...</think> blocks (reasoning models) are thoughts; the answer follows them.
    tagged = [m.group(1) for m in _THINK_TAGS.finditer(text)]
    body = _THINK_TAGS.sub("\n", text)
    body = _FENCE.sub("", body)

    action_match = _ACTION_LABEL.search(body)
    angle_match = _ANGLE_ACTION.search(body)
    candidates = [m for m in (action_match, angle_match) if m]
    first = min(candidates, key=lambda m: m.start()) if candidates else None
    if first is None:
        first = _INLINE_ACTION.search(body)

    if first is not None:
        raw_action = first.group(1) if first is angle_match else body[first.end():]
        before = body[: first.start()]
    else:
        raw_action, before = None, body

    # Thought: everything before the action, without its labels (several thought blocks are joined).
    thought_text = _THOUGHT_LABEL.sub("", before)
    thought = _clean_thought("\n".join([*tagged, thought_text]))

    if raw_action is None:
        whole = _clean_action(body)
        if admissible is not None and whole and (match := _match_admissible(whole, admissible)) is not None:
            # A bare action with nothing else (e.g. "go to cabinet 1."): accept it.
            if len([ln for ln in body.splitlines() if ln.strip()]) == 1:
                return ParsedAction(action=match, thought=_clean_thought("\n".join(tagged)))
        return _invalid(thought, "no action found: expected a line 'Action: <action>'")

    action = _clean_action(raw_action)
    if not action:
        return _invalid(thought, "no action found: the 'Action:' line is empty")
    if admissible is None:
        return ParsedAction(action=action, thought=thought)
    match = _match_admissible(action, admissible)
    if match is None:
        shown = action if len(action) <= 80 else action[:77] + "..."
        return _invalid(thought, f"not admissible: {shown!r}")
    return ParsedAction(action=match, thought=thought)


def decide_from_text(raw: str, admissible: list[str] | None, *, prompt_tokens: int = 0, completion_tokens: int = 0,
                     latency_s: float = 0.0, code: bool = False) -> Decision:
    """A model policy's decision from its output text: parsed action and thought, the raw text kept."""
    parsed = parse_output(raw, admissible, code)
    return Decision(action=parsed.action, thought=parsed.thought, raw_output=raw, valid=parsed.valid,
                    error=parsed.error, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    latency_s=latency_s)
