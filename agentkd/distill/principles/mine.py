"""The offline miner: principles from plain statistics over recorded trajectories, no language model.

Three miners, each honest about what it counts:

* **search order** (household): every observation that lists a receptacle's contents ("On the
  countertop 1, you see a mug 1, ...") says which object types were in a receptacle of that type.
  Per object type, the rate at which a looked-at receptacle of each type held one (shrunk towards
  the object's overall rate, so a type seen twice does not win on luck) becomes a guiding principle
  "A mug is most often found in/on a countertop, cabinet or shelf; look there first." with the whole
  order, the rates and the counts in its ``data`` — successes and failures count alike: both saw
  real rooms. Receptacle types seen closed cost one step more (``open``), as in the expert.
* **cautionary** (every environment): in failed episodes, repeating an action that had no effect
  ("Nothing happens.", an error), taking the same action three or more times, and the kinds of
  action that most often had no effect — each only when it occurred in at least ``min_support``
  failed episodes and more often in failures than in successes.
* **tool sequences** (code environments, e.g. ``qa`` and ``math``): per task type, the sequence of
  tool calls of the successful episodes (a search for a name from the question, for a name read in
  earlier results, ``final_answer``, plain computation) that succeeded most often.

Mined principles have keys (``household/search-order/mug``): mining again updates the same records.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from agentkd.envs import is_code
from agentkd.policies.prompt import written_action
from agentkd.schema import SEARCH_ORDER, Principle, Step, Trajectory

__all__ = ["MinerConfig", "cautionary_principles", "mine_principles", "search_order_principles",
           "tool_sequence_principles"]

_NOTHING_HAPPENS = "Nothing happens."

# "On the countertop 1, you see a mug 1, and a apple 2." / "The fridge 1 is open. In it, you see nothing."
_CONTENTS = re.compile(r"(?:On the (?P<on>[a-z]+ \d+), you see|The (?P<in>[a-z]+ \d+) is open\. In it, you see) "
                       r"(?P<items>[^.]*)\.")
_CLOSED = re.compile(r"The (?P<r>[a-z]+ \d+) is closed\.|You open the (?P<o>[a-z]+ \d+)\.")
_MOVE = re.compile(r"^(?:move|put) (?P<thing>[a-z]+ \d+) (?:to|in|on|in/on) ")
_ERROR = re.compile(r"(?:^|\n)Error: (?P<kind>[A-Za-z_][\w.]*)")
# Names a code action may call that are Python itself, not the environment's tools.
_NOT_TOOLS = frozenset(dir(builtins))


@dataclass(frozen=True)
class MinerConfig:
    """Thresholds of the offline miner."""

    min_found: int = 3  # an object type needs this many sightings for a search order
    top: int = 3  # receptacle types named in a search-order principle's text
    shrink: float = 2.0  # pseudo-looks of the object's overall rate added to each receptacle type's rate
    min_support: int = 3  # failed (cautionary) or successful (tool sequence) episodes a principle needs
    loop_repeats: int = 3  # the same action this many times in an episode is a loop
    max_invalid_kinds: int = 3  # cautionary principles about kinds of ineffective actions, at most


def mine_principles(trajectories: Iterable[Trajectory], config: MinerConfig | None = None) -> list[Principle]:
    """Every principle the miners find in these trajectories (all environments in them)."""
    config = config or MinerConfig()
    by_env: dict[str, list[Trajectory]] = defaultdict(list)
    for traj in trajectories:
        by_env[traj.env].append(traj)
    found: list[Principle] = []
    for env, group in sorted(by_env.items()):
        if env == "household":
            found += search_order_principles(group, config)
        if is_code(env):
            found += tool_sequence_principles(group, config)
        found += cautionary_principles(group, config)
    return found


# ---- search order -------------------------------------------------------------------------------


def _kind_of(name: str) -> str:
    """'cabinet 3' -> 'cabinet'."""
    base, _, number = name.rpartition(" ")
    return base if number.isdigit() and base else name


def _things(items: str) -> list[str]:
    """'a mug 1, a apple 2, and a cup 1' -> ['mug 1', 'apple 2', 'cup 1']; 'nothing' -> []."""
    if items.strip() == "nothing":
        return []
    things = []
    for part in items.split(", "):
        part = part.strip().removeprefix("and ").strip()
        for article in ("a ", "an "):
            part = part.removeprefix(article)
        if part:
            things.append(part)
    return things


def _looks(traj: Trajectory) -> tuple[dict[str, set[str]], set[str]]:
    """(receptacle -> object types seen in it at the first look, receptacle types seen closed).

    Things the agent itself put somewhere are not counted: they say where the agent puts them.
    """
    looks: dict[str, set[str]] = {}
    closed: set[str] = set()
    moved: set[str] = set()
    texts = [(traj.steps[0].observation, None)] if traj.steps else []
    texts += [(step.next_observation, step) for step in traj.steps]
    for text, step in texts:
        if step is not None and (match := _MOVE.match(step.action)):
            moved.add(match.group("thing"))
        for match in _CLOSED.finditer(text):
            closed.add(_kind_of(match.group("r") or match.group("o")))
        for match in _CONTENTS.finditer(text):
            receptacle = match.group("on") or match.group("in")
            if receptacle not in looks:
                looks[receptacle] = {_kind_of(t) for t in _things(match.group("items")) if t not in moved}
    return looks, closed


def search_order_principles(trajectories: Iterable[Trajectory], config: MinerConfig | None = None) -> list[Principle]:
    """Per object type: where receptacles held it, as a guiding search-order principle (household)."""
    config = config or MinerConfig()
    found: dict[str, Counter[str]] = defaultdict(Counter)  # object -> receptacle type -> receptacles holding it
    looked: dict[str, Counter[str]] = defaultdict(Counter)  # object -> receptacle type -> receptacles looked at
    closed_seen: Counter[str] = Counter()
    sources: dict[str, list[str]] = defaultdict(list)
    episodes = 0
    for traj in trajectories:
        looks, closed = _looks(traj)
        if not looks:
            continue
        episodes += 1
        closed_seen.update(closed)
        present = set().union(*looks.values())  # object types this room has (as far as it was seen)
        for otype in present:
            sources[otype].append(traj.trajectory_id)
            for receptacle, contents in looks.items():
                rtype = _kind_of(receptacle)
                looked[otype][rtype] += 1
                found[otype][rtype] += otype in contents
    closed_types = sorted(closed_seen)
    principles = []
    for otype in sorted(found):
        total_found, total_looked = sum(found[otype].values()), sum(looked[otype].values())
        if total_found < config.min_found:
            continue
        base = total_found / total_looked
        rates = {r: round((found[otype][r] + config.shrink * base) / (n + config.shrink), 6)
                 for r, n in looked[otype].items()}

        def value(rtype: str, rates: dict[str, float] = rates) -> float:
            return rates[rtype] / (2.0 if rtype in closed_seen else 1.0)

        order = sorted(rates, key=lambda r: (-value(r), r))
        named = [r for r in order if found[otype][r] > 0][: config.top]
        places = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " or " + named[-1]
        article = "An" if otype[:1] in "aeiou" else "A"
        text = f"{article} {otype} is most often found in/on a {places}; look there first."
        data = {
            "kind": SEARCH_ORDER, "object": otype, "order": order, "base_rate": round(base, 6),
            "rates": {r: rates[r] for r in order}, "found": dict(found[otype]),
            "looked": dict(looked[otype]), "closed": [r for r in closed_types if r in rates], "episodes": episodes,
        }
        principles.append(Principle.new(
            text, "guiding", "household", key=f"household/search-order/{otype}", data=data,
            source_trajectories=sources[otype],
            note=f"mined: {total_found} sightings of {otype} in {total_looked} receptacles looked at"))
    return principles


# ---- cautionary -----------------------------------------------------------------------------------


def _no_effect(step: Step) -> bool:
    obs = step.next_observation.strip()
    return not step.valid or obs == _NOTHING_HAPPENS or bool(_ERROR.search(obs))


def _effect_kind(step: Step, code: bool) -> str:
    """What kind of action had no effect: its verb (text actions) or the error it raised (code)."""
    if code:
        match = _ERROR.search(step.next_observation)
        return match.group("kind") if match else "invalid code"
    words = written_action(step).split()
    if not words:
        return "empty action"
    return " ".join(words[:2]) if words[0] == "go" else words[0]


# A refused command is stored with an empty action; what the agent wrote is what it repeats.
def _repeats_ineffective(traj: Trajectory) -> str | None:
    tried: set[str] = set()
    for step in traj.steps:
        action = written_action(step)
        if action and action in tried:
            return action
        if _no_effect(step):
            tried.add(action)
    return None


def _loop(traj: Trajectory, repeats: int) -> str | None:
    counts = Counter(action for step in traj.steps if (action := written_action(step)))
    action, n = counts.most_common(1)[0] if counts else ("", 0)
    return action if n >= repeats else None


def _short(action: str, limit: int = 60) -> str:
    action = " ".join(action.split())
    return action if len(action) <= limit else action[: limit - 3] + "..."


def cautionary_principles(trajectories: Iterable[Trajectory], config: MinerConfig | None = None) -> list[Principle]:
    """Repeated ineffective actions, loops and the most often ineffective kinds of action in failures."""
    config = config or MinerConfig()
    trajs = list(trajectories)
    if not trajs:
        return []
    env = trajs[0].env
    code = is_code(env)
    failed = [t for t in trajs if not t.success]
    won = [t for t in trajs if t.success]
    principles = []

    def pattern(name: str, detect, text_of) -> None:
        hits = {t.trajectory_id: found for t in failed if (found := detect(t)) is not None}
        wins = sum(detect(t) is not None for t in won)
        if len(hits) < config.min_support or len(hits) <= wins:
            return
        example = Counter(hits.values()).most_common(1)[0][0]
        rate = len(hits) / (len(hits) + wins)
        principles.append(Principle.new(
            text_of(_short(example), len(hits), len(hits) + wins), "cautionary", env, key=f"{env}/caution/{name}",
            data={"kind": name, "failed_episodes": len(hits), "episodes": len(hits) + wins,
                  "failure_rate": round(rate, 4), "example": example},
            source_trajectories=list(hits), note=f"mined: {len(hits)} failed episodes"))

    no_effect = "an error" if code else "'Nothing happens.'"
    pattern("repeated-invalid", _repeats_ineffective, lambda ex, n, m: (
        f"An action that got {no_effect} will not work when repeated (e.g. '{ex}'): "
        f"{n} of {m} episodes that repeated one failed. Try a different action instead."))
    pattern("loop", lambda t: _loop(t, config.loop_repeats), lambda ex, n, m: (
        f"Taking the same action {config.loop_repeats} or more times (e.g. '{ex}') led to failure in {n} of "
        f"{m} episodes; if an action did not help twice, do something else."))

    kinds: Counter[str] = Counter()
    examples: dict[str, Counter[str]] = defaultdict(Counter)
    episodes_with: dict[str, set[str]] = defaultdict(set)
    for traj in failed:
        for step in traj.steps:
            if _no_effect(step):
                kind = _effect_kind(step, code)
                kinds[kind] += 1
                examples[kind][_short(written_action(step))] += 1
                episodes_with[kind].add(traj.trajectory_id)
    for kind, n in kinds.most_common(config.max_invalid_kinds):
        if len(episodes_with[kind]) < config.min_support:
            continue
        example = examples[kind].most_common(1)[0][0]
        if code:
            text = (f"Code that raised {kind} (e.g. '{example}') cost {n} steps in failed episodes: "
                    "read the error and fix the code before running it again.")
        else:
            text = (f"'{kind}' actions often had no effect in failed episodes ({n} times, e.g. '{example}'): "
                    f"use '{kind}' only as written in the admissible actions.")
        principles.append(Principle.new(
            text, "cautionary", env, key=f"{env}/caution/no-effect/{kind}",
            data={"kind": "no_effect", "action_kind": kind, "steps": n, "failed_episodes": len(episodes_with[kind]),
                  "example": example},
            source_trajectories=sorted(episodes_with[kind]), note=f"mined: {n} ineffective steps"))
    return principles


# ---- tool sequences -------------------------------------------------------------------------------

_DESCRIBE = {
    "search(question)": "search a name from the question",
    "search(results)": "search a name read in the earlier results",
    "search(other)": "search with other words",
    "final_answer": "call final_answer",
    "code": "compute the result in code and print it",
}


def _calls(code: str) -> list[ast.Call]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    return sorted(calls, key=lambda c: (c.lineno, c.col_offset))


def _step_signature(code: str, goal: str, seen: str) -> str:
    """The tools one code action calls, in order: e.g. 'search(question)', 'final_answer', 'code'."""
    parts = []
    for call in _calls(code):
        name = call.func.id  # type: ignore[attr-defined]
        if name in _NOT_TOOLS:
            continue
        if name == "search":
            arg = call.args[0] if call.args else None
            query = arg.value.casefold() if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else ""
            where = ("question" if query and query in goal.casefold()
                     else "results" if query and query in seen.casefold() else "other")
            name = f"search({where})"
        if not parts or parts[-1] != name:
            parts.append(name)
    return "+".join(parts) or "code"


def _signature(traj: Trajectory) -> tuple[str, ...]:
    seen = ""
    signature = []
    for step in traj.steps:
        signature.append(_step_signature(step.action, traj.goal, seen))
        seen += "\n" + step.next_observation
    return tuple(signature)


def _describe(signature: tuple[str, ...]) -> str:
    steps = []
    for part in signature:
        steps.append(" and ".join(_DESCRIBE.get(p, f"call {p}") for p in part.split("+")))
    return ", then ".join(steps)


def tool_sequence_principles(trajectories: Iterable[Trajectory],
                             config: MinerConfig | None = None) -> list[Principle]:
    """Per task type of a code environment: the tool-call sequence that succeeded most often."""
    config = config or MinerConfig()
    by_type: dict[str, list[Trajectory]] = defaultdict(list)
    for traj in trajectories:
        by_type[traj.task_type].append(traj)
    principles = []
    for task_type, group in sorted(by_type.items()):
        signatures = {t.trajectory_id: _signature(t) for t in group}
        wins = Counter(signatures[t.trajectory_id] for t in group if t.success)
        if not wins:
            continue
        best, successes = max(wins.items(), key=lambda kv: (kv[1], -len(kv[0])))
        if successes < config.min_support:
            continue
        uses = sum(sig == best for sig in signatures.values())
        env = group[0].env
        text = (f"For {task_type} tasks: {_describe(best)}. This sequence solved {successes} of {uses} "
                "episodes that followed it.")
        principles.append(Principle.new(
            text, "guiding", env, task_type, key=f"{env}/tool-sequence/{task_type}",
            data={"kind": "tool_sequence", "sequence": list(best), "successes": successes, "uses": uses},
            source_trajectories=[t.trajectory_id for t in group if t.success and signatures[t.trajectory_id] == best],
            note=f"mined: {successes} successful episodes"))
    return principles
