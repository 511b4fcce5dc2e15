"""The *Uses* snippets of a model card: Python, embeddings, pipeline, command line and HTTP endpoint, per task.

Every snippet runs as written: the Python ones load the example photo from scikit-learn (a dependency of hf_beit),
the shell ones read the copy the converter writes into the repo (:mod:`.example_image`). A repo whose head is new
(a pre-trained checkpoint re-targeted to a task) gets no prediction snippets, only embeddings and fine-tuning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch

from .example_image import EXAMPLE_IMAGE, SKLEARN_NAME

#: How many classes the prediction snippets print and the endpoint sample returns (at most the number of labels).
TOP_K = 3
SERVER_URL = "http://127.0.0.1:8000"
_MADE_UP_PROBS = (0.6, 0.25, 0.1)  # len == TOP_K
_IMAGE_IMPORTS = "from PIL import Image\nfrom sklearn.datasets import load_sample_image\n"
_IMAGE = (f'image = Image.fromarray(load_sample_image("{SKLEARN_NAME}"))'
          f"  # the photo saved as {EXAMPLE_IMAGE} in this repo\n")

_LOAD = (
    'processor = BeitImageProcessor.from_pretrained("{repo}")\n'
    'model = {cls}.from_pretrained("{repo}").eval()\n'
)
_GET_EXAMPLE = (
    f"hf download {{repo}} {EXAMPLE_IMAGE} --local-dir .  # or copy {EXAMPLE_IMAGE} from a local copy of the repo\n"
)


@dataclass(frozen=True)
class UsageBlock:
    """One snippet of the card: a heading, a sentence, the code and its fence language."""

    title: str
    text: str
    language: str
    code: str


def _python(hf_beit_imports: str, body: str, repo: str, cls: str, torch: bool = False) -> str:
    head = ("import torch\n" if torch else "") + _IMAGE_IMPORTS
    return f"{head}\n{hf_beit_imports}\n{_IMAGE}{_LOAD.format(repo=repo, cls=cls)}{body}"


def _main_block(task: str, repo: str, config: Any, k: int) -> UsageBlock:
    cls = config.architectures[0]
    imports = f"from hf_beit import {cls}, BeitImageProcessor\n"
    inputs = 'inputs = processor(images=image, return_tensors="pt")\n'
    if task == "classification":
        body = inputs + (
            "with torch.no_grad():\n    probs = model(**inputs).logits.softmax(-1)[0]\n"
            f"for p, i in zip(*probs.topk({k})):\n"
            '    print(f"{model.config.id2label[i.item()]}: {p.item():.3f}")\n'
        )
        return UsageBlock("Python", f"The {k} most probable classes of the example photo.", "python",
                          _python(imports, body, repo, cls, torch=True))
    if task == "segmentation":
        imports = f"from hf_beit import {cls}, BeitImageProcessor\nfrom hf_beit.inference import segment_image\n"
        body = (
            "segmentation = segment_image(model, processor, image)  # (height, width) class ids at the photo's size\n"
            "print([model.config.id2label[int(i)] for i in segmentation.unique()])\n"
        )
        return UsageBlock("Python", "Resize as described under *Preprocessing*, slide the model over the result "
                          "(the evaluation protocol) and map the class ids back to the photo. transformers' "
                          "`image-segmentation` pipeline is no substitute: it runs one forward over the whole resized "
                          "image, whose patch grid does not match the model's.", "python",
                          _python(imports, body, repo, cls))
    if task == "mim":
        patches = (config.image_size // config.patch_size) ** 2
        masked = patches * 75 // 196  # BEiT masks 75 of 196 patches
        body = inputs + (
            f"bool_masked_pos = torch.zeros(1, {patches}, dtype=torch.bool)\nbool_masked_pos[:, :{masked}] = True\n"
        ) + (
            "with torch.no_grad():\n"
            f"    logits = model(**inputs, bool_masked_pos=bool_masked_pos).logits  # (1, {patches}, "
            f"{config.vocab_size}) visual-token logits\n"
        )
        return UsageBlock("Python", "Visual-token logits for masked patches (the pre-training task).", "python",
                          _python(imports, body, repo, cls, torch=True))
    body = inputs + "with torch.no_grad():\n" + (
        f"    features = model(**inputs).pooler_output  # (1, {config.hidden_size}) image embedding\n"
    )
    return UsageBlock("Python", "The pooled image embedding of the example photo.", "python",
                      _python(imports, body, repo, cls, torch=True))


def _embeddings_block(repo: str, config: Any) -> UsageBlock:
    cls = config.architectures[0]
    patches = (config.image_size // config.patch_size) ** 2
    imports = f"from hf_beit import {cls}, BeitImageProcessor\nfrom hf_beit.inference import extract_embeddings\n"
    body = (
        f"embedding = extract_embeddings(model, processor, [image])  # (1, {config.hidden_size}), pooled\n"
        f'patch_tokens = extract_embeddings(model, processor, [image], pooling="none")  # (1, {patches}, '
        f"{config.hidden_size})\n"
    )
    return UsageBlock("Embeddings", "Image embeddings from the encoder (`pooling=\"cls\"` gives the CLS token).",
                      "python", _python(imports, body, repo, cls))


_PIPELINES = {"classification": ("image-classification", "Classification with transformers' pipeline.")}
_FEATURES = ("image-feature-extraction", "Final tokens as nested lists with transformers' feature-extraction pipeline.")


def _pipeline_block(task: str, repo: str, k: int) -> UsageBlock:
    name, text = _PIPELINES.get(task, _FEATURES)
    call = f"image, top_k={k}" if task == "classification" else "image"
    code = (
        f"{_IMAGE_IMPORTS}\nfrom hf_beit.inference import pipeline\n\n{_IMAGE}"
        f'pipe = pipeline("{name}", "{repo}")\nprint(pipe({call}))\n'
    )
    text += (" `hf_beit.inference.pipeline` builds it with hf_beit's classes (`transformers.pipeline` would load its "
             "own).")
    return UsageBlock("Pipeline", text, "python", code)


def sample_response(labels: list[str], k: int) -> list[dict[str, list]]:
    """The endpoint's answer for one image with ``--top-k k``, with made-up probabilities (for the card)."""
    from ..inference.server.payload import response_rows

    scores = torch.zeros(1, len(labels), dtype=torch.float64)
    scores[0, :k] = torch.tensor(_MADE_UP_PROBS[:k], dtype=torch.float64)
    return response_rows(scores, labels, k)


