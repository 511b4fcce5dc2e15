"""Fetching image URLs, off unless the server was started with an allow-list of hosts (SSRF protection).

Only ``http``/``https`` URLs whose host name is on the allow-list are fetched; redirects are not followed (a redirect
could point anywhere), proxies from the environment are not used, and the download is capped in size and in *total*
time (``timeout_seconds`` from the first byte asked to the last received: a server that drips a byte at a time is
cut off). Fetches run on the event loop, at most ``max_concurrent`` at once, so slow URLs never hold the threads that
decode other requests' images. The allow-list compares host names as written in the URL; it does not pin DNS
answers, so list only hosts whose DNS you trust.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .limits import RequestError

if TYPE_CHECKING:
    import httpx

MAX_URL_LENGTH = 8192
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x20\x7f]")  # controls (tab, CR, LF, NUL ...) and spaces


@dataclass(frozen=True)
class UrlPolicy:
    """Which image URLs may be fetched. An empty ``allowed_hosts`` disables fetching."""

    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    max_bytes: int = 16 * 1024 * 1024
    timeout_seconds: float = 10.0
    max_concurrent: int = 16

    @classmethod
    def from_hosts(cls, hosts: list[str] | tuple[str, ...] | None, **kwargs) -> UrlPolicy:
        """Build a policy from host names or IPs (case-insensitive, no scheme or port)."""
        cleaned = set()
        for host in hosts or ():
            name = host.strip().lower()
            bracketed = name.startswith("[") and name.endswith("]")  # IPv6 literal
            name = name[1:-1] if bracketed else name
            if not name or "/" in name or (":" in name and not bracketed):
                raise ValueError(f"Allowed URL host {host!r} must be a bare host name or IP (no scheme, port or path; "
                                 "IPv6 in brackets).")
            cleaned.add(name)
        return cls(allowed_hosts=frozenset(cleaned), **kwargs)


def check_url(url: str, policy: UrlPolicy, where: str) -> None:
    """Raise :class:`RequestError` unless ``url`` may be fetched under ``policy``."""
    if not policy.allowed_hosts:
        raise RequestError(403, f"{where} is a URL, but fetching image URLs is disabled on this server. Send the image "
                                "as base64, or start the server with --allow-url-host HOST.")
    if len(url) > MAX_URL_LENGTH:
        raise RequestError(400, f"{where} is a URL of {len(url)} characters; at most {MAX_URL_LENGTH} are accepted.")
    if _FORBIDDEN_CHARACTERS.search(url):
        raise RequestError(400, f"{where} is not a valid URL: it contains spaces or control characters "
                                "(percent-encode them).")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as error:
        raise RequestError(400, f"{where} is not a valid URL ({error}).") from error
    if parts.scheme not in ("http", "https") or not host:
        raise RequestError(400, f"{where} must be an http(s) URL with a host name.")
    if parts.username or parts.password:
        raise RequestError(400, f"{where}: URLs with credentials are not accepted.")
    if host not in policy.allowed_hosts:
        raise RequestError(403, f"{where}: host {host!r} is not on this server's URL allow-list.")


async def _download(client: httpx.AsyncClient, url: str, policy: UrlPolicy, where: str,
                    on_chunk: Callable[[int], None] | None) -> bytes:
    async with client.stream("GET", url) as response:
        if response.status_code != 200:
            raise RequestError(400, f"{where}: fetching the URL returned HTTP {response.status_code} "
                                    "(redirects are not followed).")
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > policy.max_bytes:
                raise RequestError(413, f"{where}: the image at the URL exceeds {policy.max_bytes} bytes.")
            if on_chunk is not None:
                on_chunk(len(chunk))
            chunks.append(chunk)
    return b"".join(chunks)


class UrlFetcher:
    """Downloads allowed URLs on the event loop (no redirects, no proxies, capped in bytes, total time, concurrency)."""

    def __init__(self, policy: UrlPolicy):
        self.policy = policy
        self._slots: asyncio.Semaphore | None = None

    async def fetch(self, url: str, where: str, on_chunk: Callable[[int], None] | None = None) -> bytes:
        """The bytes at ``url``; ``on_chunk(size)`` is called before each chunk is kept (memory accounting)."""
        import httpx

        check_url(url, self.policy, where)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.policy.max_concurrent)
        timeout = self.policy.timeout_seconds
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except asyncio.TimeoutError:
            raise RequestError(503, f"{where}: the server is busy fetching other URLs; retry shortly.",
                               {"Retry-After": str(max(1, round(timeout)))}) from None
        try:
            async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout) as client:
                return await asyncio.wait_for(_download(client, url, self.policy, where, on_chunk), timeout)
        except asyncio.TimeoutError:
            raise RequestError(400, f"{where}: the URL did not deliver the image within {timeout:g} s.") from None
        except httpx.InvalidURL as error:
            raise RequestError(400, f"{where} is not a valid URL ({error}).") from error
        except httpx.HTTPError as error:
            raise RequestError(400, f"{where}: could not fetch the URL ({type(error).__name__}: {error}).") from error
        finally:
            self._slots.release()
