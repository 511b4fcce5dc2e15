"""Linear probing of BEiT encoders: one linear head per block on frozen features, trained together (unilm's
``run_linear_eval.py`` recipe), with per-block accuracy as JSON and a PNG plot (``hf-beit probe``).

Names are imported on first use, so that building the ``hf-beit`` parser does not import torch.
"""

from __future__ import annotations

from .._lazy import by_module, lazy_attributes

_EXPORTS = by_module({
    "features": ("block_features", "encoder_of"),
    "heads": ("PerBlockLinearProbes",),
    "plot": ("plot_accuracies",),
    "run": ("load_probe_data", "probe_model", "write_probe_outputs"),
    "train": ("ProbeResult", "ProbeSettings", "probe_accuracy", "train_probes"),
})
__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - built from the table above
__getattr__ = lazy_attributes(__name__, _EXPORTS)
