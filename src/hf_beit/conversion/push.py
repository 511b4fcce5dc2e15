"""Upload a converted repo to the Hugging Face Hub (:func:`hf_beit.hub_upload.push_folder` with the converter's
commit message)."""

from __future__ import annotations

import os
from typing import Any

from ..hub_upload import push_folder


def push_to_hub(folder: str | os.PathLike, repo_id: str, **options: Any) -> str:
    """Create ``repo_id`` (if needed) and upload the converted ``folder`` in one commit; returns the commit URL."""
    options.setdefault("commit_message", "Upload BEiT checkpoint converted with hf_beit")
    options.setdefault("missing_hint", "convert the checkpoint first")
    return push_folder(folder, repo_id, **options)
