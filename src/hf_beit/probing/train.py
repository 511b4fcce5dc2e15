"""Training the per-block probes on frozen features: unilm's recipe (AdamW, weight decay 1e-4, cosine to 0 per
epoch, the loss summed over the blocks' heads), on features computed once (so without unilm's random crops)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .heads import PerBlockLinearProbes


@dataclass
class ProbeSettings:
    """Optimisation of the probes; defaults follow unilm's ``run_linear_eval.py`` (lr from its README command)."""

    epochs: int = 100
    learning_rate: float = 4e-3
    batch_size: int = 128
    weight_decay: float = 1e-4
    batch_norm: bool = False
    seed: int = 0


@dataclass
class ProbeResult:
    """Accuracy of every block's probe on the evaluation features (block ``i`` is the output of block ``i``)."""

    accuracy: list[float]
    train_accuracy: list[float]
    final_loss: float
    settings: ProbeSettings
    num_train: int
    num_eval: int
    extra: dict = field(default_factory=dict)

    @property
    def best_block(self) -> int:
        return max(range(len(self.accuracy)), key=self.accuracy.__getitem__)

    def to_dict(self) -> dict:
        return {
            "accuracy_per_block": self.accuracy, "train_accuracy_per_block": self.train_accuracy,
            "best_block": self.best_block, "best_accuracy": self.accuracy[self.best_block],
            "final_loss": self.final_loss, "num_train": self.num_train, "num_eval": self.num_eval,
            "settings": asdict(self.settings), **self.extra,
        }


@torch.no_grad()
def probe_accuracy(probes: PerBlockLinearProbes, features: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Top-1 accuracy of every block's head."""
    probes.eval()
    predictions = probes(features).argmax(-1)
    return (predictions == labels.unsqueeze(0)).float().mean(1).tolist()


def train_probes(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    eval_features: torch.Tensor,
    eval_labels: torch.Tensor,
    settings: ProbeSettings | None = None,
    num_labels: int | None = None,
    progress: bool = False,
) -> ProbeResult:
    """Train one linear head per block on ``(num_blocks, N, dim)`` features; return per-block accuracies."""
    settings = settings or ProbeSettings()
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    blocks, count, dim = train_features.shape
    num_labels = num_labels or int(max(train_labels.max(), eval_labels.max())) + 1
    probes = PerBlockLinearProbes(blocks, dim, num_labels, batch_norm=settings.batch_norm)
    optimizer = torch.optim.AdamW(probes.parameters(), settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.epochs, eta_min=0)
    loss = torch.tensor(float("nan"))
    for _ in tqdm(range(settings.epochs), desc="probes", disable=not progress):
        probes.train()
        order = torch.randperm(count, generator=generator)
        for start in range(0, count, settings.batch_size):
            index = order[start : start + settings.batch_size]
            logits = probes(train_features[:, index])
            target = train_labels[index].repeat(blocks)
            loss = F.cross_entropy(logits.reshape(-1, num_labels), target, reduction="sum") / len(index)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
    return ProbeResult(
        accuracy=probe_accuracy(probes, eval_features, eval_labels),
        train_accuracy=probe_accuracy(probes, train_features, train_labels),
        final_loss=float(loss.detach()),
        settings=settings,
        num_train=count,
        num_eval=eval_features.shape[1],
    )
