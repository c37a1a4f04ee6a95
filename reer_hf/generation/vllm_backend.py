"""The ``vllm`` generator backend: the vLLM offline engine (optional, imported only when built)."""

from __future__ import annotations

from reer_hf.core.models import resolve_dtype, resolve_model
from reer_hf.generation.base import Generator, render_prompt
from reer_hf.generation.completion import FINISH_STOP, Completion, Request, Sampling, cut_at_stop, finished
from reer_hf.generation.config import GeneratorConfig


class VLLMGenerator(Generator):
    """The vLLM offline engine (GPU only, optional): continuous batching with ``n`` samples per prompt.

    Prompts are rendered with the model's chat template plus the pre-fill, as in ``TransformersGenerator``, and passed
    as token ids so vLLM adds no second BOS.
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise ImportError(
                "generator_backend='vllm' needs vLLM: pip install 'reer-hf[vllm]' (GPU only), or use the transformers "
                "or openai backend"
            ) from e
        self.config = config
        self._sampling_params = SamplingParams
        kwargs = dict(config.generator_vllm_kwargs or {})
        if config.generator_dtype == "auto":
            kwargs.setdefault("dtype", "auto")  # vLLM picks: the checkpoint dtype, fp32 ones in half precision
        else:
            kwargs.setdefault("dtype", str(resolve_dtype(config.generator_dtype)).removeprefix("torch."))
        self.llm = LLM(model=resolve_model(config.generator_model), **kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len

    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        ids = [self.tokenizer.encode(render_prompt(self.tokenizer, r), add_special_tokens=False) for r in requests]
        # A prompt that leaves no room to generate fails alone (vLLM would raise for the whole batch).
        fits = [i for i, p in enumerate(ids) if len(p) < self.max_model_len]
        params = [
            self._sampling_params(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=min(sampling.max_new_tokens, self.max_model_len - len(ids[i])),
                seed=requests[i].seed
                if requests[i].seed is not None
                else None
                if sampling.seed is None
                else sampling.seed + i,
                stop=list(sampling.stop) or None,
                repetition_penalty=sampling.repetition_penalty,
                **({"top_k": sampling.top_k} if sampling.top_k else {}),
            )
            for i in fits
        ]
        prompts = [{"prompt_token_ids": ids[i]} for i in fits]
        self.stats["prompt_tokens"] += sum(len(ids[i]) for i in fits)  # vLLM prefills a request once for its n
        self.stats["prompt_tokens_requested"] += sampling.n * sum(len(ids[i]) for i in fits)
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        by_index = dict(zip(fits, outputs, strict=True))
        too_long = f"prompt longer than the generator's context ({self.max_model_len} tokens)"
        results = []
        for i in range(len(requests)):
            if i not in by_index:
                results.append([Completion.failed(too_long, "context") for _ in range(sampling.n)])
                continue
            output = by_index[i]
            completions = []
            for j in range(sampling.n):
                if j >= len(output.outputs):
                    completions.append(
                        Completion.failed(f"vLLM returned {len(output.outputs)} of {sampling.n}", "parse")
                    )
                    continue
                sample = output.outputs[j]
                text, stopped = cut_at_stop(sample.text, sampling.stop)
                reason = FINISH_STOP if stopped else sample.finish_reason
                completions.append(finished(text, len(sample.token_ids), reason))
            results.append(completions)
        return results
