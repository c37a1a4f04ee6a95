"""The generator LLM behind one small interface, for every stage that generates (the search's trajectories and
rewrites, the evaluation's answers, the judge's verdicts).

:mod:`~reer_hf.generation.completion` holds what every backend speaks (requests, sampling, completions, how a
completion ended, the transport-failure kinds); :mod:`~reer_hf.generation.base` the interface; the backends are
:mod:`~reer_hf.generation.transformers_backend` (local, one prefill per distinct prompt),
:mod:`~reer_hf.generation.openai_backend` (any OpenAI-compatible server) and :mod:`~reer_hf.generation.vllm_backend`
(the offline engine); :func:`~reer_hf.generation.build.build_generator` picks one from a
:class:`~reer_hf.generation.config.GeneratorConfig`, and :mod:`~reer_hf.generation.health` says when a server is
unusable.
"""

from reer_hf.generation.base import Generator, render_prompt
from reer_hf.generation.build import build_generator
from reer_hf.generation.completion import (
    ERROR_KINDS,
    FINISH_ERROR,
    FINISH_LENGTH,
    FINISH_STOP,
    TRANSPORT_KINDS,
    Completion,
    ErrorKind,
    GeneratorUnavailable,
    Request,
    Sampling,
    cut_at_stop,
)
from reer_hf.generation.config import GeneratorConfig
from reer_hf.generation.health import GeneratorOutage, PieceFailures, PiecesFailed, check_generator
from reer_hf.generation.openai_backend import EndpointGenerator, OpenAIGenerator, generator_endpoint
from reer_hf.generation.transformers_backend import TransformersGenerator
from reer_hf.generation.vllm_backend import VLLMGenerator

__all__ = [
    "ERROR_KINDS",
    "FINISH_ERROR",
    "FINISH_LENGTH",
    "FINISH_STOP",
    "TRANSPORT_KINDS",
    "Completion",
    "EndpointGenerator",
    "ErrorKind",
    "Generator",
    "GeneratorConfig",
    "GeneratorOutage",
    "GeneratorUnavailable",
    "OpenAIGenerator",
    "PieceFailures",
    "PiecesFailed",
    "Request",
    "Sampling",
    "TransformersGenerator",
    "VLLMGenerator",
    "build_generator",
    "check_generator",
    "cut_at_stop",
    "generator_endpoint",
    "render_prompt",
]
