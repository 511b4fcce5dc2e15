"""Fetching image URLs, off unless the server was started with an allow-list of hosts (SSRF protection).

Only ``http``/``https`` URLs whose host name is on the allow-list are fetched; redirects are not followed (a redirect
could point anywhere), proxies from the environment are not used, and the download is capped in size and time.
The allow-list compares host names as written in the URL; it does not pin DNS answers, so list only hosts whose
DNS you trust.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from .limits import RequestError


@dataclass(frozen=True)
class UrlPolicy:
    """Which image URLs may be fetched. An empty ``allowed_hosts`` disables fetching."""

    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    max_bytes: int = 16 * 1024 * 1024
    timeout_seconds: float = 10.0

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


def fetch_url(url: str, policy: UrlPolicy, where: str) -> bytes:
    """Download an allowed URL (no redirects, no proxies, at most ``policy.max_bytes``)."""
    check_url(url, policy, where)
    try:
        with (
            httpx.Client(follow_redirects=False, trust_env=False, timeout=policy.timeout_seconds) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise RequestError(400, f"{where}: fetching the URL returned HTTP {response.status_code} "
                                        "(redirects are not followed).")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > policy.max_bytes:
                    raise RequestError(413, f"{where}: the image at the URL exceeds {policy.max_bytes} bytes.")
                chunks.append(chunk)
    except httpx.HTTPError as error:
        raise RequestError(400, f"{where}: could not fetch the URL ({type(error).__name__}: {error}).") from error
    return b"".join(chunks)
