"""Does a trained model stop? Greedy generation on the training prompts, and the share that ends its turn with the
end-of-turn token within a token budget (``scripts/check_stops.py``).

Training every example's end of turn (:mod:`reer_hf.sft.end_of_turn`) is what should make a model stop; this measures
whether it did. Greedy decoding, so the figure is reproducible; the budget defaults to 1.5 times the longest assistant
turn the model was trained on, so a model that writes about as much as it learned to has room to end.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["check_stops", "default_budget", "prompt_of", "stop_share"]

#: The default budget over the longest trained assistant turn (see the module docstring).
BUDGET_FACTOR = 1.5


def prompt_of(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """A training conversation without its final assistant turn: what the model is asked."""
    messages = list(messages)
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError(
            f"a training conversation ends with the assistant turn, got roles {[m['role'] for m in messages]}"
        )
    return messages[:-1]


def default_budget(conversations: Sequence[Sequence[dict[str, str]]], tokenizer: PreTrainedTokenizerBase) -> int:
    """:data:`BUDGET_FACTOR` times the tokens of the longest final assistant turn (its end-of-turn token included)."""
    longest = max(len(tokenizer(c[-1]["content"], add_special_tokens=False)["input_ids"]) + 1 for c in conversations)
    return math.ceil(BUDGET_FACTOR * longest)


@torch.inference_mode()
def stop_share(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[Sequence[dict[str, str]]],
    max_new_tokens: int | None = None,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Greedy generation from each conversation's prompt (:func:`prompt_of`, with the generation prompt), stopped by
    the tokenizer's end-of-turn token (``eos_token``) or any end token of the model's generation config, and what
    ended each: ``share`` is the fraction that ended with the end-of-turn token within ``max_new_tokens`` (default
    :func:`default_budget`)."""
    if not conversations:
        raise ValueError("no conversations to generate from")
    eot = tokenizer.eos_token_id
    if eot is None:
        raise ValueError("the tokenizer has no eos_token: set the end-of-turn token (the recipes' <|im_end|>)")
    budget = max_new_tokens or default_budget(conversations, tokenizer)
    configured = model.generation_config.eos_token_id
    configured = [] if configured is None else [configured] if isinstance(configured, int) else list(configured)
    stops = sorted({eot, *configured})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eot
    prompts = [
        tokenizer.apply_chat_template(prompt_of(c), add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
        for c in conversations
    ]
    device = next(model.parameters()).device
    per_prompt = []
    for lo in range(0, len(prompts), batch_size):
        chunk = prompts[lo : lo + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=device)  # left padding
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=device)
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            max_new_tokens=budget,
            eos_token_id=stops,
            pad_token_id=pad,
        )
        for row in out[:, width:].tolist():
            end = next((i for i, t in enumerate(row) if t in stops), None)
            per_prompt.append(
                {
                    "new_tokens": len(row) if end is None else end + 1,
                    "ended_with": None if end is None else tokenizer.convert_ids_to_tokens(row[end]),
                }
            )
    token = tokenizer.eos_token
    endings = Counter(p["ended_with"] for p in per_prompt)
    lengths = [p["new_tokens"] for p in per_prompt]
    return {
        "end_of_turn": token,
        "max_new_tokens": budget,
        "prompts": len(per_prompt),
        "stopped": endings[token],
        "share": endings[token] / len(per_prompt),
        "other_stops": {k: v for k, v in endings.items() if k not in (token, None)},
        "budget_reached": endings[None],
        "new_tokens": {"median": statistics.median(lengths), "max": max(lengths)},
        "per_prompt": per_prompt,
    }


def check_stops(
    recipe_args: Sequence[str],
    model_dir: str | None = None,
    *,
    max_new_tokens: int | None = None,
    max_prompts: int | None = None,
    dtype: str = "auto",
    device: str | None = None,
    batch_size: int = 8,
) -> dict[str, Any]:
    """:func:`stop_share` of the model an SFT recipe trained (``model_dir``, default the recipe's ``output_dir``) on
    that recipe's training prompts, rebuilt by its own data pipeline with the tokenizer saved beside the model (its
    chat template and end-of-turn token). ``recipe_args``: the recipe's command line (``--config YAML`` and
    overrides)."""
    from transformers import AutoTokenizer

    from reer_hf.core.models import load_causal_lm
    from reer_hf.sft.config import sft_parser
    from reer_hf.sft.data import build_sft_dataset, data_cache_dir
    from reer_hf.sft.end_of_turn import Truncation

    script_args, training_args, _ = sft_parser().parse_args_and_config(list(recipe_args))
    model_dir = model_dir or training_args.output_dir
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset, _ = build_sft_dataset(
        script_args, tokenizer, cache_dir=data_cache_dir(script_args), truncation=Truncation.of(training_args)
    )
    conversations = dataset["messages"][:max_prompts] if max_prompts else dataset["messages"]
    model, _ = load_causal_lm(str(model_dir), dtype=dtype, device=device)
    result = stop_share(model, tokenizer, conversations, max_new_tokens, batch_size)
    return {"model": str(model_dir), **result}
