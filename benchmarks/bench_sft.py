"""Benchmark the DeepWriter SFT step per GPU: config_full.yaml's layout against config_full_fast.yaml's.

Random weights of the Qwen3-8B architecture (its dimensions, built from a config here: nothing is downloaded), bf16,
gradient checkpointing, the paper's max_length of 32768. Forward and backward only: a full fine-tune of 8B parameters
keeps 16 bytes of weights, gradients and AdamW states per parameter, which only ZeRO-3 across the node's 8 GPUs holds,
so one GPU measures the compute of a micro-batch, not an optimizer step. The loss is a chunked cross-entropy over the
hidden states (TRL's fused LM head does the same: the 151936-wide logits of 32K tokens never exist at once).

- plain (config_full.yaml): sdpa attention, one conversation per micro-batch;
- fast (config_full_fast.yaml): the first of --fast_attn that loads (flash_attention_2: flash-attn, or the Hub kernel
  through `kernels`), Liger's RMSNorm/SwiGLU/RoPE kernels when liger-kernel is installed, two conversations per
  micro-batch laid end to end (padding-free: position ids restart, TRL's sequence boundaries passed along).

Both see the same conversations (lengths spread over [max_length / 4, max_length]); then a worst case measures the
peak memory: one conversation of max_length (plain), two of them (fast). The last line of output is one JSON object.
Each variant reports the attention the model ran (`attn_implementation`) and whether Liger's kernels ran
(`liger_ran`); `fast_is_recipe` is true only when the fast variant ran config_full_fast.yaml's kernels (flash attention
and Liger): false, its speedup is a packed row's, not the recipe's (`fast_not_recipe` says why).

    python benchmarks/bench_sft.py --quick     # CPU: a tiny Qwen3, seconds
    python benchmarks/bench_sft.py             # one H100/H200: Qwen3-8B dimensions, 32768 tokens
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F
from bench_scorer import matmul_params, peak_bf16_flops  # the sibling benchmark's MFU helpers
from torch.utils.checkpoint import checkpoint
from transformers import AutoModelForCausalLM, Qwen3Config

from reer_hf.core.models import DEMO_MODEL, resolve_device, resolve_model

#: Qwen3-8B(-Base)'s dimensions, from its published config.
QWEN3_8B = dict(
    vocab_size=151936,
    hidden_size=4096,
    intermediate_size=12288,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    tie_word_embeddings=False,
)
TINY = dict(
    QWEN3_8B, vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4
)
TINY.update(num_key_value_heads=2, head_dim=16)
LOSS_CHUNK = 4096  # tokens per cross-entropy chunk


def build_model(dims: dict, dtype: torch.dtype, device: torch.device):
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: an 8B model inits in seconds there
        model = AutoModelForCausalLM.from_config(Qwen3Config(**dims), dtype=dtype, attn_implementation="sdpa")
    model.config.use_cache = False
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable  # <5.23
    enable({"use_reentrant": False})
    return model.train()


def conversation_lengths(n: int, max_length: int) -> list[int]:
    """``n`` lengths spread over [max_length / 4, max_length] (a golden-ratio sequence: even, deterministic)."""
    return [int(max_length * (0.25 + 0.75 * ((i * 0.6180339887) % 1.0))) for i in range(1, n + 1)]


def micro_batch(conversations: list[int], lengths: list[int], vocab: int, device: torch.device) -> dict:
    """The ``conversations`` (indices into ``lengths``, each with its own seeded random tokens) as one padding-free
    row: position ids restarting at each conversation, labels off at each start (nothing is predicted across a
    boundary), and the sequence bounds TRL's collator adds for flash attention when there are several."""
    parts = [torch.randint(0, vocab, (lengths[i],), generator=torch.Generator().manual_seed(i)) for i in conversations]
    ids = torch.cat(parts)[None]
    positions = torch.cat([torch.arange(len(part)) for part in parts])[None]
    labels = ids.clone()
    labels[positions == 0] = -100
    batch = {"input_ids": ids, "position_ids": positions, "labels": labels}
    if len(parts) > 1:
        sizes = [len(part) for part in parts]
        bounds = torch.tensor([0, *torch.tensor(sizes).cumsum(0).tolist()], dtype=torch.int32)
        batch.update(cu_seq_lens_q=bounds, cu_seq_lens_k=bounds, max_length_q=max(sizes), max_length_k=max(sizes))
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _chunk_loss(hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    logits = (hidden @ weight.T).float()
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum")


def forward_backward(model, batch: dict) -> tuple[float, int]:
    """One micro-batch's forward and backward; returns its summed token loss and its trained tokens."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    hidden = model.model(**inputs).last_hidden_state[:, :-1]
    targets = batch["labels"][:, 1:]
    weight = model.lm_head.weight
    total = sum(
        checkpoint(
            _chunk_loss, hidden[:, s : s + LOSS_CHUNK], targets[:, s : s + LOSS_CHUNK], weight, use_reentrant=False
        )
        for s in range(0, hidden.shape[1], LOSS_CHUNK)
    )
    count = int((targets != -100).sum())
    (total / count).backward()
    return total.item(), count


def attention_flops(model, lengths: list[int]) -> float:
    """Causal attention's forward + backward FLOPs: 6 x layers x (heads x head dim) x length^2 per conversation."""
    c = model.config
    return 6 * c.num_hidden_layers * c.num_attention_heads * c.head_dim * sum(n * n for n in lengths)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def run_variant(model, groups: list[list[int]], lengths: list[int], worst: int, device, params: int, peak) -> dict:
    """Warm up on the first group of conversations, time the others, then measure the peak memory of a micro-batch
    of ``worst`` conversations of ``lengths[-1]`` tokens (max_length)."""
    vocab = model.config.vocab_size
    forward_backward(model, micro_batch(groups[0], lengths, vocab, device))
    model.zero_grad(set_to_none=False)  # gradients stay allocated, as in training
    sync(device)
    start = time.perf_counter()
    loss, tokens, flops = 0.0, 0, 0.0
    for group in groups[1:]:
        summed, _ = forward_backward(model, micro_batch(group, lengths, vocab, device))
        sizes = [lengths[i] for i in group]
        loss += summed
        tokens += sum(sizes)
        flops += 6 * params * sum(sizes) + attention_flops(model, sizes)
    sync(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    forward_backward(model, micro_batch([len(lengths) - 1] * worst, lengths, vocab, device))
    sync(device)
    model.zero_grad(set_to_none=False)
    return {
        "micro_batches": len(groups) - 1,
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "mfu": round(flops / seconds / peak, 4) if peak else None,
        "summed_loss": loss,
        "peak_micro_batch_tokens": worst * lengths[-1],
        "peak_memory_gb": peak_memory(device),
    }


def run_fast(model, pairs, lengths, device, params, peak, candidates: list[str]) -> dict:
    """The fast variant with the first of ``candidates`` that loads and runs, and why each earlier one did not."""
    refused = {}
    for name in candidates:
        try:
            model.set_attn_implementation(name)
            result = run_variant(model, pairs, lengths, 2, device, params, peak)
        except Exception as err:  # a missing package, a Hub kernel out of reach, a kernel that fails: the next one
            refused[name] = f"{type(err).__name__}: {err}"[:300]
            model.zero_grad(set_to_none=False)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        ran = model.config._attn_implementation  # what the model ran: flash_attention_2 may become a Hub kernel's name
        requested = {"attn_requested": name} if ran != name else {}
        return {**result, "attn_implementation": ran, **requested, **({"attn_refused": refused} if refused else {})}
    return {"error": f"no attention implementation of {candidates} ran", "attn_refused": refused}


@contextlib.contextmanager
def module_patches_undone(*modules):
    """Undoes on exit what a monkey patch did to ``modules`` for the whole process: Liger's
    ``apply_liger_kernel_to_qwen3`` replaces ``modeling_qwen3``'s apply_rotary_pos_emb, Qwen3RMSNorm and Qwen3MLP (a
    model built afterwards would get Liger's), binds methods on classes and renames them. Puts back every module
    attribute, and the attributes and name of every class the module defines, as they were on entry."""
    saved = []
    for module in modules:
        attrs = dict(vars(module))
        classes = {
            cls: (cls.__name__, dict(vars(cls)))
            for cls in attrs.values()
            if isinstance(cls, type) and cls.__module__ == module.__name__
        }
        saved.append((module, attrs, classes))
    try:
        yield
    finally:
        for module, attrs, classes in saved:
            for name in set(vars(module)) - set(attrs):
                delattr(module, name)
            for name, value in attrs.items():
                if vars(module).get(name, attrs) is not value:
                    setattr(module, name, value)
            for cls, (cls_name, members) in classes.items():
                cls.__name__ = cls_name
                for name in set(vars(cls)) - set(members):
                    delattr(cls, name)
                for name, value in members.items():
                    if vars(cls).get(name, members) is not value:
                        setattr(cls, name, value)


def _liger_apply(model) -> None:
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=model, fused_linear_cross_entropy=False)


def use_liger(model, apply=_liger_apply) -> str:
    """Liger's kernels as TRL applies them (its fused cross-entropy off: the loss is chunked here, as TRL's is). They
    patch the model's modeling module for the whole process: call it inside ``module_patches_undone``."""
    try:
        apply(model)
    except ImportError as err:
        return f"not installed ({err})"[:200]
    except Exception as err:  # report it: the benchmark still compares the layouts
        return f"failed: {type(err).__name__}: {err}"[:200]
    return "applied"


def fast_recipe_gaps(fast: dict) -> list[str]:
    """Why the fast variant did not run config_full_fast.yaml's kernels (flash attention, Liger); empty when it did."""
    if "error" in fast:
        return [fast["error"]]
    gaps = []
    if "flash" not in fast["attn_implementation"].lower():
        refused = fast.get("attn_refused", {})
        gaps.append(f"attention ran {fast['attn_implementation']}, not flash attention ({refused})"[:400])
    if not fast["liger_ran"]:
        gaps.append(f"Liger's kernels did not run ({fast['liger']})"[:400])
    return gaps


def save_random_qwen3_8b(folder: str) -> None:
    """A model folder of Qwen3-8B's config and the demo model's tokenizer (its ids fall inside Qwen3's vocabulary), for
    ``bench_scorer.py --model <folder> --random_weights``: the scorer at the paper's model size, nothing downloaded."""
    from transformers import AutoTokenizer

    Qwen3Config(**QWEN3_8B).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model(DEMO_MODEL)).save_pretrained(folder)
    print(f"Qwen3-8B config and {DEMO_MODEL}'s tokenizer written to {folder}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny Qwen3 at max_length 256 (CPU tests)")
    parser.add_argument("--device", default="auto", help="auto: cuda when there is one")
    parser.add_argument("--max_length", type=int, default=32768, help="the paper's (config_full.yaml)")
    parser.add_argument(
        "--steps", type=int, default=2, help="timed micro-batches of two conversations (plain: the same, one by one)"
    )
    parser.add_argument("--fast_attn", default="flash_attention_2,sdpa", help="the fast variant's, first that loads")
    parser.add_argument("--no_liger", action="store_true", help="the fast variant without Liger's kernels")
    parser.add_argument(
        "--save_random_qwen3_8b", metavar="FOLDER", help="only write a Qwen3-8B model folder for bench_scorer.py"
    )
    args = parser.parse_args(argv)
    if args.save_random_qwen3_8b:
        save_random_qwen3_8b(args.save_random_qwen3_8b)
        return {}

    device = resolve_device(args.device)
    dims, dtype = (TINY, torch.float32) if args.quick else (QWEN3_8B, torch.bfloat16)
    max_length = 256 if args.quick else args.max_length
    # Conversations 0-1 warm up, 2 .. 2 x steps + 1 are timed, the last (max_length) makes the worst micro-batch.
    lengths = [*conversation_lengths(2 * (args.steps + 1), max_length), max_length]
    timed = range(2 * (args.steps + 1))
    pairs = [list(timed[i : i + 2]) for i in range(0, len(timed), 2)]

    model = build_model(dims, dtype, device)
    params, peak = matmul_params(model), peak_bf16_flops(device)
    plain_groups = [pairs[0], *[[i] for i in timed[2:]]]  # the same warm-up pair, then one conversation each
    plain = run_variant(model, plain_groups, lengths, 1, device, params, peak)
    plain.update(liger="off", liger_ran=False, padding_free=False, conversations_per_micro_batch=1)
    plain["attn_implementation"] = model.config._attn_implementation

    candidates = [a.strip() for a in args.fast_attn.split(",") if a.strip()]
    with module_patches_undone(sys.modules[type(model).__module__]):  # Liger's patches end with this variant
        liger = "off" if args.no_liger else use_liger(model)
        fast = run_fast(model, pairs, lengths, device, params, peak, candidates)
    if "error" in fast and liger == "applied":  # Liger's kernels fail at run time here: the fast layout without them
        del model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        model = build_model(dims, dtype, device)
        liger = f"failed at run time: {fast['attn_refused']}"[:300]
        fast = run_fast(model, pairs, lengths, device, params, peak, candidates)
    ran = "error" not in fast
    fast.update(liger=liger, liger_ran=ran and liger == "applied", padding_free=True, conversations_per_micro_batch=2)
    gaps = fast_recipe_gaps(fast)
    result = {
        "model": "Qwen3 (tiny, random weights)" if args.quick else "Qwen3-8B architecture, random weights",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
        "dtype": str(dtype).replace("torch.", ""),
        "max_length": max_length,
        "gradient_checkpointing": True,
        "params": sum(p.numel() for p in model.parameters()),
        "matmul_params": params,
        "peak_bf16_tflops": peak and peak / 1e12,
        "weights_and_grads_gb": round(2 * model.num_parameters() * dtype.itemsize / 2**30, 2),  # in peak_memory_gb
        "measures": "forward + backward per GPU, no optimizer step (AdamW states of a full 8B fine-tune need ZeRO-3 "
        "across 8 GPUs); mfu counts 6 x matmul params x tokens + causal attention, not the checkpointing recompute",
        "plain": plain,
        "fast": fast,
        "fast_is_recipe": not gaps,  # flash attention and Liger ran: the speedup is config_full_fast.yaml's
        **({"fast_not_recipe": gaps} if gaps else {}),
        "speedup": round(fast["tokens_per_s"] / plain["tokens_per_s"], 3) if ran else None,
        # the same weights and conversations: what the kernels and the layout change in the loss
        "loss_rel_diff": abs(fast["summed_loss"] - plain["summed_loss"]) / plain["summed_loss"] if ran else None,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    print(json.dumps(result))
    del model
    gc.collect()
    return result


if __name__ == "__main__":
    out = main()
    sys.exit(0 if not out or all(math.isfinite(out[v].get("summed_loss", math.nan)) for v in ("plain", "fast")) else 1)
