"""Linear probing of BEiT encoders: one linear head per block on frozen features, trained together (unilm's
``run_linear_eval.py`` recipe), with per-block accuracy as JSON and a PNG plot (``hf-beit probe``)."""

from .features import block_features, encoder_of
from .heads import PerBlockLinearProbes
from .plot import plot_accuracies
from .run import load_probe_data, probe_model, write_probe_outputs
from .train import ProbeResult, ProbeSettings, probe_accuracy, train_probes

__all__ = [
    "PerBlockLinearProbes",
    "ProbeResult",
    "ProbeSettings",
    "block_features",
    "encoder_of",
    "load_probe_data",
    "plot_accuracies",
    "probe_accuracy",
    "probe_model",
    "train_probes",
    "write_probe_outputs",
]
