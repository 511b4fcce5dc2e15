"""Layer-wise learning-rate decay parameter groups, following the BEiT (unilm) fine-tuning rule.

Layer ids (L = number of transformer blocks):

* ``beit.embeddings.*`` (cls_token, mask_token, position_embeddings, patch_embeddings) -> 0
* block ``k`` (``beit.encoder.layer.k.*``, or transformers 5.x in-memory ``beit.layers.k.*``) -> k + 1
* everything else (shared relative-position bias, final norms, pooler, heads, FPN/decode heads) -> L + 1

The learning rate of a group is ``lr * layer_decay ** (L + 1 - id)``. Weight decay is switched off for 1-D
parameters, ``.bias`` parameters, the cls token and the absolute position embeddings; relative-position tables
are decayed unless ``decay_relative_position_tables=False``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from torch import nn

_BLOCK_PATTERN = re.compile(r"^(?:encoder\.layer|layers)\.(\d+)\.")
_BACKBONE_PREFIXES = ("beit.", "backbone.")
_NO_DECAY_SUFFIXES = ("embeddings.cls_token", "embeddings.position_embeddings")
_RELATIVE_TABLE_SUFFIX = "relative_position_bias_table"


def _strip_backbone_prefix(name: str) -> str | None:
    """Return the name relative to the backbone, or ``None`` when the parameter is not in the backbone."""
    for prefix in _BACKBONE_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    if name.startswith(("embeddings.", "encoder.", "layers.")):  # a bare BeitModel
        return name
    return None


def get_layer_id(name: str, num_layers: int) -> int:
    """Layer id of parameter ``name`` in a BEiT model with ``num_layers`` blocks (unilm ``get_num_layer_for_vit``)."""
    inner = _strip_backbone_prefix(name)
    if inner is None:
        return num_layers + 1
    if inner.startswith("embeddings."):
        return 0
    match = _BLOCK_PATTERN.match(inner)
    if match is not None:
        block = int(match.group(1))
        if block >= num_layers:
            raise ValueError(f"Parameter {name!r} belongs to block {block} but the model has {num_layers} blocks.")
        return block + 1
    return num_layers + 1


def uses_weight_decay(name: str, param: torch.Tensor, decay_relative_position_tables: bool = True) -> bool:
    """unilm's rule: no weight decay on 1-D tensors, biases, the cls token and absolute position embeddings."""
    if param.ndim <= 1 or name.endswith(".bias") or name.endswith(_NO_DECAY_SUFFIXES):
        return False
    return decay_relative_position_tables or not name.endswith(_RELATIVE_TABLE_SUFFIX)


def layer_decay_parameter_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]] | nn.Module,
    num_layers: int,
    weight_decay: float,
    layer_decay: float = 1.0,
    decay_relative_position_tables: bool = True,
) -> list[dict]:
    """Build optimizer parameter groups named ``layer_{id}_{decay|no_decay}``.

    Each group holds ``params``, ``param_names``, ``weight_decay``, ``lr_scale`` and ``group_name``; groups are
    ordered by layer id, then decay before no_decay. Frozen parameters (``requires_grad=False``) are skipped.
    Pass ``layer_decay=1.0`` for plain decay/no-decay groups.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
    if isinstance(named_parameters, nn.Module):
        named_parameters = named_parameters.named_parameters()
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        layer_id = get_layer_id(name, num_layers)
        decay = uses_weight_decay(name, param, decay_relative_position_tables)
        key = (layer_id, decay)
        if key not in groups:
            groups[key] = {
                "group_name": f"layer_{layer_id}_{'decay' if decay else 'no_decay'}",
                "params": [],
                "param_names": [],
                "weight_decay": weight_decay if decay else 0.0,
                "lr_scale": layer_decay ** (num_layers + 1 - layer_id),
            }
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0], not k[1]))]


def layer_decay_optimizer_cls_and_kwargs(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float = 0.05,
    layer_decay: float = 1.0,
    num_layers: int | None = None,
    decay_relative_position_tables: bool = True,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> tuple[type[torch.optim.AdamW], dict]:
    """``(AdamW, kwargs)`` for ``transformers.Trainer(optimizer_cls_and_kwargs=...)``.

    ``kwargs["params"]`` holds the :func:`layer_decay_parameter_groups` with ``lr = learning_rate * lr_scale``
    (the Trainer takes the groups from there). A learning-rate scheduler built afterwards (``LambdaLR``) multiplies
    every group's initial lr by the same factor, so the per-group scale holds for the whole schedule, as in unilm.
    """
    if num_layers is None:
        num_layers = _num_layers_of(model)
    groups = layer_decay_parameter_groups(model, num_layers, weight_decay, layer_decay, decay_relative_position_tables)
    for group in groups:
        group["lr"] = learning_rate * group["lr_scale"]
    return torch.optim.AdamW, {"params": groups, "lr": learning_rate, "betas": betas, "eps": eps}


def create_layer_decay_optimizer(model: nn.Module, learning_rate: float, **kwargs) -> torch.optim.AdamW:
    """AdamW over the layer-decay groups; ``kwargs`` as for :func:`layer_decay_optimizer_cls_and_kwargs`."""
    optimizer_cls, optimizer_kwargs = layer_decay_optimizer_cls_and_kwargs(model, learning_rate, **kwargs)
    return optimizer_cls(optimizer_kwargs.pop("params"), **optimizer_kwargs)


def _num_layers_of(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "num_hidden_layers"):
        raise ValueError(
            "Cannot infer the number of blocks: pass num_layers or use a model with config.num_hidden_layers."
        )
    return int(config.num_hidden_layers)
