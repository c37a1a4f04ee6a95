"""The mask-free causal attention equals dense-masked attention, with and without a cached past and GQA."""

import pytest
import torch
import torch.nn.functional as F

from reer_hf.attention import causal_attention, supports


@pytest.mark.parametrize("q_len,k_len,groups", [(7, 7, 1), (5, 12, 1), (9, 30, 2), (1, 4, 2), (16, 16, 4)])
def test_matches_dense_bottom_right_mask(q_len, k_len, groups):
    torch.manual_seed(q_len * k_len)
    q = torch.randn(2, 8, q_len, 16)
    k, v = torch.randn(2, 8 // groups, k_len, 16), torch.randn(2, 8 // groups, k_len, 16)
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
