"""Model references: the built-in demo model (built once, concurrency-safe), pass-through refs, dtypes."""

from __future__ import annotations

import json
import os
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


@pytest.mark.slow
def test_concurrent_first_use_builds_once(tmp_path):
    """Two processes resolving the demo model at once into an empty cache both get the same, complete folder."""
    code = (
        "import json, logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout);"
        "from reer_hf.core.models import ensure_demo_model; from transformers import AutoModelForCausalLM;"
        "p = ensure_demo_model(); m = AutoModelForCausalLM.from_pretrained(p);"
        "print(json.dumps({'path': str(p), 'params': sum(x.numel() for x in m.parameters())}))"
    )
    env = {**os.environ, "REER_HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert results[0] == results[1] and results[0]["params"] == 134_515_008
    assert sum("Dequantizing" in out + err for out, err in outs) == 1  # one builder; the other waited and reused
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
