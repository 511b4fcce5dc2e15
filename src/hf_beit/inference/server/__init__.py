"""HTTP scoring endpoint for image classification (starlette + uvicorn + httpx: the ``serve`` extra).

Names are imported on first use, so ``hf-beit`` can register the ``serve`` options without the extra installed.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MicroBatcher": ".batching",
    "RequestError": ".limits",
    "ServerLimits": ".limits",
    "UrlPolicy": ".fetch",
    "create_app": ".app",
    "serve": ".options",
}

__all__ = ["MicroBatcher", "RequestError", "ServerLimits", "UrlPolicy", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
