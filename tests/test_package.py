"""The package's lazy exports: every public name resolves, and none can be shadowed by a submodule of that name
(importing ``pkg.name`` would replace the exported function on ``pkg``)."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

PACKAGES = ("hf_beit", "hf_beit.inference", "hf_beit.export", "hf_beit.conversion", "hf_beit.training",
            "hf_beit.pretraining", "hf_beit.evaluation", "hf_beit.probing")  # fmt: skip


@pytest.mark.parametrize("name", PACKAGES)
def test_every_export_resolves_and_no_submodule_shadows_it(name):
    package = importlib.import_module(name)
    assert package.__all__
    for export in package.__all__:
        assert getattr(package, export) is not None, export
        assert importlib.util.find_spec(f"{name}.{export}") is None, f"{name}.{export} is also a submodule"


def test_subpackages_are_attributes_after_a_bare_import():
    """``import hf_beit`` then ``hf_beit.inference.extract_embeddings(...)``, as the README writes it (in a fresh
    interpreter, where nothing imported the subpackage before)."""
    import subprocess
    import sys

    code = ("import sys, hf_beit; print(hf_beit.inference.extract_embeddings.__name__, "
            "hf_beit.export.export_onnx.__name__, 'hf_beit.training' in sys.modules)")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert ran.stdout.split() == ["extract_embeddings", "export_onnx", "False"]
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        importlib.import_module("hf_beit").nothing  # noqa: B018 - the attribute access is the test
