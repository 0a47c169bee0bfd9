"""Training under ``accelerate launch`` or ``torchrun``: which process does what.

Every process of a run trains, but only the main one reads the experience store, builds the
training data and (for a ``tiny`` student) builds the student into the output directory; the
others wait for it and receive the data (:func:`on_main`), then load the student it resolved
(:func:`shared_start`). After training, ``trainer.save_model`` gathers the weights (sharded under
ZeRO-3 or FSDP) and writes them once; the student card, the model card and the summary are
written by the main process alone. In a single process all of this is a plain function call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from agentkd.errors import AgentKDError

__all__ = ["MainProcessFailed", "is_main_process", "num_processes", "on_main", "shared_start", "wait_for_everyone"]

T = TypeVar("T")


class MainProcessFailed(AgentKDError, RuntimeError):
    """Raised on the other processes when the main one failed to build what they wait for (it reports why)."""


def _state() -> Any:
    """The process state, initialised (once) as the trainer's arguments will: CPU processes talk over gloo.

    Without ``cpu=True`` accelerate does not treat several CPU processes (``torchrun`` without GPUs)
    as one distributed run, and each would think it is the main one. ``TrainingArguments`` re-reads
    this state later and keeps its process group.
    """
    from accelerate import PartialState

    if PartialState._shared_state:
        return PartialState()
    import torch

    return PartialState(cpu=not torch.cuda.is_available())


def num_processes() -> int:
    """How many processes train together (1 without a launcher)."""
    return _state().num_processes


def is_main_process() -> bool:
    """Whether this is the process that reads the store and writes the results."""
    return _state().is_main_process


def wait_for_everyone() -> None:
    _state().wait_for_everyone()


def on_main(build: Callable[[], T]) -> T:
    """``build()`` on the main process only; every process returns its result.

    The others wait while it runs and receive the result pickled. An error on the main process
    is raised on every process (as :class:`MainProcessFailed` naming it on the others), so a bad store
    ends the whole run at once instead of leaving the other processes waiting.
    """
    state = _state()
    if state.num_processes == 1:
        return build()
    from accelerate.utils import broadcast_object_list

    payload: list[Any] = [None]
    error: BaseException | None = None
    if state.is_main_process:
        try:
            payload = [("ok", build())]
        except Exception as exc:  # sent to the others, then raised here
            error = exc
            payload = [("error", f"{type(exc).__name__}: {exc}")]
    broadcast_object_list(payload, from_process=0)
    if error is not None:
        raise error
    kind, value = payload[0]
    if kind == "error":
        raise MainProcessFailed(f"the main process failed: {value}")
    return value


def shared_start(build: Callable[[], tuple[Any, Any, Any, T]], spec: str, out_dir: str | Path, *,
                 allow_download: bool = False) -> tuple[Any, Any, Any, T]:
    """``(model, tokenizer, card, data)`` on every process, with ``build`` run on the main one only.

    ``build`` resolves the student (building a ``tiny`` one into ``out_dir``, converting a
    packaged one, downloading a hub one) and builds the training data; the other processes then
    load the same student — from ``out_dir`` for ``tiny``, else from ``spec`` — and receive the
    card and data.
    """
    held: dict[str, Any] = {}

    def main_part() -> tuple[Any, T]:
        model, tokenizer, card, data = build()
        held.update(model=model, tokenizer=tokenizer)
        return card, data

    card, data = on_main(main_part)
    if held:
        return held["model"], held["tokenizer"], card, data
    import torch

    from agentkd.models.student import load_student

    source = out_dir if spec == "tiny" or spec.startswith("tiny:") else spec
    model, tokenizer = load_student(source, dtype=torch.float32, device="cpu", allow_download=allow_download)
    return model, tokenizer, card, data
