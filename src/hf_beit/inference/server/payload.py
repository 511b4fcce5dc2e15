"""Parse the Azure ML online-endpoint request body for image classification; shape the response.

Body: ``{"input_data": {"columns": ["image"], "index": [0, 1], "data": [<item>, ...]}}`` where each item is a base64
string (optionally a ``data:`` URL) or an ``http(s)://`` URL; pandas "split" rows (``[<item>]``) are accepted too.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from .limits import RequestError, ServerLimits

_EXAMPLE = '{"input_data": {"columns": ["image"], "index": [0], "data": ["<base64 image>"]}}'
_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(rb"\s+")


def parse_request(body: bytes, limits: ServerLimits) -> list[str]:
    """The image items of a request body, in ``data`` order; raises :class:`RequestError` on malformed input."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(400, f"Request body is not valid JSON ({error}). Expected {_EXAMPLE}") from error
    except RecursionError as error:
        raise RequestError(400, "Request body is nested too deeply to parse.") from error
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise RequestError(400, f"Request body holds a value that cannot be parsed ({str(error)[:200]}).") from error
    input_data = payload.get("input_data") if isinstance(payload, dict) else None
    if not isinstance(input_data, dict):
        raise RequestError(400, f"Request body must be a JSON object with an 'input_data' object: {_EXAMPLE}")
    columns = input_data.get("columns", ["image"])
    if not isinstance(columns, list) or "image" not in columns:
        raise RequestError(400, f"input_data.columns must be a list containing 'image'; got {columns!r}.")
    rows = input_data.get("data")
    if not isinstance(rows, list) or not rows:
        raise RequestError(400, "input_data.data must be a non-empty list of base64 images or image URLs.")
    if len(rows) > limits.max_images:
        raise RequestError(413, f"Request has {len(rows)} images; this server accepts at most {limits.max_images} "
                                "per request. Split it into several requests.")
    index = input_data.get("index")
    if index is not None and (not isinstance(index, list) or len(index) != len(rows)):
        raise RequestError(400, "input_data.index must be a list with one entry per row of input_data.data.")
    column = columns.index("image")
    items = []
    for i, row in enumerate(rows):
        item = row[column] if isinstance(row, list) and len(row) == len(columns) else row
        if not isinstance(item, str) or not item:
            raise RequestError(400, f"input_data.data[{i}] must be a base64 string or an image URL; "
                                    f"got {type(item).__name__}.")
        items.append(item)
    return items


def decode_base64(item: str, where: str) -> bytes:
    """Standard or URL-safe base64 (a ``data:...;base64,`` prefix and whitespace are allowed)."""
    text = _DATA_URL.sub("", item, count=1).encode("ascii", errors="replace")
    if _WHITESPACE.search(text):
        text = _WHITESPACE.sub(b"", text)
    altchars = b"-_" if (b"-" in text or b"_" in text) else None
    if len(text) % 4:
        text += b"=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as error:
        raise RequestError(400, f"{where} is neither an http(s) URL nor valid base64 ({error}).") from error
    if not raw:
        raise RequestError(400, f"{where} decodes to zero bytes.")
    return raw


def is_url(item: str) -> bool:
    """Whether a data item is an ``http(s)://`` URL (else it is base64)."""
    return item[:8].lower().startswith(("http://", "https://"))


def response_rows(probs: Any, labels: list[str], top_k: int | None) -> list[dict[str, list]]:
    """``[{"probs", "labels"}]`` per image: all classes in class-id order, or the ``top_k`` best, best first."""
    rows = []
    for row in probs:
        if top_k is None:
            rows.append({"probs": [float(p) for p in row.tolist()], "labels": list(labels)})
            continue
        scores, order = row.topk(min(top_k, len(labels)))
        rows.append({"probs": [float(s) for s in scores.tolist()], "labels": [labels[i] for i in order.tolist()]})
    return rows
