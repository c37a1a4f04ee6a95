"""Causal attention for right-padded batches that continue from a KV cache, without materialized masks.

The scorer only ever feeds right-padded rows, possibly continuing a cached prefix: query ``i`` of a block of ``Q``
queries over ``K`` keys sees keys ``j <= i + K - Q`` (causal, aligned bottom-right). Real tokens never see the
padding (it sits after them), so no padding mask is needed. Transformers' default path materializes that mask as a
dense tensor, and a dense mask keeps SDPA from skipping the masked triangle: on CPUs that made a cached suffix pass
slower than recomputing the whole sequence. Here the past keys are attended without a mask, the block's own keys with
the plain causal kernel, and the two halves merge exactly through their log-sum-exp (as in cascade attention).

On CPUs the scorer also packs the K candidates of a search step into one sequence after their shared prefix
(:func:`packed`): each candidate's tokens attend to the shared keys and causally to their own, never to another
candidate's. A matmul over all candidates at once runs up to twice as fast per token on CPUs as one per candidate,
and the shared keys are read once for all of them. The shared keys are a multiple of :data:`KEY_ALIGN` long (the
scorer cuts its shared prefixes to that): the CPU flash kernel takes a slower path for the whole call when the key
length is not, and the shared call is the non-causal one where every key length is used as is.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

ATTN_IMPLEMENTATION = "reer_causal"
# Key lengths that keep torch's CPU flash kernel on its fast path: over 3000 queries, 700 or 900 keys cost 25-60% more
# per query-key pair than 704 or 896 (bf16, AMX; benchmarks/bench_scorer.py shows it end to end).
KEY_ALIGN = 32
_PACKED: contextvars.ContextVar[tuple[Segment, ...] | None] = contextvars.ContextVar("reer_packed", default=None)
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
    # The past needs no mask and the block's own keys the plain causal kernel: one packed segment.
    past = k_len - q_len
    return packed_attention(query, key, value, scale, (Segment(0, q_len, past, past),))


@functools.cache
def _native_gqa() -> bool:
    """Whether this torch's CPU flash kernel takes fewer key/value heads than query heads (saves a KV copy)."""
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    generator = torch.Generator().manual_seed(0)
    q, kv = torch.randn(1, 4, 3, 8, generator=generator), torch.randn(1, 2, 3, 8, generator=generator)
    try:
        got = flash(q, kv, kv, 0.0, True)[0]
    except RuntimeError:
        return False
    return torch.allclose(got, flash(q, _repeat_kv(kv, 2), _repeat_kv(kv, 2), 0.0, True)[0], atol=1e-6)


@dataclass(frozen=True)
class Segment:
    """A run of packed queries ``[start, end)`` (block coordinates) whose keys are the shared keys ``[0, shared)``
    plus their own, causally, from ``own`` on (key coordinates: the cache's past comes first)."""

    start: int
    end: int
    shared: int
    own: int

    @property
    def pairs(self) -> int:
        """Query-key pairs its attention computes."""
        n = self.end - self.start
        return n * self.shared + n * (n + 1) // 2


@contextlib.contextmanager
def packed(segments: list[Segment]):
    """Inside the block, every attention call sees its query block as these segments (see :func:`packed_attention`)."""
    token = _PACKED.set(tuple(segments))
    try:
        yield
    finally:
        _PACKED.reset(token)


def packed_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float | None, segments):
    """Attention of a packed block (batch 1): each segment attends to its shared keys and causally to its own.

    Consecutive segments with the same shared keys make one call over those keys (their queries and the query heads
    of a key head folded into one block), then each segment's own keys get one causal call and the halves merge
    through their log-sum-exp, as in :func:`causal_attention`.
    """
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    b, h, _, d = query.shape
    groups = h // key.shape[1]
    if len(segments) == 1 and segments[0].end - segments[0].start == query.shape[2]:
        out = None  # one segment covers the block: its result is the output
    else:
        out = torch.empty_like(query)
    i = 0
    while i < len(segments):
        j = i
        while j + 1 < len(segments) and segments[j + 1].shared == segments[i].shared:
            j += 1
        lo, hi, shared = segments[i].start, segments[j].end, segments[i].shared
        if shared:  # the shared keys need no mask: every query of the run sees all of them
            rows = query[:, :, lo:hi].reshape(b, h // groups, groups * (hi - lo), d)
            out_past, lse_past = flash(rows, key[:, :, :shared], value[:, :, :shared], 0.0, False, scale=scale)
            out_past, lse_past = out_past.reshape(b, h, hi - lo, d), lse_past.reshape(b, h, hi - lo)
        for seg in segments[i : j + 1]:
            n = seg.end - seg.start
            own_k, own_v = key[:, :, seg.own : seg.own + n], value[:, :, seg.own : seg.own + n]
            if groups > 1 and not _native_gqa():
                own_k, own_v = _repeat_kv(own_k, groups), _repeat_kv(own_v, groups)
            own_out, own_lse = flash(query[:, :, seg.start : seg.end], own_k, own_v, 0.0, True, scale=scale)
            if shared:  # softmax over both halves = own + w * (past - own), w = sigmoid(lse_past - lse_own)
                a, z = seg.start - lo, seg.end - lo
                weight = torch.sigmoid(lse_past[:, :, a:z] - own_lse).unsqueeze(-1).to(query.dtype)
                own_out = torch.lerp(own_out, out_past[:, :, a:z], weight)
            if out is None:
                return own_out
            out[:, :, seg.start : seg.end] = own_out
        i = j + 1
    return out


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
    segments = _PACKED.get()
    if segments is not None:
        out = packed_attention(query, key, value, scaling, segments)
    else:
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
