"""The fast SFT recipe (``config_full_fast.yaml``) trains what ``config_full.yaml`` trains: the same settings but for
speed, the same conversations per optimizer step, and, through TRL's padding-free collator and a real forward of a
tiny model, the same loss on every conversation as a padded batch gives (attention does not cross conversations)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import yaml
from sft_rows import deepwriting_rows, openthoughts_rows
from testing_utils import build_tiny_model, write_jsonl
from trl import SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from reer_hf.sft.data import build_sft_dataset
from reer_hf.sft.train import load_sft_tokenizer, resolve_chat_template_path

ROOT = Path(__file__).resolve().parents[2]
SFT_RECIPES = ROOT / "recipes" / "DeepWriter-8B" / "sft"
FULL, FAST = SFT_RECIPES / "config_full.yaml", SFT_RECIPES / "config_full_fast.yaml"
#: What the fast recipe may change; everything else (data, loss mask, schedule, logging) is config_full's.
SPEED_KEYS = {
    "attn_implementation",
    "use_liger_kernel",
    "padding_free",
    "max_length",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "output_dir",
}
PAPER_GPUS = 8


def recipe_parser():
    spec = importlib.util.spec_from_file_location("recipe_sft", ROOT / "recipes" / "sft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_parser()


def test_fast_recipe_changes_only_speed_settings_and_keeps_the_global_batch():
    full, fast = yaml.safe_load(FULL.read_text()), yaml.safe_load(FAST.read_text())
    changed = {key for key in full.keys() | fast.keys() if full.get(key) != fast.get(key)}
    assert changed == SPEED_KEYS
    assert fast["padding_free"] is True and fast["use_liger_kernel"] is True
    assert fast["max_length"] is None  # TRL refuses padding_free with max_length unless it packs
    assert fast["per_device_train_batch_size"] >= 2  # one conversation per micro-batch has no padding to remove

    def global_batch(recipe: dict) -> int:
        return PAPER_GPUS * recipe["per_device_train_batch_size"] * recipe["gradient_accumulation_steps"]

    assert global_batch(fast) == global_batch(full) == 96


@pytest.fixture(scope="module")
def sft_inputs(tmp_path_factory, tiny_tokenizer):
    """A tokenizer-only model folder and the recipe's data (REER rows mixed with public rows), as local files."""
    tmp = tmp_path_factory.mktemp("padding-free")
    tiny_tokenizer.save_pretrained(tmp / "model")
    return {
        "model": tmp / "model",
        "data": write_jsonl(tmp / "dw.jsonl", deepwriting_rows()),
        "public": write_jsonl(tmp / "ot.jsonl", openthoughts_rows()),
        "out": tmp / "out",
    }


def recipe_trainer(recipe: Path, inputs: dict, arch: str, attn: str, *overrides: str) -> SFTTrainer:
    """``SFTTrainer`` as ``recipes/sft.py`` builds it from ``recipe``, on a tiny fp32 CPU model with attention
    ``attn`` (Liger and flash attention need a GPU; the rest of the recipe is kept)."""
    cli = [
        "--config",
        str(recipe),
        "--model_name_or_path",
        str(inputs["model"]),
        "--dataset_name",
        str(inputs["data"]),
        "--mix_dataset_name",
        str(inputs["public"]),
        "--mix_count",
        "3",
        "--output_dir",
        str(inputs["out"]),
        "--use_cpu",
        "true",
        "--bf16",
        "false",
        "--dtype",
        "float32",
        "--use_liger_kernel",
        "false",
        "--attn_implementation",
        attn,
        "--gradient_checkpointing",
        "false",
        "--report_to",
        "none",
        "--dataset_num_proc",
        "1",
        *overrides,
    ]
    script_args, training_args, model_args = recipe_parser().parse_args_and_config(cli)
    training_args.chat_template_path = resolve_chat_template_path(training_args.chat_template_path)
    tokenizer = load_sft_tokenizer(str(inputs["model"]), training_args, model_args)
    dataset, _ = build_sft_dataset(script_args, tokenizer)
    model = build_tiny_model(arch, len(tokenizer))
    model.set_attn_implementation(attn)
    return SFTTrainer(model=model, args=training_args, train_dataset=dataset, processing_class=tokenizer)


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token negative log-likelihood of the next token, and which tokens count (label != -100), both [B, T-1]."""
    targets = labels[:, 1:]
    mask = targets != -100
    logprobs = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    nll = -logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return nll * mask, mask


def padded_losses(model, batch: dict) -> torch.Tensor:
    """Each row's summed token loss in a right-padded batch."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    nll, _ = token_nll(logits, batch["labels"])
    return nll.sum(-1)


