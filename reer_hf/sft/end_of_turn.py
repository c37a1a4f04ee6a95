"""The end-of-turn token in every training example: a model that never sees it trained keeps writing at inference.

Two things hide it. A chat template can leave the token out of the assistant mask, and ``max_length`` can cut a
conversation before its end of turn, which ``SFTTrainer`` does without a word. :func:`end_of_turn_step` tokenizes
every conversation as ``SFTTrainer`` does (the chat template TRL trains with, the assistant mask, the side
``truncation_mode`` keeps), refuses a template that does not train the token, and drops (``reer_over_max_length:
drop``) or keeps and counts (``keep``) the conversations ``max_length`` would cut before it. The count is in the data
report (``--dry_run``, ``sft_data_report.json``, the model card).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from reer_hf.sft.report import SFTDataReport

__all__ = ["OVER_MAX_LENGTH", "Truncation", "end_of_turn_step", "training_template"]

logger = logging.getLogger(__name__)

#: What becomes of a conversation whose end-of-turn token ``max_length`` would cut (``reer_over_max_length``).
OVER_MAX_LENGTH = ("drop", "keep")


@dataclass(frozen=True)
class Truncation:
    """Where ``SFTTrainer`` cuts a tokenized conversation and which of its tokens it trains (its ``SFTConfig``'s)."""

    max_length: int | None  # None: nothing is cut
    mode: Literal["keep_start", "keep_end"] = "keep_start"
    assistant_only_loss: bool = True
    num_proc: int | None = field(default=None, compare=False)  # processes that tokenize (the trainer's); no effect

    @classmethod
    def of(cls, args) -> Truncation:
        """The truncation of ``SFTConfig`` ``args``: without packing, ``max_length`` cuts each conversation on the
        ``truncation_mode`` side; packing with ``bfd`` cuts the overflow off the end; ``bfd_split`` and ``wrapped``
        lose no token."""
        max_length, mode = args.max_length, args.truncation_mode
        if args.packing:
            max_length, mode = (max_length, "keep_start") if args.packing_strategy == "bfd" else (None, mode)
        return cls(max_length, mode, bool(args.assistant_only_loss), getattr(args, "dataset_num_proc", None))

    def kept(self, n_tokens: int) -> range:
        """The positions of a conversation of ``n_tokens`` tokens that survive the cut."""
        if self.max_length is None or n_tokens <= self.max_length:
            return range(n_tokens)
        if self.mode == "keep_end":
            return range(n_tokens - self.max_length, n_tokens)
        return range(self.max_length)

    def to_dict(self) -> dict:
        """What decides the rows (the cache key's part, the report's): all but ``num_proc``."""
        return {k: v for k, v in asdict(self).items() if k != "num_proc"}


def training_template(tokenizer: PreTrainedTokenizerBase, assistant_only_loss: bool) -> str | None:
    """The chat template ``SFTTrainer`` tokenizes with: with ``assistant_only_loss`` and a template without
    ``{% generation %}`` markers, TRL's training version of it; else ``None`` (the tokenizer's own)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if assistant_only_loss and not has_generation_markers(tokenizer.chat_template):
        return get_training_chat_template(tokenizer)
    return None


def _end_of_turn_batch(
    batch: dict, tokenizer: PreTrainedTokenizerBase, chat_template: str | None, assistant_only_loss: bool
) -> dict:
    """Each conversation's token count and the position of its trained end-of-turn token (-1: none is trained), as
    ``SFTTrainer`` tokenizes it: ``apply_chat_template`` with the assistant mask when only the assistant is trained."""
    eot = tokenizer.eos_token_id
    counts, positions = [], []
    for messages in batch["messages"]:
        out = tokenizer.apply_chat_template(
            messages,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=assistant_only_loss,
            chat_template=chat_template,
        )
        ids = out["input_ids"]
        if assistant_only_loss:  # the last trained token must be the end of turn
            trained = [i for i, bit in enumerate(out["assistant_masks"]) if bit]
            last = trained[-1] if trained and ids[trained[-1]] == eot else -1
        else:  # every token is trained: the last end-of-turn token is the end of the last turn
            last = max((i for i, t in enumerate(ids) if t == eot), default=-1)
        counts.append(len(ids))
        positions.append(last)
    return {"_tokens": counts, "_end_of_turn": positions}


def end_of_turn_step(
    ds: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    truncation: Truncation,
    action: str,
    report: SFTDataReport,
) -> Dataset:
    """``ds`` (a ``messages`` dataset) without the conversations whose end-of-turn token ``truncation`` cuts
    (``action`` ``drop``), or whole (``keep``: SFTTrainer truncates them); either way counted in ``report``. A chat
    template that does not train the end-of-turn token is refused."""
    if action not in OVER_MAX_LENGTH:
        raise ValueError(f"reer_over_max_length must be one of {', '.join(OVER_MAX_LENGTH)}, got {action!r}")
    token = tokenizer.eos_token
    measured = ds.map(
        _end_of_turn_batch,
        batched=True,
        fn_kwargs={
            "tokenizer": tokenizer,
            "chat_template": training_template(tokenizer, truncation.assistant_only_loss),
            "assistant_only_loss": truncation.assistant_only_loss,
        },
        remove_columns=ds.column_names,
        num_proc=truncation.num_proc if truncation.num_proc and len(ds) > 1 else None,
        desc="end-of-turn tokens",
    )
    counts, positions = measured["_tokens"], measured["_end_of_turn"]
    untrained = [i for i, p in enumerate(positions) if p < 0]
    if untrained:
        where = "the assistant mask" if truncation.assistant_only_loss else "the conversation"
        raise ValueError(
            f"{len(untrained)} of {len(ds)} conversations (first: row {untrained[0]}) do not end {where} with the "
            f"end-of-turn token {token!r} (eos_token), so the model would never learn to stop: use a chat template "
            "that ends the assistant turn with it inside {% generation %} (reer_hf/templates/chatml.jinja with "
            "eos_token <|im_end|>)"
        )
    cut = [i for i, (n, p) in enumerate(zip(counts, positions, strict=True)) if p not in truncation.kept(n)]
    report.end_of_turn = {"token": token, **truncation.to_dict(), "action": action, "cut": len(cut)}
    cut_set = set(cut)
    kept = [i for i in range(len(ds)) if i not in cut_set] if action == "drop" else list(range(len(ds)))
    report.conversation_tokens = [counts[i] for i in kept]
    if truncation.max_length is None:
        return ds
    label = f"end of turn within max_length={truncation.max_length}"
    if action == "drop":
        report.add(label, len(ds), len(kept), f"dropped {len(cut)} that it would cut before their {token}")
        return ds.select(kept) if cut else ds
    report.add(label, len(ds), len(ds), f"kept {len(cut)} that SFTTrainer truncates before their {token}")
    if cut:
        logger.warning(
            "%d of %d conversations lose their end-of-turn token %s to max_length=%d and are trained without it "
            "(reer_over_max_length: keep); a model trained on many such rows may not stop",
            len(cut),
            len(ds),
            token,
            truncation.max_length,
        )
    return ds
