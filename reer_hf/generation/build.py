"""The generator backend a ``GeneratorConfig`` names."""

from __future__ import annotations

from reer_hf.core.models import load_causal_lm
from reer_hf.core.threads import set_torch_threads
from reer_hf.generation.base import Generator
from reer_hf.generation.config import GeneratorConfig
from reer_hf.generation.openai_backend import OpenAIGenerator
from reer_hf.generation.transformers_backend import TransformersGenerator
from reer_hf.generation.vllm_backend import VLLMGenerator


def build_generator(config: GeneratorConfig, shared: tuple | None = None) -> Generator:
    """The backend named by ``config``; ``shared`` is an already loaded ``(model, tokenizer)`` to reuse (the demo
    runs one model in both roles)."""
    if config.generator_backend == "transformers":
        set_torch_threads(config.generator_torch_threads)
        if shared is None:
            shared = load_causal_lm(
                config.generator_model,
                dtype=config.generator_dtype,
                device=config.generator_device,
                attn_implementation=config.generator_attn_implementation,
            )
        model, tokenizer = shared
        return TransformersGenerator(
            model, tokenizer, batch_size=config.generator_batch_size, carry_prompts=config.generator_carry_prompts
        )
    if config.generator_backend == "vllm":
        return VLLMGenerator(config)
    return OpenAIGenerator(config)
