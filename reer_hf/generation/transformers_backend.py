"""The ``transformers`` generator backend: local batched sampling with a transformers model."""

from __future__ import annotations

import torch

from reer_hf.generation.base import Generator, render_prompt
from reer_hf.generation.completion import FINISH_LENGTH, FINISH_STOP, Completion, Request, Sampling, cut_at_stop


class TransformersGenerator(Generator):
    """Local batched sampling with ``model.generate`` (left padding, ``n`` return sequences per prompt)."""

    def __init__(self, model, tokenizer, batch_size: int = 16, share_prompt: bool = True):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.share_prompt = share_prompt
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    @torch.inference_mode()
    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        out: list[list[Completion]] = []
        for lo in range(0, len(requests), self.batch_size):
            chunk = requests[lo : lo + self.batch_size]
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed + lo)
            out.extend(self._generate_chunk(chunk, sampling))
        return out

    def _generate_chunk(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        prompts = [render_prompt(self.tokenizer, r) for r in requests]
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            self.tokenizer.padding_side = side
        enc = enc.to(self.model.device)
        sample = sampling.temperature > 0
        kwargs = dict(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=sample,
            num_return_sequences=sampling.n,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.eos_ids) or None,
        )
        if sample:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or 0)
        if sampling.repetition_penalty != 1.0:
            kwargs.update(repetition_penalty=sampling.repetition_penalty)
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        if sampling.n > 1 and self.share_prompt and enc["input_ids"].shape[1] > 1:
            enc, kwargs["past_key_values"] = self._shared_prefill(enc, sampling.n)
            kwargs["num_return_sequences"] = 1
        generated = self.model.generate(**enc, **kwargs)[:, enc["input_ids"].shape[1] :].tolist()
        pad = self.tokenizer.pad_token_id
        results = []
        for b in range(len(requests)):
            completions = []
            for ids in generated[b * sampling.n : (b + 1) * sampling.n]:
                ended = next((t for t, tok in enumerate(ids) if tok in self.eos_ids), None)
                ids = ids if ended is None else ids[:ended]
                while ids and ids[-1] == pad and pad not in self.eos_ids:  # after a stop string
                    ids = ids[:-1]
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                text, stopped = cut_at_stop(text, sampling.stop)
                finished = ended is not None or stopped or len(ids) < sampling.max_new_tokens
                n_tokens = len(ids) + (ended is not None)
                completions.append(Completion(text, n_tokens, FINISH_STOP if finished else FINISH_LENGTH))
            results.append(completions)
        return results

    def _shared_prefill(self, enc, n: int):
        """Run each prompt once into a KV cache and give its ``n`` samples copies of it: ``num_return_sequences``
        would prefill every prompt ``n`` times (the edit prompt holds the query, the answer and the whole thinking).
        ``generate`` then only runs the prompts' last tokens; positions follow the left padding as it computes them.
        """
        from transformers import DynamicCache

        ids, mask = enc["input_ids"], enc["attention_mask"]
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        self.model(
            input_ids=ids[:, :-1],
            attention_mask=mask[:, :-1],
            position_ids=positions[:, :-1],
            past_key_values=cache,
            use_cache=True,
        )
        cache.batch_repeat_interleave(n)
        expanded = {"input_ids": ids.repeat_interleave(n, 0), "attention_mask": mask.repeat_interleave(n, 0)}
        return expanded, cache
