"""Starlette application: ``POST /score`` (Azure ML online-endpoint body) and ``GET /health``.

Response of ``/score``: one ``{"probs": [...], "labels": [...]}`` per image, in request order. By default every class
is listed in class-id order (as Azure ML AutoML does), so ``probs[i]`` always belongs to ``labels[i]``; with
``top_k`` only the ``top_k`` most probable classes are returned, most probable first. Multi-label models
(``problem_type == "multi_label_classification"``) report independent sigmoid probabilities.

A request goes through admission (:mod:`.admission`: memory budget and pending images, 503 + ``Retry-After``
before its body is read), a body deadline, parsing, URL fetches (total deadline), decoding in a small pool of
threads (one image at a time, each checked on its header), and the micro-batcher. When the client disconnects,
its decoding stops at the next image and its images are dropped from the model queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._loading import label_names
from ..predict import pixel_probabilities
from .admission import BODY_COPIES, Admission, Ticket
from .batching import MicroBatcher
from .decoding import Source, decode_request
from .fetch import UrlFetcher, UrlPolicy
from .limits import ClientGone, RequestError, ServerLimits, declared_length, read_body
from .malloc import Trimmer
from .payload import is_url, parse_request, response_rows

logger = logging.getLogger(__name__)

_INLINE_PARSE_BYTES = 1024 * 1024  # larger bodies are parsed off the event loop


async def _disconnected(request: Request) -> None:
    """Return when the client has closed the connection (call only after the body was read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, work: Any) -> Any:
    """Await ``work``; if the client disconnects first, cancel it and raise :class:`ClientGone`."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise ClientGone


async def _all_or_none(coroutines: list[Any]) -> list[Any]:
    """Results of all coroutines, in order; on the first failure the others are cancelled."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


class _Scorer:
    """What ``/score`` does, with the resources it shares across requests."""

    def __init__(self, model: torch.nn.Module, image_processor: Any, limits: ServerLimits, url_policy: UrlPolicy,
                 top_k: int | None, batcher: MicroBatcher):
        self.processor = image_processor
        self.limits = limits
        self.budget = limits.pixel_budget
        self.top_k = top_k
        self.labels = label_names(model.config)
        self.batcher = batcher
        self.fetcher = UrlFetcher(url_policy)
        self.admission = Admission(limits.memory_budget_bytes, limits.max_pending,
                                   lambda: batcher.stats.images_per_second)
        self.decoders: ThreadPoolExecutor | None = None

    async def score(self, request: Request) -> JSONResponse:
        """``POST /score``."""
        with self.admission.ticket().held() as ticket:
            body = await self._body(request, ticket)
            if len(body) > _INLINE_PARSE_BYTES:
                items = await run_in_threadpool(parse_request, body, self.limits)
            else:
                items = parse_request(body, self.limits)
            del body
            ticket.add_images(len(items))
            rows = await _unless_disconnected(request, self._answer(items, ticket))
        return JSONResponse(rows)

    async def _body(self, request: Request, ticket: Ticket) -> bytes:
        try:
            length = declared_length(request, self.limits.max_body_bytes)
            if length is not None:  # refused before a byte of it is read
                ticket.reserve(BODY_COPIES * length, "This request's body")
        except RequestError as error:
            error.headers["Connection"] = "close"  # the body stays unread
            raise

        def charge(size: int) -> None:
            try:
                ticket.reserve(BODY_COPIES * size, "This request's body")
            except RequestError as error:
                error.headers["Connection"] = "close"
                raise

        return await read_body(request, self.limits.max_body_bytes, self.limits.body_timeout,
                               None if length is not None else charge)

    async def _answer(self, items: list[str], ticket: Ticket) -> list[dict]:
        sources = await self._sources(items, ticket)
        pixel_values = await self._decode(sources, ticket)
        try:
            probs = await self.batcher.submit(pixel_values)
        except ValueError as error:
            raise RequestError(400, f"The model could not score these images: {error}") from error
        return response_rows(torch.stack(probs), self.labels, self.top_k)

    async def _sources(self, items: list[str], ticket: Ticket) -> list[Source]:
        """Base64 items as they are (decoded in the worker), URL items fetched concurrently."""
        urls = [i for i, item in enumerate(items) if is_url(item)]
        if not urls:
            return list(items)

        async def fetch(index: int) -> bytes:
            where = f"input_data.data[{index}]"
            return await self.fetcher.fetch(items[index], where, lambda size: ticket.reserve(size, where))

        sources: list[Source] = list(items)
        for index, raw in zip(urls, await _all_or_none([fetch(i) for i in urls])):
            sources[index] = raw
        return sources

    async def _decode(self, sources: list[Source], ticket: Ticket) -> list[torch.Tensor]:
        """Decode in the pool; on cancellation wait for the worker to stop (at most one image) before returning."""
        cancelled = threading.Event()
        future = self.decoders.submit(decode_request, sources, self.processor, self.budget, ticket, cancelled)
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            cancelled.set()
            if not future.cancel():
                with contextlib.suppress(BaseException):
                    await asyncio.wrap_future(future)
            raise

    def health(self) -> dict[str, Any]:
        stats, admission = self.batcher.stats, self.admission
        return {"status": "ok", "num_labels": len(self.labels), "batches": stats.batches, "images": stats.images,
                "requests": stats.requests, "dropped_requests": stats.dropped, "pending_images": admission.pending,
                "memory_reserved_bytes": admission.reserved, "memory_peak_bytes": admission.peak_reserved,
                "memory_budget_bytes": admission.capacity, "refused": admission.refused}


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
    batcher = MicroBatcher(lambda pixel_values: pixel_probabilities(model, pixel_values),
                           max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_pending=limits.max_pending)
    scorer = _Scorer(model, image_processor, limits, url_policy, top_k, batcher)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(scorer.health())

    async def request_error(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status, headers=error.headers)

    async def client_gone(request: Request, error: ClientGone) -> Response:
        return Response(status_code=499)  # nobody reads it

    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)

    async def server_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("Unhandled error while scoring", exc_info=error)
        return JSONResponse({"error": f"Internal server error ({type(error).__name__}); see the server log."},
                            status_code=500)

    trimmer = Trimmer(lambda: scorer.admission.released)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        scorer.decoders = ThreadPoolExecutor(limits.decode_workers, thread_name_prefix="hf-beit-decode")
        trimmer.start()
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            scorer.decoders.shutdown(wait=True, cancel_futures=True)
            trimmer.stop()

    app = Starlette(
        routes=[Route("/score", scorer.score, methods=["POST"]), Route("/health", health, methods=["GET"])],
        exception_handlers={RequestError: request_error, ClientGone: client_gone, HTTPException: http_error,
                            Exception: server_error},
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.admission = scorer.admission
    app.state.trimmer = trimmer
    return app
