"""Command-line options of ``hf-beit serve`` for the server's limits, and starting uvicorn with them."""

from __future__ import annotations

import argparse
from typing import Any

from .fetch import UrlPolicy
from .limits import MIB, ServerLimits

_DEFAULTS = ServerLimits()


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the limit flags (defaults from :class:`ServerLimits`)."""
    group = parser.add_argument_group("limits (bounded memory and time for any input)")
    group.add_argument("--max-body-mb", type=float, default=_DEFAULTS.max_body_bytes / MIB)
    group.add_argument("--max-images", type=int, default=_DEFAULTS.max_images, help="images per request")
    group.add_argument("--max-pixels", type=int, default=_DEFAULTS.max_pixels, help="pixels per image (as stored)")
    group.add_argument("--max-resized-pixels", type=int, default=_DEFAULTS.max_resized_pixels,
                       help="pixels per image after the processor's resize (extreme aspect ratios)")
    group.add_argument("--max-pending", type=int, default=_DEFAULTS.max_pending,
                       help="images admitted and not yet answered; more get 503 with Retry-After")
    group.add_argument("--memory-budget-mb", type=float, default=_DEFAULTS.memory_budget_bytes / MIB,
                       help="request data held at once (bodies, decoding, pixel values); beyond it 503")
    group.add_argument("--decode-workers", type=int, default=_DEFAULTS.decode_workers,
                       help="threads decoding images")
    group.add_argument("--max-connections", type=int, default=_DEFAULTS.max_connections,
                       help="open connections (default: 2048, or 128 below the file-descriptor limit)")
    group.add_argument("--header-timeout", type=float, default=_DEFAULTS.header_timeout,
                       help="seconds to receive a request's headers")
    group.add_argument("--body-timeout", type=float, default=_DEFAULTS.body_timeout,
                       help="seconds to receive a request's body")
    group.add_argument("--url-timeout", type=float, default=UrlPolicy().timeout_seconds,
                       help="seconds to fetch one image URL, in total")


def limits_from_args(args: argparse.Namespace) -> ServerLimits:
    """The :class:`ServerLimits` given on the command line."""
    return ServerLimits(
        max_body_bytes=int(args.max_body_mb * MIB), max_images=args.max_images, max_pixels=args.max_pixels,
        max_resized_pixels=args.max_resized_pixels, max_pending=args.max_pending,
        memory_budget_bytes=int(args.memory_budget_mb * MIB), decode_workers=args.decode_workers,
        max_connections=args.max_connections, header_timeout=args.header_timeout, body_timeout=args.body_timeout,
    )


def url_policy_from_args(args: argparse.Namespace) -> UrlPolicy:
    """The URL policy given on the command line (``--allow-url-host``, ``--url-timeout``)."""
    return UrlPolicy.from_hosts(args.allow_url_host, timeout_seconds=args.url_timeout)


def uvicorn_options(limits: ServerLimits) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` that enforce the connection-level limits."""
    from .protocol import guarded_protocol

    return {"http": guarded_protocol(limits.header_timeout, limits.max_connections, limits.max_body_bytes),
            "timeout_keep_alive": limits.keep_alive_timeout}


def serve(app: Any, limits: ServerLimits, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run ``app`` with uvicorn under ``limits`` (header deadline, connection limit, keep-alive timeout)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_options(limits))