def packed_token_nll(model, batch: dict, **forward) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token losses of a padding-free batch (one row) and the conversation each belongs to: that of the token it
    predicts, whose first token has no label (so nothing is predicted across a boundary)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**{**inputs, **forward}).logits
    nll, _ = token_nll(logits, batch["labels"])
    return nll[0], batch["seq_idx"][0, 1:].long()


def per_conversation(nll: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    return torch.zeros(int(owner.max()) + 1, dtype=nll.dtype).index_add_(0, owner, nll)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["llama", "qwen3"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padding_free_gives_each_conversation_the_padded_loss(sft_inputs, arch, attn):
    trainer = recipe_trainer(FAST, sft_inputs, arch, attn)
    assert trainer.padding_free and trainer.data_collator.padding_free
    padded_collator = DataCollatorForLanguageModeling(pad_token_id=trainer.data_collator.pad_token_id)
    model = trainer.model.eval()
    rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    size = trainer.args.per_device_train_batch_size
    batches = [rows[i : i + size] for i in range(0, len(rows), size)]
    assert len({len(r["input_ids"]) for r in batches[0]}) == size  # conversations of different lengths: padding
    leaked = []
    with torch.no_grad():
        for group in batches:
            padded, packed = padded_collator(group), trainer.data_collator(group)
            assert "attention_mask" not in packed and packed["input_ids"].shape[0] == 1
            assert packed["input_ids"].shape[1] == sum(len(r["input_ids"]) for r in group)  # no padding at all
            # the same trained tokens: the first token of a conversation is never a target in either layout
            assert (padded["labels"][:, 1:] != -100).sum() == (packed["labels"][:, 1:] != -100).sum()
            expected = padded_losses(model, padded)
            nll, owner = packed_token_nll(model, packed)
            torch.testing.assert_close(per_conversation(nll, owner), expected, rtol=0, atol=2e-5)
            # TRL's own loss (its chunked LM head), as training computes it, agrees as well
            torch.testing.assert_close(
                trainer.compute_loss(model, dict(packed)), trainer.compute_loss(model, dict(padded)), rtol=1e-6, atol=0
            )
            if len(group) > 1:
                # Control: the same packed row under a plain causal mask lets a conversation attend to the ones
                # before it; the tokens of every later conversation move, so the comparison above would catch a leak.
                leaky, _ = packed_token_nll(model, packed, attention_mask=torch.ones_like(packed["input_ids"]))
                first = owner == 0
                torch.testing.assert_close(leaky[first], nll[first], rtol=0, atol=1e-5)  # it sees nothing new
                leaked += [(leaky[owner == k] - nll[owner == k]).abs().max().item() for k in range(1, len(group))]
    assert leaked and min(leaked) > 1e-3, leaked  # a hundred times the tolerance


@pytest.mark.slow
def test_fast_recipe_steps_see_the_same_conversations_as_the_full_recipe(sft_inputs):
    """One process, global batch 2: config_full's 1 per device x 2 accumulation steps against the fast recipe's
    2 per device x 1; the seeded sampler's order does not depend on the batch size, so each optimizer step trains
    the same conversations."""
    full = recipe_trainer(FULL, sft_inputs, "llama", "sdpa", "--gradient_accumulation_steps", "2")
    fast = recipe_trainer(FAST, sft_inputs, "llama", "sdpa", "--gradient_accumulation_steps", "1")
    assert full.args.per_device_train_batch_size * 2 == fast.args.per_device_train_batch_size * 1

    def conversations(batch: dict) -> list[tuple[int, ...]]:
        if "cu_seq_lens_q" not in batch:
            rows = zip(batch["input_ids"], batch["attention_mask"], strict=True)
            return [tuple(row[mask.bool()].tolist()) for row, mask in rows]
        bounds = batch["cu_seq_lens_q"].tolist()
        flat = batch["input_ids"][0].tolist()
        return [tuple(flat[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    full_order = [c for batch in full.get_train_dataloader() for c in conversations(batch)]
    fast_steps = [conversations(batch) for batch in fast.get_train_dataloader()]
    assert len(full_order) == len(full.train_dataset) == sum(len(step) for step in fast_steps)
    full_steps = [full_order[i : i + 2] for i in range(0, len(full_order), 2)]
    assert fast_steps == full_steps
