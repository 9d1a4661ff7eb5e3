"""What the LightningModules whose losses come as a dict share in their training and validation steps."""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import torch


def log_losses(module: L.LightningModule, stage: str, losses: Mapping[str, torch.Tensor], batch_size: int) -> None:
    """Log each loss as `<stage>/<name>`: "loss" on the progress bar in training, averaged over ranks in validation."""
    train = stage == "train"
    for name, value in losses.items():
        module.log(
            f"{stage}/{name}", value, prog_bar=train and name == "loss", batch_size=batch_size, sync_dist=not train
        )
