"""The Determined trial for BBC news classification, used unchanged locally and on a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from determined import pytorch
from torch.utils.data import TensorDataset

from usecases.serving.news import NewsClassifier


def load_split(features_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Counts and label indices of one split of a featurised dataset version."""
    with np.load(features_dir / f"{split}.npz") as arrays:
        return arrays["inputs"].astype(np.float32), arrays["labels"].astype(np.int64)


class NewsTrial(pytorch.PyTorchTrial):
    def __init__(self, context: pytorch.PyTorchTrialContext) -> None:
        self.context = context
        features = Path(context.get_data_config()["features"])
        self.train_x, self.train_y = load_split(features, "train")
        self.val_x, self.val_y = load_split(features, "val")
        n_classes = int(np.load(features / "classes.npy").shape[0])
        hp = context.get_hparams()
        self.model = context.wrap_model(
            NewsClassifier(self.train_x.shape[1], n_classes, int(hp["hidden_size"]),
                           float(hp["dropout"]))
        )
        self.optimizer = context.wrap_optimizer(
            torch.optim.AdamW(self.model.parameters(), lr=float(hp["learning_rate"]),
                              weight_decay=float(hp["weight_decay"]))
        )

    def build_training_data_loader(self) -> pytorch.DataLoader:
        dataset = TensorDataset(torch.from_numpy(self.train_x), torch.from_numpy(self.train_y))
        return pytorch.DataLoader(dataset, batch_size=self.context.get_per_slot_batch_size(),
                                  shuffle=True, drop_last=False)

    def build_validation_data_loader(self) -> pytorch.DataLoader:
        dataset = TensorDataset(torch.from_numpy(self.val_x), torch.from_numpy(self.val_y))
        return pytorch.DataLoader(dataset, batch_size=256)

    def train_batch(self, batch: Any, epoch_idx: int, batch_idx: int) -> dict[str, Any]:
        counts, labels = batch
        loss = F.cross_entropy(self.model(counts), labels)
        self.context.backward(loss)
        self.context.step_optimizer(self.optimizer)
        return {"loss": loss}

    def evaluate_full_dataset(self, data_loader: torch.utils.data.DataLoader) -> dict[str, Any]:
        # Whole-set metrics: exact accuracy, not a mean of per-batch means.
        logits: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        with torch.no_grad():
            for counts, batch_labels in data_loader:
                logits.append(self.model(counts.to(self.context.device)))
                labels.append(batch_labels.to(self.context.device))
        all_logits, all_labels = torch.cat(logits), torch.cat(labels)
        return {
            "validation_loss": F.cross_entropy(all_logits, all_labels).item(),
            "validation_accuracy": (all_logits.argmax(dim=1) == all_labels).float().mean().item(),
        }
