"""ONNX (run in onnxruntime) and torch.export programs of the three tasks against the eager PyTorch models."""

from __future__ import annotations

import onnx
import onnxruntime
import pytest
import torch
from conftest import random_pixels, randomize_, tiny_config

import hf_beit
from hf_beit.acceleration import inference_precision, optimize_for_inference
from hf_beit.export import (
    MissingExportDependencyError,
    OnnxRunner,
    UnsupportedExportError,
    export_onnx,
    export_program,
    graph_operators,
)
from hf_beit.export.onnx_export import write_onnx
from hf_beit.export.program import trace_for_export

TOLERANCE = 1e-4  # fp32, max abs difference
RELATIVE = {"use_relative_position_bias": True, "use_mean_pooling": True}  # fine-tuned BEiT layout
ABSOLUTE = {"use_absolute_position_embeddings": True}
SEGMENTATION = {"out_indices": [0, 1, 2, 3]}  # UPerNet taps 4 blocks; other models get 2 (tracing time)


def _model(cls, seed=0, **overrides):
    overrides.setdefault("num_hidden_layers", 4 if cls is hf_beit.BeitForSemanticSegmentation else 2)
    return randomize_(cls(tiny_config(**overrides)), seed=seed).eval()


@torch.no_grad()
def _eager(model, pixels, names):
    out = model(pixel_values=pixels, interpolate_pos_encoding=True)
    return {name: out[name] for name in names}


