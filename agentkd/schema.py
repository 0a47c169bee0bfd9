"""Versioned records shared by every stage of agentkd.

One set of pydantic models describes what an agent did: a :class:`Task` it was given, the
:class:`PolicyInfo` that acted, each :class:`Step` (with its self-consistency
:class:`Candidate` actions) and the whole :class:`Trajectory`. A :class:`Principle` is a reusable
lesson distilled from trajectories. The same JSON feeds the experience store, dataset exports,
training and the evaluation report, so these models are the contract between modules.

Compatibility rules:

* every record carries ``schema_version``; data written by a *newer* agentkd is refused with
  :class:`SchemaVersionError` instead of being silently misread, older data is accepted;
* unknown fields are ignored, so adding an optional field does not require a version bump;
* timestamps are always timezone-aware UTC (naive input is taken to be UTC);
* ids are deterministic (:func:`trajectory_id`, :func:`principle_id`), so re-running the same
  task with the same policy and seed upserts the same record instead of duplicating it.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator

from agentkd.errors import AgentKDError

__all__ = [
    "SCHEMA_VERSION",
    "SEARCH_ORDER",
    "Candidate",
    "PolicyInfo",
    "Principle",
    "PrincipleChange",
    "SchemaVersionError",
    "Step",
    "Task",
    "Trajectory",
    "principle_id",
    "trajectory_id",
    "utc_now",
]

#: Version of the on-disk record format. Bump it when a field changes meaning or is removed.
SCHEMA_VERSION = 1

# Hex digits of sha256 kept in ids: 64 bits is collision-free at any realistic store size
# while keeping ids short enough to read in logs.
_ID_HASH_CHARS = 16


class SchemaVersionError(AgentKDError, ValueError):
    """A record was written by a newer agentkd than the one reading it."""

    def __init__(self, found: int, supported: int = SCHEMA_VERSION) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"record has schema_version {found}, but this agentkd supports up to schema_version "
            f"{supported}; upgrade agentkd to read it"
        )


def utc_now() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def _to_utc(value: datetime) -> datetime:
    # Naive datetimes are assumed to be UTC so that records from different machines compare.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UTCDateTime = Annotated[datetime, AfterValidator(_to_utc)]


def _check_json_serialisable(value: dict[str, Any]) -> dict[str, Any]:
    # Params are hashed into ids and stored as JSON; anything else would break both silently.
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"params must be JSON-serialisable: {exc}") from exc
    return value


JSONParams = Annotated[dict[str, Any], AfterValidator(_check_json_serialisable)]


def _find_schema_error(exc: ValidationError) -> SchemaVersionError | None:
    # pydantic wraps ValueErrors raised in validators; dig ours back out so callers see it.
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, SchemaVersionError):
            return cause
    return None


class _Record(BaseModel):
    """Base of all records: carries and checks ``schema_version``."""

    schema_version: int = SCHEMA_VERSION

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            if (found := _find_schema_error(exc)) is not None:
                raise found from exc
            raise

    @field_validator("schema_version")
    @classmethod
    def _not_from_the_future(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            raise SchemaVersionError(value)
        return value

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            if (found := _find_schema_error(exc)) is not None:
                raise found from exc
            raise

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as exc:
            if (found := _find_schema_error(exc)) is not None:
                raise found from exc
            raise

    def to_json(self, **kwargs: Any) -> str:
        """Serialise to a JSON string (keyword arguments go to ``model_dump_json``)."""
        return self.model_dump_json(**kwargs)

    @classmethod
    def from_json(cls, data: str | bytes | bytearray) -> Self:
        """Parse a JSON string written by :meth:`to_json`."""
        return cls.model_validate_json(data)


class Task(_Record):
    """One task instance: enough to rebuild it deterministically in its environment."""

    task_id: str
    env: str  # environment name, e.g. "household"
    split: str
    task_type: str
    goal: str  # natural-language goal shown to the agent
    params: JSONParams  # env-specific parameters for a deterministic rebuild
    index: int | None = None  # position within its split


class PolicyInfo(_Record):
    """Who acted: enough to tell two runs apart (and part of the trajectory id)."""

    kind: str  # "expert", "chat_model", "hf_model", ...
    name: str  # model name or path
    params: JSONParams = Field(default_factory=dict)  # sampling settings, wrappers, ...


class Candidate(_Record):
    """One sampled action in self-consistent action generation."""

    action: str
    raw: str = ""  # model text the action was parsed from
    valid: bool = True  # False when it failed to parse or was not admissible
    votes: int = 0  # how many samples agreed on this action
    logprob: float | None = None


class Step(_Record):
    """One thought–action–observation turn of an episode."""

    index: int
    observation: str  # what the agent saw before acting
    thought: str = ""
    action: str
    raw_output: str = ""  # model text exactly as produced, for training and debugging
    valid: bool = True  # False when the output could not be parsed or the action was not admissible
    candidates: list[Candidate] = Field(default_factory=list)
    deferred: bool = False  # the step was handed to the teacher (cascade)
    next_observation: str = ""
    reward: float = 0.0
    done: bool = False
    admissible_actions: list[str] | None = None  # None where the action space is open-ended
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    info: dict[str, Any] = Field(default_factory=dict)


def _canonical_json(value: Any) -> str:
    # Sorted keys and fixed separators: the same value always hashes to the same id.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _slug(text: str, max_len: int = 48) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug[:max_len] or "x"


def _digest(value: Any) -> str:
    return hashlib.sha256(_canonical_json(value).encode("utf-8")).hexdigest()[:_ID_HASH_CHARS]


def trajectory_id(task_id: str, policy: PolicyInfo, seed: int) -> str:
    """Deterministic id of one run of ``policy`` on ``task_id`` with ``seed``.

    The id is a readable slug of the task id plus a sha256 digest of the task id, the policy's
    kind, name and params, and the seed. Re-running the same triple gives the same id (the store
    upserts); changing any of them, including any policy param, gives a different id.
    """
    payload = {
        "task_id": task_id,
        "policy_kind": policy.kind,
        "policy_name": policy.name,
        "policy_params": policy.params,
        "seed": seed,
    }
    return f"{_slug(task_id)}-{_digest(payload)}"


def _normalise_principle_text(text: str) -> str:
    # Whitespace and case differences do not make a new lesson.
    return " ".join(text.split()).casefold()


def principle_id(text: str) -> str:
    """Deterministic id of a principle, from its text (whitespace and case insensitive)."""
    return f"p-{_digest(_normalise_principle_text(text))}"


class Trajectory(_Record):
    """A whole episode: the task, who acted, every step, the outcome and its cost."""

    trajectory_id: str
    env: str
    task_id: str
    split: str
    task_type: str
    goal: str
    policy: PolicyInfo
    seed: int = 0
    steps: list[Step] = Field(default_factory=list)
    success: bool = False
    reward: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    wall_time_s: float = 0.0
    started_at: UTCDateTime = Field(default_factory=utc_now)
    finished_at: UTCDateTime | None = None  # None while the episode is running
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def start(cls, task: Task, policy: PolicyInfo, seed: int = 0, **metadata: Any) -> Self:
        """Open a trajectory for ``task`` run by ``policy``, with its deterministic id."""
        return cls(
            trajectory_id=trajectory_id(task.task_id, policy, seed),
            env=task.env,
            task_id=task.task_id,
            split=task.split,
            task_type=task.task_type,
            goal=task.goal,
            policy=policy,
            seed=seed,
            started_at=utc_now(),
            metadata=metadata,
        )

    @property
    def num_steps(self) -> int:
        return len(self.steps)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def finish(self, success: bool, reward: float | None = None) -> Self:
        """Close the episode: record the outcome, the end time and the token totals.

        ``reward`` defaults to 1.0 on success and 0.0 otherwise. Token totals are summed from the
        steps; ``wall_time_s`` is taken from the timestamps unless it was already measured.
        Returns ``self`` so calls can be chained.
        """
        self.finished_at = utc_now()
        self.success = success
        self.reward = float(success) if reward is None else float(reward)
        self.prompt_tokens = sum(step.prompt_tokens for step in self.steps)
        self.completion_tokens = sum(step.completion_tokens for step in self.steps)
        if not self.wall_time_s:
            self.wall_time_s = (self.finished_at - self.started_at).total_seconds()
        return self


#: What happened to a principle in one recorded change (see :attr:`Principle.history`).
PrincipleChangeKind = Literal["created", "updated", "merged", "absorbed", "credited", "pruned"]


class PrincipleChange(_Record):
    """One versioned change of a principle: what changed, when, and the facts behind it."""

    version: int  # the principle's version after this change
    at: UTCDateTime = Field(default_factory=utc_now)
    change: PrincipleChangeKind
    note: str = ""  # one line for people ("merged p-1234 (similarity 0.94)")
    details: JSONParams = Field(default_factory=dict)  # e.g. the replaced text, credited trajectory ids


#: ``data["kind"]`` of a mined search-order principle: the miner writes it, the household explorer reads it.
SEARCH_ORDER = "search_order"


class Principle(_Record):
    """A reusable lesson distilled from trajectories (guiding from successes, cautionary from failures).

    Counts follow the credit rule: ``usage_count`` and ``success_count`` change only for episodes in
    whose prompt the principle was actually shown. Every change bumps ``version`` and appends a
    :class:`PrincipleChange` to ``history``, so the record says how it came to be what it is.
    """

    principle_id: str
    text: str
    kind: Literal["guiding", "cautionary"]
    env: str
    task_type: str | None = None  # None: applies to every task type of the env
    source_trajectories: list[str] = Field(default_factory=list)
    usage_count: int = 0  # episodes in whose prompt it was shown
    success_count: int = 0  # of those, how many succeeded
    created_at: UTCDateTime = Field(default_factory=utc_now)
    updated_at: UTCDateTime = Field(default_factory=utc_now)
    version: int = 1  # bumped on every recorded change (see history)
    # Structured principles (mined statistics) have a key naming what they are about, e.g.
    # "household/search-order/mug": re-mining updates the same record, and different keys never merge.
    key: str | None = None
    data: JSONParams = Field(default_factory=dict)  # machine-readable content, e.g. a search order
    status: Literal["active", "pruned", "merged"] = "active"  # only active principles are retrieved
    merged_into: str | None = None  # for status "merged": the principle that absorbed this one
    history: list[PrincipleChange] = Field(default_factory=list)

    @classmethod
    def new(
        cls,
        text: str,
        kind: Literal["guiding", "cautionary"],
        env: str,
        task_type: str | None = None,
        source_trajectories: list[str] | None = None,
        *,
        key: str | None = None,
        data: dict[str, Any] | None = None,
        note: str = "",
    ) -> Self:
        """Create a principle whose id is derived from its key when it has one, else from its text."""
        now = utc_now()
        return cls(
            principle_id=principle_id(key if key is not None else text),
            text=text,
            kind=kind,
            env=env,
            task_type=task_type,
            source_trajectories=list(dict.fromkeys(source_trajectories or [])),
            created_at=now,
            updated_at=now,
            key=key,
            data=dict(data or {}),
            history=[PrincipleChange(version=1, at=now, change="created", note=note)],
        )

    @property
    def score(self) -> float:
        """Laplace-smoothed success rate (s+1)/(u+2): 0.5 for an untried principle."""
        return (self.success_count + 1) / (self.usage_count + 2)

    def record(self, change: PrincipleChangeKind, note: str = "", **details: Any) -> PrincipleChange:
        """Bump the version and append a change made now (call it after changing the fields)."""
        now = utc_now()
        self.version += 1
        self.updated_at = now
        entry = PrincipleChange(version=self.version, at=now, change=change, note=note, details=details)
        self.history.append(entry)
        return entry
