"""Starlette application: ``POST /score`` (Azure ML online-endpoint body) and ``GET /health``.

Response of ``/score``: one ``{"probs": [...], "labels": [...]}`` per image, in request order. By default every class
is listed in class-id order (as Azure ML AutoML does), so ``probs[i]`` always belongs to ``labels[i]``; with
``top_k`` only the ``top_k`` most probable classes are returned, most probable first. Multi-label models
(``problem_type == "multi_label_classification"``) report independent sigmoid probabilities.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .._loading import label_names
from ..predict import class_probabilities
from .batching import MicroBatcher
from .fetch import UrlPolicy
from .limits import RequestError, ServerLimits, read_body
from .payload import load_images, parse_request, response_rows

logger = logging.getLogger(__name__)


def create_app(
    model: torch.nn.Module,
    image_processor: Any,
    limits: ServerLimits | None = None,
    url_policy: UrlPolicy | None = None,
    top_k: int | None = None,
    max_batch_size: int = 16,
    max_wait_ms: float = 5.0,
) -> Starlette:
    """Build the scoring application for an image-classification model (put in eval mode here)."""
    limits = limits or ServerLimits()
    url_policy = url_policy or UrlPolicy()
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None (all classes); got {top_k}.")
    model.eval()
    labels = label_names(model.config)
    batcher = MicroBatcher(lambda images: class_probabilities(model, image_processor, images),
                           max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                           max_pending=limits.max_pending_requests)

    async def score(request: Request) -> JSONResponse:
        body = await read_body(request, limits.max_body_bytes)
        items = parse_request(body, limits)
        images = await run_in_threadpool(load_images, items, limits, url_policy)
        probs = await batcher.submit(images)
        return JSONResponse(response_rows(torch.stack(probs), labels, top_k))

    async def health(request: Request) -> JSONResponse:
        stats = batcher.stats
        return JSONResponse({"status": "ok", "num_labels": len(labels), "batches": stats.batches,
                             "images": stats.images, "requests": stats.requests})

    async def request_error(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)

    async def server_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("Unhandled error while scoring", exc_info=error)
        return JSONResponse({"error": f"Internal server error ({type(error).__name__}); see the server log."},
                            status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = Starlette(
        routes=[Route("/score", score, methods=["POST"]), Route("/health", health, methods=["GET"])],
        exception_handlers={RequestError: request_error, HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    return app
