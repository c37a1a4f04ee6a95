"""Where reer-hf keeps what it derives or downloads (the demo model, pinned upstream files): one root, no heavy
imports, so a command that only needs a path stays fast."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """``$REER_HF_HOME``, else ``$XDG_CACHE_HOME/reer_hf``, else ``~/.cache/reer_hf``."""
    if os.environ.get("REER_HF_HOME"):
        return Path(os.environ["REER_HF_HOME"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "reer_hf"