def _shell_blocks(task: str, repo: str, config: Any, k: int, labels: list[str]) -> list[UsageBlock]:
    get = _GET_EXAMPLE.format(repo=repo)
    if task == "segmentation":
        return [UsageBlock("Command line", "Class-id mask and overlay PNG per image, sliding window as above.",
                           "bash", f"{get}hf-beit segment {repo} {EXAMPLE_IMAGE} --output masks\n")]
    if task != "classification":
        return []
    request = (
        "printf '{\"input_data\": {\"columns\": [\"image\"], \"index\": [0], \"data\": [\"%s\"]}}' "
        f"\"$(base64 < {EXAMPLE_IMAGE} | tr -d '\\n')\" > request.json\n"
    )
    serve = (
        f"hf-beit serve {repo} --top-k {k} &  # {SERVER_URL}; wait for \"Application startup complete\"\n"
        f"{request}curl -s {SERVER_URL}/score -H 'Content-Type: application/json' --data-binary @request.json\n"
    )
    sample = "[\n  " + ",\n  ".join(json.dumps(row) for row in sample_response(labels, k)) + "\n]"
    return [
        UsageBlock("Command line", f"Top-{k} labels per image as JSON (`--format csv`, `--output FILE`).", "bash",
                   f"{get}hf-beit predict {repo} {EXAMPLE_IMAGE} --top-k {k}\n"),
        UsageBlock("HTTP endpoint", "`hf-beit serve` (extra `hf_beit[serve]`) answers `POST /score` with an Azure "
                   "ML online-endpoint body: base64 images or URLs in `input_data.data`.", "bash", serve),
        UsageBlock("Response", f"One object per image with the {k} most probable classes, best first (without "
                   "`--top-k`: every class in class-id order). The format is the server's; these numbers are "
                   "made up, not this model's output.", "json", sample + "\n"),
    ]


def _finetune_block(repo: str, task: str) -> UsageBlock:
    data = "an image folder, one sub-folder per class" if task == "classification" else "images/ and masks/"
    code = f"hf-beit train {task} --init-from {repo} --dataset path/to/data --output-dir finetuned  # {data}\n"
    return UsageBlock("Fine-tuning", "The head is new: train it (and the encoder) before predicting.", "bash", code)


def usage_blocks(task: str, repo: str, config: Any, *, head_trained: bool = True) -> list[UsageBlock]:
    """The snippets of a ``task`` repo called ``repo`` with ``config`` (``head_trained=False``: a new head)."""
    from ..inference._loading import label_names

    k = min(TOP_K, config.num_labels) if task in ("classification", "segmentation") else TOP_K
    if not head_trained:
        return [_embeddings_block(repo, config), _finetune_block(repo, task)]
    blocks = [_main_block(task, repo, config, k)]
    if task != "segmentation":  # its pipeline would run the whole resized image at once (see the Python block)
        blocks += [_embeddings_block(repo, config), _pipeline_block(task, repo, k)]
    return blocks + _shell_blocks(task, repo, config, k, label_names(config))


def usage_markdown(blocks: list[UsageBlock]) -> str:
    """The blocks as card sections (``### title``, the sentence, the fenced code), as the conversion template lays
    them out."""
    return "\n\n".join(f"### {b.title}\n\n{b.text}\n\n```{b.language}\n{b.code}```" for b in blocks)
