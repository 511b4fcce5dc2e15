"""HTTP scoring endpoint for image classification (starlette + uvicorn)."""

from .app import create_app
from .batching import MicroBatcher
from .fetch import UrlPolicy
from .limits import RequestError, ServerLimits

__all__ = ["MicroBatcher", "RequestError", "ServerLimits", "UrlPolicy", "create_app"]
