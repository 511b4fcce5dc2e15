"""An independent, functional re-implementation of the original unilm/mmseg BEiT forward passes, written from the
papers' and reference notes' description, working directly on unilm-named state dicts. It is the ground truth for
the MIM and segmentation conversion tests; its classification path is checked against timm here.

Also builds synthetic original checkpoints (random weights, unilm/mmseg names, every layout).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

EPS = 1e-6


# ----------------------------------------------------------------------------------------------- synthetic weights
def _normal(*shape, std=0.1):
    return torch.randn(*shape) * std


def _layer_norm(prefix: str, dim: int) -> dict:
    return {f"{prefix}.weight": 1 + _normal(dim), f"{prefix}.bias": _normal(dim)}


def make_backbone(
    dim=32,
    depth=4,
    heads=4,
    window=4,
    patch=8,
    *,
    shared=False,
    per_layer=True,
    abs_pos=False,
    layer_scale=True,
    mask_token=False,
    with_index=True,
) -> dict:
    """A unilm-named BEiT backbone state dict with random weights (including relative_position_index buffers)."""
    sd = {
        "cls_token": _normal(1, 1, dim),
        "patch_embed.proj.weight": _normal(dim, 3, patch, patch),
        "patch_embed.proj.bias": _normal(dim),
    }
    rows, tokens = (2 * window - 1) ** 2 + 3, window * window + 1
    if mask_token:
        sd["mask_token"] = _normal(1, 1, dim)
    if abs_pos:
        sd["pos_embed"] = _normal(1, tokens, dim)
    if shared:
        sd["rel_pos_bias.relative_position_bias_table"] = _normal(rows, heads, std=0.5)
        if with_index:
            sd["rel_pos_bias.relative_position_index"] = torch.randint(0, rows, (tokens, tokens))
    for i in range(depth):
        b = f"blocks.{i}."
        sd.update(_layer_norm(b + "norm1", dim) | _layer_norm(b + "norm2", dim))
        sd |= {
            b + "attn.qkv.weight": _normal(3 * dim, dim),
            b + "attn.q_bias": _normal(dim),
            b + "attn.v_bias": _normal(dim),
            b + "attn.proj.weight": _normal(dim, dim),
            b + "attn.proj.bias": _normal(dim),
            b + "mlp.fc1.weight": _normal(4 * dim, dim),
            b + "mlp.fc1.bias": _normal(4 * dim),
            b + "mlp.fc2.weight": _normal(dim, 4 * dim),
            b + "mlp.fc2.bias": _normal(dim),
        }
        if layer_scale:
            sd |= {b + "gamma_1": 0.5 + _normal(dim), b + "gamma_2": 0.5 + _normal(dim)}
        if per_layer:
            sd[b + "attn.relative_position_bias_table"] = _normal(rows, heads, std=0.5)
            if with_index:
                sd[b + "attn.relative_position_index"] = torch.randint(0, rows, (tokens, tokens))
    return sd


def make_mim_checkpoint(vocab=24, **kwargs) -> dict:
    """unilm pre-training layout: shared table, mask token, final norm, lm_head."""
    sd = make_backbone(shared=True, per_layer=False, mask_token=True, **kwargs)
    dim = sd["cls_token"].shape[-1]
    return sd | _layer_norm("norm", dim) | {"lm_head.weight": _normal(vocab, dim), "lm_head.bias": _normal(vocab)}


def _conv_module(prefix: str, out_ch: int, in_ch: int, k: int) -> dict:
    return {f"{prefix}.conv.weight": _normal(out_ch, in_ch, k, k), **_batch_norm(f"{prefix}.bn", out_ch)}


def _batch_norm(prefix: str, ch: int) -> dict:
    return {
        f"{prefix}.weight": 1 + _normal(ch),
        f"{prefix}.bias": _normal(ch),
        f"{prefix}.running_mean": _normal(ch),
        f"{prefix}.running_var": 0.5 + torch.rand(ch),
        f"{prefix}.num_batches_tracked": torch.tensor(7),
    }


def make_upernet_checkpoint(num_classes=5, aux_channels=16, **kwargs) -> dict:
    """mmseg EncoderDecoder layout: ``backbone.`` + FPN, UPerHead ``decode_head.``, FCN ``auxiliary_head.``."""
    backbone = make_backbone(**kwargs)
    dim = backbone["cls_token"].shape[-1]
    sd = {f"backbone.{k}": v for k, v in backbone.items()}
    for name in ("fpn1.0", "fpn1.3", "fpn2.0"):
        sd |= {f"backbone.{name}.weight": _normal(dim, dim, 2, 2), f"backbone.{name}.bias": _normal(dim)}
    sd |= {f"backbone.fpn1.1.{k.split('.', 1)[1]}": v for k, v in _batch_norm("x", dim).items()}
    for k in range(4):
        sd |= _conv_module(f"decode_head.psp_modules.{k}.1", dim, dim, 1)
    sd |= _conv_module("decode_head.bottleneck", dim, 5 * dim, 3)
    for k in range(3):
        sd |= _conv_module(f"decode_head.lateral_convs.{k}", dim, dim, 1) | _conv_module(
            f"decode_head.fpn_convs.{k}", dim, dim, 3
        )
    sd |= _conv_module("decode_head.fpn_bottleneck", dim, 4 * dim, 3)
    sd |= {
        "decode_head.conv_seg.weight": _normal(num_classes, dim, 1, 1),
        "decode_head.conv_seg.bias": _normal(num_classes),
    }
    sd |= _conv_module("auxiliary_head.convs.0", aux_channels, dim, 3)
    sd |= {
        "auxiliary_head.conv_seg.weight": _normal(num_classes, aux_channels, 1, 1),
        "auxiliary_head.conv_seg.bias": _normal(num_classes),
    }
    return sd


# ----------------------------------------------------------------------------------------------- reference forward
def relative_index(window: int) -> torch.Tensor:
    """(N+1)x(N+1) index into a ((2W-1)^2 + 3)-row table: dh-major offsets; cls->token, token->cls, cls->cls last."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + window - 1
    num = (2 * window - 1) ** 2
    index = torch.empty(window * window + 1, window * window + 1, dtype=torch.long)
    index[1:, 1:] = rel[0] * (2 * window - 1) + rel[1]
    index[0, 1:], index[1:, 0], index[0, 0] = num, num + 1, num + 2
    return index


