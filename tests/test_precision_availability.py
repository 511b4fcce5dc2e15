"""bf16 on a CPU without native bf16: a clear error from every route, not emulation or a silent fp32 run.

OpenVINO 2026.4 takes the bf16 hint on an AVX2-only CPU and runs f32 without a word (its compiled model reports
INFERENCE_PRECISION_HINT f32), and eager PyTorch raised a RuntimeError, a traceback from ``hf-beit predict``.
On CPUs that have bf16 the test takes it away through ``bf16_available``.
"""

from __future__ import annotations

import pytest
from test_inference_utils import save_repo, tiny_classifier, write_images

from hf_beit.acceleration import PrecisionUnavailableError, _packing, optimize_for_inference
from hf_beit.cli import main
from hf_beit.export import compile_for_engine


@pytest.fixture
def no_native_bf16(monkeypatch):
    monkeypatch.setattr(_packing, "bf16_available", lambda: False)


@pytest.mark.usefixtures("no_native_bf16")
def test_bf16_is_refused_by_name_by_eager_and_engines():
    model = tiny_classifier()
    with pytest.raises(PrecisionUnavailableError, match="needs a CPU with native bf16"):
        optimize_for_inference(model, "bf16")
    for engine in ("openvino", "inductor"):
        with pytest.raises(ValueError, match="needs a CPU with native bf16"):  # before any export or compilation
            compile_for_engine(model, engine, "bf16")
    with pytest.raises(ValueError, match="ONNX Runtime's CPU provider has no bf16 kernels"):
        compile_for_engine(model, "onnxruntime", "bf16")
    assert optimize_for_inference(model, "fp32") is model


@pytest.mark.usefixtures("no_native_bf16")
def test_predict_with_bf16_is_a_one_line_error(tmp_path, capsys):
    repo = save_repo(tiny_classifier(), tmp_path / "model")
    image = write_images(tmp_path / "in", 1)[0]
    for engine in ("pytorch", "openvino"):
        assert main(["predict", str(repo), str(image), "--precision", "bf16", "--engine", engine, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "hf-beit predict: error: precision='bf16' needs a CPU with native bf16" in err
        assert "Traceback" not in err
