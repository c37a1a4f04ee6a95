"""Regional ``torch.compile`` of the scorer model's elementwise blocks: its RMSNorms, gated MLPs and rotary embedding.

Why: between its matmuls a decoder layer spends about a quarter of a CPU forward pass on elementwise work, each op a
pass of its own over memory (RMSNorm's fp32 round trip alone is six, SiLU-times-up two, the rotary embedding five).
Inductor fuses each block into one or two loops. Attention and the KV-cache update stay eager: the packed attention
of :mod:`reer_hf.attention` is data-dependent Python, and a compiled cache update would recompile for every layer.
One compiled function per block class serves every layer, with dynamic shapes, so the lengths that change from call
to call do not recompile.

Fused kernels round differently from eager ones in bf16 (as any kernel change does); in fp32 they agree to ~1e-7.
Where compiling fails (no C++ compiler for inductor, an unsupported backend), :func:`probe` says so once and the
scorer runs eagerly.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import types

import torch

logger = logging.getLogger(__name__)
ROPE_FUNCTION = "apply_rotary_pos_emb"
PROBE_TOKENS = 13


def _is_block(module: torch.nn.Module) -> bool:
    name = type(module).__name__
    return name.endswith("RMSNorm") or (name.endswith("MLP") and hasattr(module, "down_proj"))


@functools.cache
def _compiled(function):
    return torch.compile(function, dynamic=True)


def _rope_modules(model: torch.nn.Module) -> list[types.ModuleType]:
    """The modeling modules whose attention calls a module-level ``apply_rotary_pos_emb``."""
    found = {}
    for module in model.modules():
        if type(module).__name__.endswith("Attention"):
            home = sys.modules.get(type(module).__module__)
            if home is not None and callable(getattr(home, ROPE_FUNCTION, None)):
                found[home.__name__] = home
    return list(found.values())


@contextlib.contextmanager
def using(model: torch.nn.Module, enabled: bool = True):
    """Inside the block, ``model``'s norms, MLPs and rotary embedding run compiled; afterwards they are restored.

    Modules that already carry an instance-level ``forward`` (accelerate's offload hooks, an enclosing ``using``) are
    left alone.
    """
    if not enabled:
        yield False
        return
    blocks = [m for m in model.modules() if _is_block(m) and "forward" not in m.__dict__]
    homes = [h for h in _rope_modules(model) if not getattr(getattr(h, ROPE_FUNCTION), "_reer_fused", False)]
    originals = {home: getattr(home, ROPE_FUNCTION) for home in homes}
    try:
        for module in blocks:
            module.forward = types.MethodType(_compiled(type(module).forward), module)
        for home, function in originals.items():
            fused = _compiled(function)
            fused._reer_fused = True
            setattr(home, ROPE_FUNCTION, fused)
        yield True
    finally:
        for module in blocks:
            module.__dict__.pop("forward", None)
        for home, function in originals.items():
            setattr(home, ROPE_FUNCTION, function)


def probe(model: torch.nn.Module) -> bool:
    """Compile the blocks with a short forward pass (the compile cost is paid here, once per model class and dtype);
    ``False``, with a warning, where compiling fails here.

    The probe is 13 tokens long, a length no head count or width shares: dynamo would otherwise assume the two stay
    equal ("duck sizing") and recompile at the first real length."""
    backbone = getattr(model, model.base_model_prefix)
    device = next(model.parameters()).device
    try:
        with torch.inference_mode(), using(model):
            backbone(input_ids=torch.arange(PROBE_TOKENS, device=device).unsqueeze(0))
    except Exception as err:  # inductor raises many kinds (no compiler, lowering, backend); all mean "run eagerly"
        logger.warning(
            "scorer_compile: torch.compile failed here, so the scorer runs eagerly (%s: %s)",
            type(err).__name__,
            str(err).splitlines()[0][:300] if str(err) else "",
        )
        return False
    return True
