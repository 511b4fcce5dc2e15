"""Decoding one request's images in a worker thread: base64, header checks, decode, preprocess, one at a time.

Each image is charged to the request's :class:`~hf_beit.inference.server.admission.Ticket` from its header (the
:class:`~hf_beit.pixel_budget.ImageCost` of decoding and preprocessing it) before any pixel is decoded; once it is
preprocessed only its pixel values stay charged. The worker stops between images when the client has gone.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from ...image_loading import ImageTooLargeError, InvalidImageError
from ...pixel_budget import ImageCost, PixelBudget
from .._images import load_pixel_values
from .admission import Ticket
from .limits import ClientGone, RequestError
from .payload import decode_base64

#: One data item: base64 text, or the bytes fetched from its URL.
Source = str | bytes


def _message(where: str, error: Exception) -> str:
    text = str(error)
    return text if text.startswith(where) else f"{where}: {text}"


def decode_request(sources: list[Source], image_processor: Any, budget: PixelBudget, ticket: Ticket,
                   cancelled: threading.Event) -> list[torch.Tensor]:
    """``(C, H, W)`` pixel values of every source, in order; ``RequestError`` 400/413 naming the bad item.

    ``sources`` is emptied as it is consumed (each raw image is freed once decoded).
    """
    pixel_values = []
    for index in range(len(sources)):
        if cancelled.is_set():
            raise ClientGone
        where = f"input_data.data[{index}]"
        source, sources[index] = sources[index], None
        raw = decode_base64(source, where) if isinstance(source, str) else source
        del source
        charged: list[ImageCost] = []

        def charge(cost: ImageCost, where: str = where, charged: list[ImageCost] = charged) -> None:
            ticket.reserve(cost.work_bytes, f"{where} ({cost.width}x{cost.height})")
            charged.append(cost)

        try:
            pixel_values.append(load_pixel_values(raw, image_processor, budget, where, on_cost=charge))
        except ImageTooLargeError as error:
            raise RequestError(413, _message(where, error)) from error
        except InvalidImageError as error:
            raise RequestError(400, _message(where, error)) from error
        finally:
            if charged:
                ticket.release(charged[0].work_bytes - charged[0].output_bytes)
    return pixel_values
