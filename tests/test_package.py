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
