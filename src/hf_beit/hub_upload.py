"""Upload a model folder to the Hugging Face Hub (or any endpoint speaking its API): converted and fine-tuned repos."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import HfApi


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload BEiT model with hf_beit",
    missing_hint: str = "write the model first",
) -> str:
    """Create ``repo_id`` (if needed) and upload every file of ``folder`` in one commit; returns the commit URL.

    ``endpoint`` defaults to ``$HF_ENDPOINT`` (else huggingface.co) and ``token`` to ``$HF_TOKEN`` / the cached login.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory; {missing_hint}.")
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT"), token=token or os.environ.get("HF_TOKEN"))
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message=commit_message
    )
    return commit.commit_url
