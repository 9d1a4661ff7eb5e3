"""LightningModule training Wav2Lip's lip-sync expert (Wav2Lip:color_syncnet_train.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch

from models.common.config import from_preset, to_config
from models.syncnet.nets import PRESET_WIDTHS, SyncNetColor, sync_bce, sync_probability


@dataclass
class SyncNetExpertConfig:
    """Expert hyperparameters; defaults are the `paper` preset (Wav2Lip hparams.py)."""

    width: float = 1.0  # channel multiplier; 1.0 = the official network (lipsync_expert.pth loads)
    lr: float = 1e-4  # hparams.syncnet_lr
    betas: tuple[float, float] = (0.9, 0.999)  # torch Adam defaults, as the official script
    batch_size: int = 64  # hparams.syncnet_batch_size
    # Officially a negative may be any other window (1); see data.windows.SyncExpertWindows for why 2 helps.
    negative_min_shift: int = 1

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SyncNetExpertConfig:
        return from_preset(cls, SYNC_EXPERT_PRESETS, name, **overrides)


SYNC_EXPERT_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # CPU minutes on the synthetic corpus (measurements in models/wav2lip/module.py's docstring): a higher lr
    # and negatives >= 2 frames away get the held-out BCE below 0.5 in ~200 steps
    "tiny": {"width": PRESET_WIDTHS["tiny"], "lr": 5e-4, "batch_size": 64, "negative_min_shift": 2},
}


class SyncNetExpertModule(L.LightningModule):
    """Lip-sync expert trained with BCE on the cosine similarity of its audio and face embeddings.

    Batches are `data.windows.SyncExpertWindows` items (window_kind "sync_expert"): "face" (B,15,48,96),
    "mel" (B,1,80,16), "label" (B,). Logs train/loss, train/acc, val/loss, val/acc (acc: cosine > 0.5 agrees
    with the label). The network is `self.net` (a SyncNetColor; checkpoint keys "net.*").
    """

    window_kind = "sync_expert"
    trainable = True
    config_class = SyncNetExpertConfig

    def __init__(self, cfg: SyncNetExpertConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = to_config(SyncNetExpertConfig, cfg)
        # a plain dict, so the checkpoint loads with torch.load(weights_only=True)
        self.save_hyperparameters({"cfg": dataclasses.asdict(self.cfg)})
        self.net = SyncNetColor(width=self.cfg.width)

    def window_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `data.windows.WINDOWS[self.window_kind]`."""
        return {"negative_min_shift": self.cfg.negative_min_shift}

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(mel, face)

    def sync_probability(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """P(in sync) per pair: the cosine of the two embeddings, in [0, 1]."""
        return sync_probability(*self.net(mel, face))

    def _step(self, batch: Mapping[str, torch.Tensor], stage: str) -> torch.Tensor:
        audio_emb, face_emb = self.net(batch["mel"], batch["face"])
        label = batch["label"].float()
        loss = sync_bce(audio_emb, face_emb, label)
        with torch.no_grad():
            acc = ((sync_probability(audio_emb, face_emb) > 0.5).float() == label).float().mean()
        size = label.shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=size, sync_dist=stage != "train")
        self.log(f"{stage}/acc", acc, batch_size=size, sync_dist=stage != "train")
        return loss

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr, betas=tuple(self.cfg.betas))
