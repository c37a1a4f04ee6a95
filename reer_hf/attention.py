"""Causal attention for right-padded batches that continue from a KV cache, without materialized masks.

The scorer only ever feeds right-padded rows, possibly continuing a cached prefix: query ``i`` of a block of ``Q``
queries over ``K`` keys sees keys ``j <= i + K - Q`` (causal, aligned bottom-right). Real tokens never see the
padding (it sits after them), so no padding mask is needed. Transformers' default path materializes that mask as a
dense tensor, and a dense mask keeps SDPA from skipping the masked triangle: on CPUs that made a cached suffix pass
slower than recomputing the whole sequence. Here the past keys are attended without a mask, the block's own keys with
the plain causal kernel, and the two halves merge exactly through their log-sum-exp (as in cascade attention).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

ATTN_IMPLEMENTATION = "reer_causal"
# Architectures whose attention is plain causal softmax attention (no sliding window, soft-capping or sinks).
SUPPORTED_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral", "olmo2", "granite", "phi3", "smollm3"})


def _repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    if groups == 1:
        return x
    b, h, n, d = x.shape
    return x[:, :, None].expand(b, h, groups, n, d).reshape(b, h * groups, n, d)


def causal_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float | None) -> torch.Tensor:
    """Bottom-right-aligned causal attention of ``query`` [B, H, Q, D] over ``key``/``value`` [B, H, K, D], K >= Q."""
    q_len, k_len = query.shape[2], key.shape[2]
    groups = query.shape[1] // key.shape[1]
    if k_len == q_len:
        return F.scaled_dot_product_attention(
            query, key, value, is_causal=q_len > 1, scale=scale, enable_gqa=groups > 1
        )
    if query.device.type != "cpu":
        from torch.nn.attention.bias import causal_lower_right

        return F.scaled_dot_product_attention(
            query,
            _repeat_kv(key, groups),
            _repeat_kv(value, groups),
            attn_mask=causal_lower_right(q_len, k_len),
            scale=scale,
        )
    past = k_len - q_len
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    # The past needs no mask, so the query heads sharing a key head fold into one longer query block (no KV copy).
    b, h, _, d = query.shape
    folded = query.reshape(b, h // groups, groups * q_len, d)
    out_past, lse_past = flash(folded, key[:, :, :past], value[:, :, :past], 0.0, False, scale=scale)
    out_past, lse_past = out_past.reshape(b, h, q_len, d), lse_past.reshape(b, h, q_len)
    own_k, own_v = _repeat_kv(key[:, :, past:], groups), _repeat_kv(value[:, :, past:], groups)
    out_own, lse_own = flash(query, own_k, own_v, 0.0, True, scale=scale)
    # softmax over both halves = own + w * (past - own), with the past's share w = exp(lse_past - lse_all)
    # = sigmoid(lse_past - lse_own): one fused lerp in fp32 instead of five passes
    weight = torch.sigmoid(lse_past.float() - lse_own.float()).unsqueeze(-1)
    return torch.lerp(out_own.float(), out_past.float(), weight).to(query.dtype)


def reer_causal_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Transformers attention interface: ignores ``attention_mask`` (see the module docstring for why it may)."""
    out = causal_attention(query, key, value, scaling)
    return out.transpose(1, 2).contiguous(), None


def supports(config) -> bool:
    """Whether the model's attention is plain causal attention this kernel reproduces exactly."""
    sliding = getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True)
    layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
    return (
        config.model_type in SUPPORTED_MODEL_TYPES
        and not sliding
        and getattr(config, "attn_logit_softcapping", None) is None
        and layer_types == {"full_attention"}
    )


def register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_IMPLEMENTATION, reer_causal_attention_forward)


@contextlib.contextmanager
def using(model, enabled: bool = True):
    """Run ``model`` with this attention inside the block (only where :func:`supports` holds), then restore it."""
    config = model.config
    if not enabled or not supports(config):
        yield False
        return
    register()
    previous = config._attn_implementation
    config._attn_implementation = ATTN_IMPLEMENTATION
    try:
        yield True
    finally:
        config._attn_implementation = previous
