# Developer shortcuts; every target is a plain command you can also run by hand.
.PHONY: style quality test test-fast demo sft-demo eval-demo bench gpu-check

CODE := reer_hf recipes tests benchmarks

style:
	ruff format $(CODE)
	ruff check --fix $(CODE)

quality:
	ruff format --check $(CODE)
	ruff check $(CODE)

test:
	python -m pytest

test-fast:
	python -m pytest -m "not slow and not gpu and not hub"

demo:
	python recipes/synthesize.py --config recipes/demo/synthesize.yaml

# After `make demo`: the DeepWriter SFT recipe on its output (CPU, about 2 minutes on 2 cores).
sft-demo:
	python recipes/sft.py --config recipes/demo/sft.yaml

# The demo model on 10 LongBench-Write prompts, length score only (CPU, about 1.5 minutes on 2 cores).
eval-demo:
	python recipes/evaluate.py --config recipes/demo/evaluate.yaml

bench:
	python benchmarks/bench_scorer.py --quick

# On a machine with a CUDA GPU: installs the GPU extras, runs the gpu-marked tests and the GPU benchmarks.
gpu-check:
	bash scripts/gpu_check.sh
