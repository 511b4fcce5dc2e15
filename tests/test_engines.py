"""``compile_for_engine`` (OpenVINO, ONNX Runtime; inductor: test_engine_inductor.py) and its graph rewrites, against
the eager fp32 model."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_pixels, randomize_, tiny_config
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

import hf_beit
from hf_beit.export import EngineModel, MissingExportDependencyError, compile_for_engine
from hf_beit.export.engine_graph import (
    ConstantBias,
    SeparateProjectionAttention,
    engine_ready_copy,
    fold_layer_scale,
    fold_relative_position_bias,
)

RELATIVE = {"use_relative_position_bias": True, "use_mean_pooling": True, "num_hidden_layers": 2}
TOLERANCE = 1e-4


def _model(cls=hf_beit.BeitForImageClassification, **overrides):
    return randomize_(cls(tiny_config(**{**RELATIVE, **overrides}))).eval()


@torch.no_grad()
def _eager(model, pixels, names=("logits",)):
    out = model(pixel_values=pixels)
    return {name: out[name] for name in names}


@pytest.fixture(scope="module")
def classifier():
    return _model()


@pytest.fixture(scope="module")
def calibration():
    return random_pixels(8, seed=5)


@pytest.mark.parametrize("separate_qkv", [False, True])
@pytest.mark.parametrize("layout", [RELATIVE, {"use_shared_relative_position_bias": True, "num_hidden_layers": 2}])
def test_folded_copy_computes_the_same_outputs(layout, separate_qkv):
    model = randomize_(hf_beit.BeitForImageClassification(tiny_config(**layout))).eval()
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    folded = engine_ready_copy(model, (4, 4), separate_qkv=separate_qkv)
    attentions = [layer.attention.attention for layer in folded.beit.encoder.layer]
    assert all(isinstance(a, SeparateProjectionAttention) == separate_qkv for a in attentions)
    if separate_qkv:
        with pytest.raises(ValueError, match="does not form attention probabilities"):
            attentions[0](torch.zeros(1, 17, model.config.hidden_size), (4, 4), output_attentions=True)
    pixels = random_pixels(3)
    got, expected = _eager(folded, pixels)["logits"], _eager(model, pixels)["logits"]
    assert (got - expected).abs().max().item() <= 1e-5
    assert not any(isinstance(m, hf_beit.relative_position.BeitRelativePositionBias) for m in folded.modules())
    assert all(layer.lambda_1 is None and layer.lambda_2 is None for layer in folded.beit.encoder.layer)
    # the caller's model is untouched
    assert all(torch.equal(state[name], tensor) for name, tensor in model.state_dict().items())
    assert isinstance(model.beit.encoder.layer[0].lambda_1, torch.nn.Parameter)


def test_fold_counts_and_constant_bias_checks_the_grid(classifier):
    copy = hf_beit.export.program.reference_copy(classifier)
    assert fold_relative_position_bias(copy, (4, 4)) == 2
    assert fold_layer_scale(copy) == 4
    bias = copy.beit.encoder.layer[0].attention.attention.relative_position_bias
    assert isinstance(bias, ConstantBias) and bias((4, 4)).shape == (4, 17, 17)
    with pytest.raises(ValueError, match=r"folded for a \(4, 4\) patch grid"):
        bias((5, 4))


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime"])
def test_fp32_engine_matches_eager(classifier, engine):
    pytest.importorskip(engine)
    compiled = compile_for_engine(classifier, engine, "fp32")
    assert isinstance(compiled, EngineModel) and compiled.max_difference <= TOLERANCE
    for batch in (1, 3):  # 3: a batch size never traced or verified
        pixels = random_pixels(batch, seed=batch)
        out = compiled(pixel_values=pixels)
        assert isinstance(out, ImageClassifierOutput)
        assert (out.logits - _eager(classifier, pixels)["logits"]).abs().max().item() <= TOLERANCE
    assert compiled(pixel_values=random_pixels(1), return_dict=False)[0].shape == (1, 3)
    assert "torch.export" in compiled.timings
    assert f"engine={engine!r}" in repr(compiled)


def test_wrong_input_and_unsupported_arguments_are_refused(classifier):
    pytest.importorskip("openvino")
    compiled = compile_for_engine(classifier, "openvino", "fp32", verify=False)
    with pytest.raises(ValueError, match=r"compiled for pixel_values of shape \(batch, 3, 32, 32\)"):
        compiled(pixel_values=random_pixels(1, size=40))
    with pytest.raises(ValueError, match="output_hidden_states"):
        compiled(pixel_values=random_pixels(1), output_hidden_states=True)


def _require_openvino_bf16() -> None:
    pytest.importorskip("openvino")
    from hf_beit.acceleration import bf16_available

    if not bf16_available():
        pytest.skip("no native bf16 on this CPU")


def test_openvino_bf16_is_close_to_fp32(classifier):
    _require_openvino_bf16()
    compiled = compile_for_engine(classifier, "openvino", "bf16")
    pixels = random_pixels(4, seed=3)
    expected = _eager(classifier, pixels)["logits"]
    difference = (compiled(pixel_values=pixels).logits - expected).abs().max().item()
    assert 0 < difference <= 0.05 * expected.abs().max().item()  # really bf16, and close


@pytest.mark.parametrize("fp32_head", [True, False])
def test_openvino_fp32_head_keeps_the_residual_stream_fp32(classifier, fp32_head):
    """The fp32 head leaves no GEMM between the residual adds and the output, so OpenVINO keeps them in fp32."""
    _require_openvino_bf16()
    compiled = compile_for_engine(classifier, "openvino", "bf16", fp32_head=fp32_head)
    pixels = random_pixels(2, seed=5)
    logits = compiled(pixel_values=pixels).logits
    expected = _eager(classifier, pixels)["logits"]
    assert (logits - expected).abs().max().item() <= 0.05 * expected.abs().max().item()
    runtime = compiled.backend._request(2).get_compiled_model().get_runtime_model()
    adds = {op.get_rt_info()["runtimePrecision"].astype(str) for op in runtime.get_ordered_ops()
            if "aten.add.Tensor" in op.get_friendly_name() and op.get_rt_info()["layerType"].astype(str) != "Reorder"}
    assert adds == ({"f32"} if fp32_head else {"bf16"}), adds


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime"])
def test_int8_engine_is_close_to_fp32(classifier, calibration, engine):
    pytest.importorskip(engine)
    if engine == "openvino":
        pytest.importorskip("nncf")
    compiled = compile_for_engine(classifier, engine, "int8", calibration=calibration)
    pixels = calibration[:4]
    expected = _eager(classifier, pixels)["logits"]
    difference = (compiled(pixel_values=pixels).logits - expected).abs().max().item()
    assert 0 < difference <= 0.2 * expected.abs().max().item()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnxruntime_gets_q_k_v_as_three_gemms_without_a_split(classifier, precision):
    """ORT's file has q, k, v as three GEMMs, keys transposed once, no Split; in int8 the three projections share
    one quantised input (read from the file in the backend's folder)."""
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    compiled = compile_for_engine(classifier, "onnxruntime", precision)  # verified against eager fp32 while compiling
    blocks = classifier.config.num_hidden_layers
    name = "model.int8.onnx" if precision == "int8" else "model.onnx"
    operators = [node.op_type for node in onnx.load(str(Path(compiled.backend._folder.name) / name)).graph.node]
    assert "Split" not in operators
    if precision == "fp32":
        assert operators.count("MatMul") == 8 * blocks  # q, k, v, output, MLP in and out, scores, context
        assert operators.count("Transpose") == 4 * blocks + 1  # q, k, v, context per block; the patch embedding
    else:  # q, k, v, output, MLP in and out (the head stays fp32: fp32_head)
        assert operators.count("MatMulInteger") == 6 * blocks
        assert operators.count("DynamicQuantizeLinear") == 4 * blocks  # the three projections share one


def test_openvino_gets_q_k_v_as_three_gemms_and_fuses_the_attention(classifier):
    """OpenVINO's model has q, k, v as three GEMMs (no fused projection to split with a 5-D transpose), and the
    CPU plugin still fuses each block's scores, softmax and context into one kernel."""
    pytest.importorskip("openvino")
    compiled = compile_for_engine(classifier, "openvino", "fp32")  # verified against eager fp32 while compiling
    blocks = classifier.config.num_hidden_layers
    operators = [op.get_type_name() for op in compiled.backend.model.get_ops()]
    assert operators.count("MatMul") == 8 * blocks + 1  # q, k, v, output, MLP in and out, scores, context; head
    assert "ScaledDotProductAttention" not in operators and "VariadicSplit" not in operators
    runtime = compiled.backend._request(2).get_compiled_model().get_runtime_model()
    fused = [op for op in runtime.get_ordered_ops() if "aten._softmax" in _original_layers(op)]
    assert len(fused) == blocks and all("bmm" in _original_layers(op) for op in fused)


def _original_layers(op) -> str:
    info = op.get_rt_info()
    return info["originalLayersNames"].astype(str) if "originalLayersNames" in info else ""


def test_openvino_int8_needs_calibration(classifier):
    pytest.importorskip("nncf")
    with pytest.raises(ValueError, match="calibration="):
        compile_for_engine(classifier, "openvino", "int8")


def test_onnxruntime_refuses_bf16(classifier):
    with pytest.raises(ValueError, match="no bf16 kernels"):
        compile_for_engine(classifier, "onnxruntime", "bf16")


def test_feature_extraction_outputs(classifier):
    pytest.importorskip("openvino")
    compiled = compile_for_engine(classifier, "openvino", "fp32", task="image-feature-extraction")
    pixels = random_pixels(2, seed=4)
    out = compiled(pixel_values=pixels)
    assert isinstance(out, BaseModelOutputWithPooling)
    expected = _eager(classifier.beit, pixels, ("last_hidden_state", "pooler_output"))
    for name in ("last_hidden_state", "pooler_output"):
        assert (out[name] - expected[name]).abs().max().item() <= TOLERANCE


def test_other_resolution(classifier):
    pytest.importorskip("openvino")
    compiled = compile_for_engine(classifier, "openvino", "fp32", image_size=(48, 40))
    pixels = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        expected = classifier(pixel_values=pixels, interpolate_pos_encoding=True).logits
    assert (compiled(pixel_values=pixels).logits - expected).abs().max().item() <= TOLERANCE


def test_bad_arguments(classifier):
    with pytest.raises(ValueError, match="engine must be one of"):
        compile_for_engine(classifier, "tensorrt")
    with pytest.raises(ValueError, match="precision must be one of"):
        compile_for_engine(classifier, "openvino", "fp16")


def test_missing_openvino_names_the_extra(classifier, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import now fails as if not installed
    with pytest.raises(MissingExportDependencyError, match=r'pip install "hf_beit\[openvino\]"'):
        compile_for_engine(classifier, "openvino", "fp32")


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime", "inductor"])
def test_predict_cli_engine_option(tmp_path, capsys, engine):
    if engine != "inductor":
        pytest.importorskip(engine)
    import json

    from PIL import Image
    from test_inference_utils import LABELS, save_repo, tiny_classifier, tiny_processor, write_images

    from hf_beit.cli import main

    model = tiny_classifier()
    repo = save_repo(model, tmp_path / "model")
    images = write_images(tmp_path, 3, size=(40, 30))
    assert main(["predict", str(repo), *map(str, images), "--engine", engine, "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    for result, path in zip(printed, images):
        with torch.no_grad():
            pixels = tiny_processor()(images=Image.open(path).convert("RGB"), return_tensors="pt")
            probs = model(**pixels).logits.softmax(-1)[0]
        scores = {p["label"]: p["score"] for p in result["predictions"]}
        assert scores == pytest.approx({k: v for k, v in zip(LABELS, probs.tolist()) if k in scores}, abs=1e-4)


def test_precise_head_computes_the_classifier():
    from hf_beit.export.engine_graph import PreciseHead

    model = _model()
    copy = engine_ready_copy(model, (4, 4), precise_head=True)
    assert isinstance(copy.classifier, PreciseHead)
    pixels = random_pixels(2)
    assert (_eager(copy, pixels)["logits"] - _eager(model, pixels)["logits"]).abs().max().item() <= 1e-5


def test_precise_head_stays_fp32_under_autocast():
    from hf_beit.export.engine_graph import PreciseHead

    torch.manual_seed(0)
    linear = torch.nn.Linear(32, 5)
    head = PreciseHead(linear)
    features = torch.randn(3, 32)
    with torch.no_grad():
        expected = linear(features)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lowered = linear(features)  # what autocast does to a plain head: a bf16 GEMM
            kept = head(features.bfloat16())
    assert lowered.dtype == torch.bfloat16 and kept.dtype == torch.float32
    # the bf16-rounded features are the only rounding left: far below the bf16 GEMM's error
    rounded = torch.nn.functional.linear(features.bfloat16().float(), linear.weight, linear.bias)
    torch.testing.assert_close(kept, rounded, atol=1e-5, rtol=1e-5)
    assert (kept - expected).abs().max() < (lowered.float() - expected).abs().max()


def test_batch_norm_after_a_transposed_convolution_is_folded():
    config = tiny_config(**{**RELATIVE, "num_hidden_layers": 4, "out_indices": [0, 1, 2, 3]})
    segmenter = randomize_(hf_beit.BeitForSemanticSegmentation(config), seed=3).eval()
    folded = engine_ready_copy(segmenter, (6, 6))
    assert isinstance(folded.fpn1[1], torch.nn.Identity) and isinstance(segmenter.fpn1[1], torch.nn.BatchNorm2d)
    pixels = random_pixels(2, size=48, seed=2)
    with torch.no_grad():
        expected = segmenter(pixel_values=pixels, interpolate_pos_encoding=True).logits
        got = folded(pixel_values=pixels, interpolate_pos_encoding=True).logits
    assert (got - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime"])
def test_an_empty_batch_gives_empty_outputs(classifier, engine):
    pytest.importorskip(engine)
    compiled = compile_for_engine(classifier, engine, "fp32", verify=False)
    out = compiled(pixel_values=torch.zeros(0, 3, 32, 32))  # OpenVINO 2026.4 crashed the process on this
    assert out.logits.shape == (0, classifier.config.num_labels)
    assert out.logits.dtype == torch.float32


def test_bad_calibration_and_threads_are_refused_before_compiling(classifier):
    from PIL import Image

    good = random_pixels(2)
    cases = {
        "shape (N, 3, 32, 32) with N >= 1; got shape (2, 3, 40, 40)": random_pixels(2, size=40),
        "got shape (3, 32, 32)": good[0],
        "got shape (0, 3, 32, 32)": good[:0],
        "got a list": [Image.new("RGB", (32, 32))],
        "got torch.uint8 values": (good * 100).clamp(0, 255).to(torch.uint8),
        "NaN or infinite": good.clone().fill_(float("nan")),
    }
    for message, calibration in cases.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            compile_for_engine(classifier, "onnxruntime", "int8", calibration=calibration)
    for threads in (0, -1, 1.5, True, "2", np.int64(0)):
        with pytest.raises(ValueError, match="threads must be a positive whole number"):
            compile_for_engine(classifier, "onnxruntime", "fp32", threads=threads)


def test_threads_may_be_a_numpy_integer(classifier):
    pytest.importorskip("onnxruntime")
    compiled = compile_for_engine(classifier, "onnxruntime", "fp32", threads=np.int64(1))  # verified against eager
    pixels = random_pixels(2)
    with torch.no_grad():
        expected = classifier(pixel_values=pixels).logits
    torch.testing.assert_close(compiled(pixel_values=pixels).logits, expected, atol=1e-4, rtol=1e-4)


def test_nncf_output_goes_to_the_stream_given_never_to_stdout(capsys):
    import io
    import logging

    pytest.importorskip("nncf")
    from nncf.common.logging import nncf_logger

    from hf_beit.export.engine_openvino import _nncf_output

    handler = logging.StreamHandler(sys.stdout)
    nncf_logger.addHandler(handler)
    try:
        target = io.StringIO()
        with _nncf_output(target):
            nncf_logger.info("a message")
            print("a progress bar")
        with _nncf_output(None):
            nncf_logger.info("hidden")
            print("hidden")
        nncf_logger.info("after")
    finally:
        nncf_logger.removeHandler(handler)
    assert "a message" in target.getvalue() and "a progress bar" in target.getvalue()
    out = capsys.readouterr().out
    assert "hidden" not in out and "a message" not in out and "a progress bar" not in out
    assert handler.stream is sys.stdout  # restored: "after" went to stdout again
    assert "after" in out


@pytest.mark.parametrize("skip_errors", [False, True])
def test_predict_cli_openvino_int8_calibrates_on_the_readable_images(tmp_path, capsys, skip_errors):
    pytest.importorskip("nncf")
    import json

    from test_inference_utils import save_repo, tiny_classifier, write_images

    from hf_beit.cli import main

    repo = save_repo(tiny_classifier(), tmp_path / "model")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    images = write_images(tmp_path, 3, size=(40, 30))
    argv = ["predict", str(repo), str(broken), *map(str, images), "--engine", "openvino", "--precision", "int8"]
    code = main(argv + ["--skip-errors"] * skip_errors)
    captured = capsys.readouterr()
    assert captured.out.startswith("["), captured.err[-2000:]
    printed = json.loads(captured.out)  # only the results on stdout, not NNCF's progress
    assert code == (0 if skip_errors else 1)
    classified = [r for r in printed if "predictions" in r]
    assert [r["image"] for r in classified] == [str(path) for path in images]
    assert ("broken.png" in json.dumps(printed)) is not skip_errors
    assert "broken.png" in captured.err
    # no readable image at all: as with every engine, error entries and exit 1 (--skip-errors: exit 2, no report)
    argv = ["predict", str(repo), str(broken), "--engine", "openvino", "--precision", "int8", "--quiet"]
    code = main(argv + ["--skip-errors"] * skip_errors)
    captured = capsys.readouterr()
    if skip_errors:
        assert code == 2 and captured.out == ""
        assert "error: None of the 1 images could be read; no report was written" in captured.err
    else:
        assert code == 1 and [sorted(r) for r in json.loads(captured.out)] == [["error", "image"]]
        assert "none of the 1 images could be processed (listed above)." in captured.err
