"""The synthesis stage: query/answer pairs in, searched deep-thinking trajectories out (``recipes/synthesize.py``).

:mod:`~reer_hf.generation` holds the generator backends (transformers, vLLM, an OpenAI-compatible server);
:mod:`~reer_hf.synthesis.search` the REER search as a batched ``datasets.map`` function;
:mod:`~reer_hf.synthesis.filters` the quality filters; :mod:`~reer_hf.synthesis.runner` the resumable, sharded run
that cuts a dataset into pieces; :mod:`~reer_hf.synthesis.outputs` its summary, card and Hub folder.
"""

from reer_hf.generation.config import GeneratorConfig
from reer_hf.synthesis.config import FilterConfig, SearchConfig, SynthesisScriptArguments

__all__ = ["FilterConfig", "GeneratorConfig", "SearchConfig", "SynthesisScriptArguments"]