def _bias(table: torch.Tensor, window: int) -> torch.Tensor:
    return table[relative_index(window)].permute(2, 0, 1)  # heads, N+1, N+1


def _ln(sd, prefix, x):
    return F.layer_norm(x, x.shape[-1:], sd[prefix + ".weight"], sd[prefix + ".bias"], EPS)


def _attention(sd, b, x, heads, bias):
    batch, tokens, dim = x.shape
    qkv_bias = torch.cat([sd[b + "q_bias"], torch.zeros_like(sd[b + "q_bias"]), sd[b + "v_bias"]])
    q, k, v = F.linear(x, sd[b + "qkv.weight"], qkv_bias).reshape(batch, tokens, 3, heads, -1).permute(2, 0, 3, 1, 4)
    scores = (q * (dim // heads) ** -0.5) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, tokens, dim)
    return F.linear(out, sd[b + "proj.weight"], sd[b + "proj.bias"])


def encoder(sd, pixel_values, heads, bool_masked_pos=None) -> list[torch.Tensor]:
    """Token sequences after every block of the original BEiT."""
    patch = sd["patch_embed.proj.weight"].shape[-1]
    x = F.conv2d(pixel_values, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch)
    window = x.shape[-1]
    x = x.flatten(2).transpose(1, 2)
    if bool_masked_pos is not None:
        w = bool_masked_pos.unsqueeze(-1).type_as(x)
        x = x * (1 - w) + sd["mask_token"] * w
    x = torch.cat([sd["cls_token"].expand(x.shape[0], -1, -1), x], dim=1)
    if "pos_embed" in sd:
        x = x + sd["pos_embed"]
    outputs = []
    for i in range(1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))):
        x = block(sd, f"blocks.{i}.", x, heads, window)
        outputs.append(x)
    return outputs


