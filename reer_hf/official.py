"""``python -m reer_hf.official list | fetch [SOURCE...] | show SOURCE:NAME [--file PATH]``.

The upstream texts fetched from pinned commits and verified by sha256; the logic lives in
:mod:`reer_hf.core.official` so every stage can use it.
"""

from __future__ import annotations

from reer_hf.core.official import (
    SOURCES,
    Locator,
    OfficialSourceError,
    Source,
    extract,
    fetch,
    main,
    names,
    source,
    text,
)

__all__ = [
    "SOURCES",
    "Locator",
    "OfficialSourceError",
    "Source",
    "extract",
    "fetch",
    "main",
    "names",
    "source",
    "text",
]

if __name__ == "__main__":
    raise SystemExit(main())
