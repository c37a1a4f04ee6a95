"""The mask-free causal attention equals dense-masked attention, with and without a cached past and GQA."""

import pytest
import torch
import torch.nn.functional as F

from reer_hf.scoring import attention
from reer_hf.scoring.attention import causal_attention, supports


@pytest.mark.parametrize("native_gqa", [True, False])
@pytest.mark.parametrize("q_len,k_len,groups", [(7, 7, 1), (5, 12, 1), (9, 30, 2), (1, 4, 2), (16, 16, 4), (6, 20, 3)])
def test_matches_dense_bottom_right_mask(q_len, k_len, groups, native_gqa, monkeypatch):
    if native_gqa and not attention._native_gqa():
        pytest.skip("this torch's CPU flash kernel needs as many key heads as query heads")
    monkeypatch.setattr(attention, "_native_gqa", lambda: native_gqa)
    torch.manual_seed(q_len * k_len)
    heads = 8 if groups != 3 else 9
    q = torch.randn(2, heads, q_len, 16)
    k, v = torch.randn(2, heads // groups, k_len, 16), torch.randn(2, heads // groups, k_len, 16)
    past = k_len - q_len
    mask = torch.arange(k_len)[None, :] <= torch.arange(q_len)[:, None] + past
    ref = F.scaled_dot_product_attention(
        q, k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1), attn_mask=mask
    )
    got = causal_attention(q.transpose(1, 2).contiguous().transpose(1, 2), k, v, scale=None)  # non-contiguous q
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_supported_architectures(tiny_model_dir):
    from transformers import AutoConfig, MistralConfig

    assert supports(AutoConfig.from_pretrained(tiny_model_dir))
    assert not supports(MistralConfig(sliding_window=4096))


def test_bf16_merge_stays_close_to_fp32():
    """In bf16 the two halves merge in the run dtype; the result stays within bf16 rounding of the fp32 attention."""
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 9, 40, 64), torch.randn(1, 3, 100, 64), torch.randn(1, 3, 100, 64)
    ref = causal_attention(q, k, v, scale=None)
    got = causal_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), scale=None)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), ref, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("native_gqa", [True, False])
@pytest.mark.parametrize("past", [0, 5])
def test_packed_segments_match_dense_mask(past, native_gqa, monkeypatch):
    """A prefix extension and two candidates packed after a cache: each sees the shared keys and causally itself."""
    if native_gqa and not attention._native_gqa():
        pytest.skip("this torch's CPU flash kernel needs as many key heads as query heads")
    monkeypatch.setattr(attention, "_native_gqa", lambda: native_gqa)
    torch.manual_seed(past)
    ext, a, b = 3, 4, 6
    prefix = past + ext
    segments = [
        attention.Segment(0, ext, past, past),
        attention.Segment(ext, ext + a, prefix, past + ext),
        attention.Segment(ext + a, ext + a + b, prefix, past + ext + a),
    ]
    n, keys = ext + a + b, past + ext + a + b
    q, k, v = torch.randn(1, 6, n, 16), torch.randn(1, 2, keys, 16), torch.randn(1, 2, keys, 16)
    mask = torch.zeros(n, keys, dtype=torch.bool)
    for seg in segments:
        for r in range(seg.start, seg.end):
            mask[r, : seg.shared] = True
            mask[r, seg.own : seg.own + r - seg.start + 1] = True
    ref = F.scaled_dot_product_attention(q, k.repeat_interleave(3, 1), v.repeat_interleave(3, 1), attn_mask=mask)
    got = attention.packed_attention(q, k, v, None, segments)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    assert sum(seg.pairs for seg in segments) == int(mask.sum())