def block(sd, b, x, heads, window):
    """One original block (keys under prefix ``b``); its own relative table, else the shared one, else none."""
    table = sd.get(b + "attn.relative_position_bias_table", sd.get("rel_pos_bias.relative_position_bias_table"))
    bias = None if table is None else _bias(table, window)
    gamma_1, gamma_2 = sd.get(b + "gamma_1", 1.0), sd.get(b + "gamma_2", 1.0)
    x = x + gamma_1 * _attention(sd, b + "attn.", _ln(sd, b + "norm1", x), heads, bias)
    hidden = F.gelu(F.linear(_ln(sd, b + "norm2", x), sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"]))
    return x + gamma_2 * F.linear(hidden, sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])


def mim_logits(sd, pixel_values, heads, bool_masked_pos):
    """Visual-token logits for every patch (what transformers' BeitForMaskedImageModeling returns)."""
    x = _ln(sd, "norm", encoder(sd, pixel_values, heads, bool_masked_pos)[-1])
    return F.linear(x[:, 1:], sd["lm_head.weight"], sd["lm_head.bias"])


def classification_logits(sd, pixel_values, heads):
    x = encoder(sd, pixel_values, heads)[-1]
    pooled = _ln(sd, "fc_norm", x[:, 1:].mean(1)) if "fc_norm.weight" in sd else _ln(sd, "norm", x)[:, 0]
    return F.linear(pooled, sd["head.weight"], sd["head.bias"])


def _bn(sd, prefix, x):
    return F.batch_norm(
        x,
        sd[prefix + ".running_mean"],
        sd[prefix + ".running_var"],
        sd[prefix + ".weight"],
        sd[prefix + ".bias"],
        training=False,
        eps=1e-5,
    )


def _conv_bn_relu(sd, prefix, x):
    weight = sd[prefix + ".conv.weight"]
    return F.relu(_bn(sd, prefix + ".bn", F.conv2d(x, weight, padding=weight.shape[-1] // 2)))


def _resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def upernet_logits(sd, pixel_values, heads, out_indices):
    """(decode logits, auxiliary logits) of mmseg's BEiT + UPerHead + FCNHead (stride patch/4)."""
    backbone = {k.removeprefix("backbone."): v for k, v in sd.items() if k.startswith("backbone.")}
    blocks = encoder(backbone, pixel_values, heads)
    grid = pixel_values.shape[-1] // backbone["patch_embed.proj.weight"].shape[-1]
    feats = [blocks[i][:, 1:].transpose(1, 2).reshape(pixel_values.shape[0], -1, grid, grid) for i in out_indices]

    def conv_t(name, x):
        return F.conv_transpose2d(x, backbone[name + ".weight"], backbone[name + ".bias"], stride=2)

    feats = [
        conv_t("fpn1.3", F.gelu(_bn(backbone, "fpn1.1", conv_t("fpn1.0", feats[0])))),
        conv_t("fpn2.0", feats[1]),
        feats[2],
        F.max_pool2d(feats[3], 2, 2),
    ]
    top = feats[3]
    pooled = [
        _resize(_conv_bn_relu(sd, f"decode_head.psp_modules.{k}.1", F.adaptive_avg_pool2d(top, s)), top.shape[2:])
        for k, s in enumerate((1, 2, 3, 6))
    ]
    laterals = [_conv_bn_relu(sd, f"decode_head.lateral_convs.{i}", feats[i]) for i in range(3)]
    laterals.append(_conv_bn_relu(sd, "decode_head.bottleneck", torch.cat([top, *pooled], 1)))
    for i in range(3, 0, -1):
        laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[2:])
    outs = [_conv_bn_relu(sd, f"decode_head.fpn_convs.{i}", laterals[i]) for i in range(3)] + [laterals[3]]
    outs = [outs[0]] + [_resize(o, outs[0].shape[2:]) for o in outs[1:]]
    fused = _conv_bn_relu(sd, "decode_head.fpn_bottleneck", torch.cat(outs, 1))
    logits = F.conv2d(fused, sd["decode_head.conv_seg.weight"], sd["decode_head.conv_seg.bias"])
    aux = _conv_bn_relu(sd, "auxiliary_head.convs.0", feats[2])
    aux_logits = F.conv2d(aux, sd["auxiliary_head.conv_seg.weight"], sd["auxiliary_head.conv_seg.bias"])
    return logits, aux_logits


def segmentation_loss(logits, aux_logits, labels, aux_weight=0.4):
    """transformers' convention: upsample both heads to the label size, CE with ignore index 255."""

    def ce(x):
        return F.cross_entropy(_resize(x, labels.shape[-2:]), labels, ignore_index=255)

    return ce(logits) + aux_weight * ce(aux_logits)


# ------------------------------------------------------------------------------------------ checks of the reference
def test_reference_index_layout():
    index = relative_index(2)
    assert index.shape == (5, 5) and index[0, 0] == 11 and (index[0, 1:] == 9).all() and (index[1:, 0] == 10).all()
    assert index[1, 1] == 4  # zero offset is the centre of the 3x3 offset grid
    assert index[1, 4] == 0 and index[4, 1] == 8  # (dh, dw) = (-1, -1) and (+1, +1)


@pytest.mark.parametrize("abs_pos", [False, True])
def test_reference_classification_matches_timm(abs_pos):
    beit = pytest.importorskip("timm.models.beit")
    torch.manual_seed(0)
    model = beit.Beit(
        img_size=32,
        patch_size=8,
        num_classes=7,
        embed_dim=32,
        depth=2,
        num_heads=4,
        init_values=None if abs_pos else 0.1,
        use_abs_pos_emb=abs_pos,
        use_rel_pos_bias=not abs_pos,
        global_pool="token" if abs_pos else "avg",
    ).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(pixel_values)
    actual = classification_logits(model.state_dict(), pixel_values, heads=4)
    assert (expected - actual).abs().max() < 1e-5
    assert math.isfinite(actual.abs().max().item())