def _assert_close(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert type(value) is torch.Tensor  # a real tensor: exporting must not leave fake tensors in caches
        got_value = torch.as_tensor(got[name])
        assert got_value.shape == value.shape, name
        assert (got_value - value).abs().max().item() <= TOLERANCE, name


def _input_dims(path) -> list:
    graph = onnx.load(str(path)).graph
    return [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def classifier():
    return _model(hf_beit.BeitForImageClassification, **RELATIVE)


@pytest.fixture(scope="module")
def classifier_traced(classifier):
    return trace_for_export(classifier)


@pytest.fixture(scope="module")
def classifier_onnx(classifier_traced, tmp_path_factory):
    return write_onnx(classifier_traced, tmp_path_factory.mktemp("onnx") / "classifier.onnx")


@pytest.fixture(scope="module")
def embedder():
    return _model(hf_beit.BeitModel, seed=2, **ABSOLUTE)


@pytest.fixture(scope="module")
def embedder_traced(embedder):
    return trace_for_export(embedder, image_size="dynamic")


@pytest.fixture(scope="module")
def segmenter():
    return _model(hf_beit.BeitForSemanticSegmentation, seed=3, **SEGMENTATION, **RELATIVE)


@pytest.fixture(scope="module")
def segmenter_traced(segmenter):
    return trace_for_export(segmenter, image_size=80)  # 10x10 patches, 5x5 top level: pools 2, 3, 6 do not divide


def test_onnx_classification_dynamic_batch_in_onnxruntime(classifier, classifier_onnx):
    assert _input_dims(classifier_onnx) == ["batch", 3, 32, 32]
    session = onnxruntime.InferenceSession(str(classifier_onnx))
    assert [o.name for o in session.get_outputs()] == ["logits"]
    for batch in (1, 3):  # one file, two batch sizes (a batch-1 example used to freeze the batch axis)
        pixels = random_pixels(batch, seed=batch)
        (logits,) = session.run(None, {"pixel_values": pixels.numpy()})
        _assert_close({"logits": logits}, _eager(classifier, pixels, ["logits"]))


def test_weights_of_large_models_go_beside_the_file(classifier, classifier_traced, classifier_onnx, tmp_path,
                                                   monkeypatch):
    monkeypatch.setattr("hf_beit.export.onnx_export._SINGLE_FILE_LIMIT", 0)  # as if the weights were > 1.8 GB
    path = write_onnx(classifier_traced, tmp_path / "large.onnx")
    weights = (tmp_path / "large.onnx.data").stat().st_size
    assert weights > 0 and path.stat().st_size + weights >= classifier_onnx.stat().st_size > path.stat().st_size
    pixels = random_pixels(2, seed=9)
    _assert_close(OnnxRunner(path)(pixels), _eager(classifier, pixels, ["logits"]))


def test_onnx_graph_is_the_reference_computation(classifier_onnx):
    graph = onnx.load(str(classifier_onnx)).graph
    domains = {node.domain for node in graph.node}
    assert domains <= {"", "ai.onnx"}, domains  # standard operators only
    assert not [node.op_type for node in graph.node if "mkldnn" in node.op_type.lower()]


def test_every_linear_reads_its_weight_from_an_initializer(tmp_path):
    """Tools that rewrite GEMMs by their weight initializer see all of them: ONNX Runtime's quantize_dynamic
    quantises every linear. It left the fused qkv in fp32 when its weight was a Concat + Transpose node, which the
    exporter folds only below 262144 elements (BEiT-base: 3 x 768 x 768), hence 320 wide here."""
    from hf_beit.export.engine_onnxruntime import quantize_dynamic_int8

    model = _model(hf_beit.BeitForImageClassification, hidden_size=320, intermediate_size=64, num_hidden_layers=1,
                   **RELATIVE)
    assert 3 * 320 * 320 > 262144
    path = export_onnx(model, tmp_path / "wide.onnx")
    quantized = onnx.load(str(quantize_dynamic_int8(path))).graph
    gemms = 4 * model.config.num_hidden_layers + 1  # per block: qkv (fused), output, MLP in and out; the head
    assert sum(node.op_type == "MatMulInteger" for node in quantized.node) == gemms
    pixels = random_pixels(2, seed=4)
    _assert_close(OnnxRunner(path)(pixels), _eager(model, pixels, ["logits"]))


def test_export_skips_the_onednn_fast_path_and_leaves_the_model_alone():
    model = _model(hf_beit.BeitForImageClassification, **RELATIVE)
    optimize_for_inference(model, "fp32").train()  # packed oneDNN weights are the default inference path
    with torch.no_grad():
        model.eval()(random_pixels(2))
    model.train()
    program = export_program(model)
    operators = graph_operators(program)
    assert not [op for op in operators if "mkldnn" in op or "quantized" in op], operators
    linears = [n for n in program.graph.nodes if str(n.target) == "aten.linear.default"]
    assert len(linears) == 4 * model.config.num_hidden_layers + 1  # qkv, proj, fc1, fc2 per block + classifier
    assert model.training and inference_precision(model) == "fp32"
    model.eval()
    pixels = random_pixels(3, seed=4)
    _assert_close(program.module()(pixel_values=pixels), _eager(model, pixels, ["logits"]))


def test_relative_position_model_at_a_fixed_rectangular_resolution(tmp_path):
    model = _model(hf_beit.BeitForImageClassification, seed=1, **RELATIVE)
    path = export_onnx(model, tmp_path / "rect.onnx", image_size=(48, 40))
    assert _input_dims(path) == ["batch", 3, 48, 40]
    runner = OnnxRunner(path)
    for batch in (1, 2):
        pixels = random_pixels(batch, seed=batch).repeat(1, 1, 2, 2)[:, :, :48, :40]
        _assert_close(runner(pixels), _eager(model, pixels, ["logits"]))  # table resized by unilm's recipe
    wrong = random_pixels(1)  # 32x32
    with pytest.raises(ValueError, match=r"exported for height 48.*--image-size"):
        runner(wrong)
    with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument, match="invalid dimensions"):
        runner.session.run(None, {"pixel_values": wrong.numpy()})  # static dims: onnxruntime refuses too


def test_dynamic_resolution_refused_for_relative_position_tables(classifier):
    with pytest.raises(UnsupportedExportError, match=r"relative-position bias tables.*scipy.*--image-size"):
        export_program(classifier, image_size="dynamic")


EMBEDDING_SHAPES = [(1, 32, 32), (3, 40, 56), (2, 64, 16)]  # configured, rectangular, tall


def test_onnx_embeddings_with_dynamic_batch_and_resolution(embedder, embedder_traced, tmp_path):
    path = write_onnx(embedder_traced, tmp_path / "embeddings.onnx")
    assert _input_dims(path) == ["batch", 3, "height", "width"]
    runner = OnnxRunner(path)
    assert runner.output_names == ("last_hidden_state", "pooler_output")
    for batch, height, width in EMBEDDING_SHAPES:
        pixels = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(height))
        _assert_close(runner(pixels), _eager(embedder, pixels, runner.output_names))
    with pytest.raises(ValueError, match="multiple of the 8-pixel patch"):
        runner(torch.zeros(1, 3, 36, 32))
    with pytest.raises(ValueError, match="width >= 16"):
        runner(torch.zeros(1, 3, 32, 8))


