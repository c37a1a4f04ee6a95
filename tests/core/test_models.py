"""Model references: the built-in demo model (built once, concurrency-safe), pass-through refs, dtypes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from reer_hf.core import models
from reer_hf.core.models import DEMO_INSTALL, resolve_dtype, resolve_model


def test_other_refs_pass_through(tmp_path):
    assert resolve_model("Qwen/Qwen3-8B-Base") == "Qwen/Qwen3-8B-Base"
    assert resolve_model(str(tmp_path)) == str(tmp_path)


def test_dtype_names():
    assert resolve_dtype("bf16") is torch.bfloat16 and resolve_dtype("float32") is torch.float32
    assert resolve_dtype("auto", "cpu") in (torch.bfloat16, torch.float32)
    with pytest.raises(ValueError, match="Unknown dtype"):
        resolve_dtype("int3")


def test_missing_demo_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("REER_HF_HOME", str(tmp_path))
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError) as err:
        resolve_model("builtin:smollm2-135m")
    assert DEMO_INSTALL in str(err.value)


@pytest.mark.slow
def test_demo_model_folder(demo_model_dir):
    from transformers import AutoConfig, AutoTokenizer

    assert (demo_model_dir / "model.safetensors").is_file()
    config = AutoConfig.from_pretrained(demo_model_dir)
    assert config.model_type == "llama" and config.vocab_size == 49152 and config.dtype == torch.bfloat16
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    assert tokenizer.eos_token == "<|im_end|>" and "{% generation %}" in tokenizer.chat_template.replace("-", "")
    chat = [
        {"role": "system", "content": "You are a writer."},
        {"role": "user", "content": "Write one line."},
        {"role": "assistant", "content": "<think>\nplan\n</think>\nA line."},
    ]
    out = tokenizer.apply_chat_template(chat, return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(trained) == "<think>\nplan\n</think>\nA line.<|im_end|>"


#: Two processes build the same folder at once; the builder takes long enough for the second one to arrive mid-build.
BUILDER = """
import json, sys, time
from reer_hf.core.cache import build_once

def build(tmp):
    print("building", flush=True)
    time.sleep(1.0)
    (tmp / "weights.txt").write_text("complete")

path = build_once(sys.argv[1], build, note="test")
print(json.dumps({"path": str(path), "weights": (path / "weights.txt").read_text()}))
"""


@pytest.mark.slow
def test_concurrent_first_use_builds_once(tmp_path):
    """Two processes asking for the same folder at once into an empty cache: one builds, the other waits and reuses
    it; both get the same complete folder and nothing half-written is left (the demo model is built this way)."""
    target = tmp_path / "cache" / "model"
    procs = [
        subprocess.Popen([sys.executable, "-c", BUILDER, str(target)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sum(out.count("building") for out in outs) == 1  # one builder; the other waited and reused
    results = [json.loads(out.strip().splitlines()[-1]) for out in outs]
    assert results[0] == results[1] == {"path": str(target), "weights": "complete"}
    assert sorted(p.name for p in target.parent.iterdir()) == ["model", "model.lock"]


def test_a_failed_build_leaves_nothing_that_looks_complete(tmp_path):
    from reer_hf.core.cache import COMPLETE_MARKER, build_once

    target = tmp_path / "model"

    def crash(tmp):
        (tmp / "half.bin").write_text("x")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError, match="mid-build"):
        build_once(target, crash)
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] == ["model.lock"]
    target.mkdir()  # a leftover folder without the marker is rebuilt, not trusted
    build_once(target, lambda tmp: (tmp / "w.bin").write_text("ok"))
    assert (target / "w.bin").read_text() == "ok" and (target / COMPLETE_MARKER).is_file()
    assert build_once(target, crash) == target  # complete: never built again


def test_a_link_to_a_folder_not_built_yet_is_built_where_it_points(tmp_path):
    """How the tests share one demo model build per machine: each session's cache links to it."""
    from reer_hf.core.cache import build_once

    shared, link = tmp_path / "shared" / "model", tmp_path / "session" / "model"
    link.parent.mkdir()
    link.symlink_to(shared, target_is_directory=True)
    built = build_once(link, lambda tmp: (tmp / "w.bin").write_text("ok"))
    assert built == shared and (shared / "w.bin").read_text() == "ok"
    assert link.is_symlink() and (link / "w.bin").read_text() == "ok"
