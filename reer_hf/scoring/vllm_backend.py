"""The vLLM backend of the scorer: prompt log-probs from an offline engine (``scorer_backend="vllm"``, GPU).

vLLM is an optional dependency (``pip install 'reer-hf[vllm]'``), imported only when this backend is built.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from reer_hf.core.models import resolve_dtype
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.engine import ScoredRow


class VLLMLogprobs:
    """Prompt log-probs from a vLLM offline engine (optional; imported only when used)."""

    def __init__(self, model_path: str, config: ScorerConfig, dtype: str = "auto", max_model_len: int | None = None):
        try:
            from vllm import LLM
        except ImportError as err:  # pragma: no cover - depends on the optional extra
            raise ImportError("scorer_backend='vllm' needs vLLM: pip install 'reer-hf[vllm]' (GPU only)") from err
        # vLLM knows the long names only (bfloat16, float16, float32); "auto" is bf16, as on GPUs elsewhere.
        name = "bfloat16" if dtype == "auto" else str(resolve_dtype(dtype)).removeprefix("torch.")
        kwargs = {"dtype": name, **(config.scorer_vllm_kwargs or {})}
        if max_model_len:
            kwargs.setdefault("max_model_len", max_model_len)
        self.llm = LLM(model=model_path, **kwargs)
        self.max_positions = max_model_len
        self.stats: Counter = Counter()

    def __call__(self, rows: Sequence[ScoredRow]) -> list[torch.Tensor]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=r.input_ids) for r in rows], params, use_tqdm=False)
        self.stats["forward_calls"] += 1
        result = []
        for row, output in zip(rows, outputs, strict=True):
            logprobs = output.prompt_logprobs
            result.append(
                torch.tensor([logprobs[t][row.input_ids[t]].logprob for t in row.scored], dtype=torch.float32)
            )
        return result