def test_onnx_segmentation_upernet_at_a_new_fixed_resolution(segmenter, segmenter_traced, tmp_path):
    runner = OnnxRunner(write_onnx(segmenter_traced, tmp_path / "segmentation.onnx"))
    assert runner.input_shape == ("batch", 3, 80, 80)
    for batch in (1, 2):
        pixels = random_pixels(batch, size=80, seed=batch)
        got = runner(pixels)
        assert got["logits"].shape == (batch, 3, 40, 40)  # 4x the patch grid
        _assert_close(got, _eager(segmenter, pixels, ["logits"]))


def test_onnx_segmentation_with_dynamic_resolution(tmp_path):
    model = _model(hf_beit.BeitForSemanticSegmentation, seed=4, pool_scales=[2, 3], **SEGMENTATION, **ABSOLUTE)
    runner = OnnxRunner(export_onnx(model, tmp_path / "segmentation.onnx", image_size="dynamic"))
    # 80x56: 5x3 top level, 2 and 3 do not divide 5
    for batch, height, width in [(1, 32, 32), (2, 80, 56), (1, 40, 96)]:
        pixels = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(width))
        _assert_close(runner(pixels), _eager(model, pixels, ["logits"]))
    with pytest.raises(ValueError, match="height >= 32"):
        runner(torch.zeros(1, 3, 24, 32))


@pytest.mark.parametrize(
    "name, shapes",
    [
        ("classifier", [(1, 32, 32), (3, 32, 32)]),
        ("embedder", EMBEDDING_SHAPES),
        ("segmenter", [(1, 80, 80), (3, 80, 80)]),
    ],
)
def test_torch_export_program_matches_eager(request, name, shapes):
    model = request.getfixturevalue(name)
    traced = request.getfixturevalue(f"{name}_traced")
    module = traced.program.module()
    for batch, height, width in shapes:
        pixels = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(batch + width))
        _assert_close(module(pixel_values=pixels), _eager(model, pixels, traced.output_names))


def test_torch_export_program_with_dynamic_resolution_saves_and_loads(tmp_path):
    model = _model(hf_beit.BeitForImageClassification, seed=6, **ABSOLUTE)
    torch.export.save(export_program(model, image_size="dynamic"), tmp_path / "model.pt2")
    module = torch.export.load(tmp_path / "model.pt2").module()
    for batch, height, width in [(1, 32, 32), (2, 48, 24)]:
        pixels = torch.randn(batch, 3, height, width)
        _assert_close(module(pixel_values=pixels), _eager(model, pixels, ["logits"]))


def test_fixed_batch_and_one_embedding_output(tmp_path):
    encoder = _model(hf_beit.BeitForImageClassification, seed=7, **RELATIVE)
    path = export_onnx(encoder, tmp_path / "pooled.onnx", "image-feature-extraction", batch=2,
                       outputs=["pooler_output"])
    runner = OnnxRunner(path)
    assert _input_dims(path) == [2, 3, 32, 32] and runner.output_names == ("pooler_output",)
    pixels = random_pixels(2)
    _assert_close(runner(pixels), _eager(encoder.beit, pixels, ["pooler_output"]))
    with pytest.raises(ValueError, match=r"exported for batch 2.*--batch dynamic"):
        runner(random_pixels(3))


def test_unusable_requests_raise_clear_errors(classifier):
    with pytest.raises(UnsupportedExportError, match=r"Unknown export task 'depth'.*image-classification"):
        export_program(classifier, "depth")
    with pytest.raises(UnsupportedExportError, match="needs a BeitForSemanticSegmentation"):
        export_program(classifier, "image-segmentation")
    with pytest.raises(UnsupportedExportError, match="built without a pooling layer"):
        export_program(hf_beit.BeitModel(tiny_config(), add_pooling_layer=False), outputs=["pooler_output"])
    with pytest.raises(UnsupportedExportError, match="Outputs \\['logits'\\] are not available"):
        export_program(hf_beit.BeitModel(tiny_config()), outputs=["logits"])
    with pytest.raises(UnsupportedExportError, match="batch must be 'dynamic' or a positive integer"):
        export_program(classifier, batch=0)
    with pytest.raises(UnsupportedExportError, match="smaller than one 8x8 patch"):
        export_program(classifier, image_size=(4, 32))
    for size in [(32.0, 32), "large", (32, 32, 32)]:
        with pytest.raises(UnsupportedExportError, match="image_size must be None, 'dynamic', H or"):
            export_program(classifier, image_size=size)


def test_missing_onnx_packages_name_the_extra(classifier, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)  # import now fails as if not installed
    with pytest.raises(MissingExportDependencyError, match=r'pip install "hf_beit\[export\]"'):
        export_onnx(classifier, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
