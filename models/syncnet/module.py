"""LightningModule training Wav2Lip's lip-sync expert (Wav2Lip:color_syncnet_train.py).

Paper preset vs the official code (table: docs/official_recipes.md; pinned by tests/models/test_syncnet.py).
Equal: width 1.0 (lipsync_expert.pth loads), Wav2Lip:hparams.py syncnet_batch_size 64 and syncnet_lr 1e-4,
torch Adam default betas, BCE on the cosine, 50/50 positives / negatives with any other window of the clip as a
negative (`negative_min_shift=1`), syncnet_eval_interval 10,000 and no eval at step 1, eval-mode BN during
eval, fp32. Different:
- step budget: hparams.py nepochs 2e17 (README: stop at eval loss ~0.25), so ours: max_steps 700,000, the
  maintainer's "around 700K steps are necessary for LRS2" at batch 64 (Wav2Lip#122); the released
  lipsync_expert.pth reports ~2,450 epochs (Wav2Lip#416).
- eval size: color_syncnet_train.py eval_model makes one pass over the val loader (its `step > 1400` cap is
  never reached): LRS2's 1,082 val videos / 64 = 17 batches, so limit_val_batches 17 (LRS2-specific).
- eval items: the official loader draws new random windows each eval; ours are a fixed seeded set.
- clip length: color_syncnet_train.py skips videos with <= 15 frames (3 * syncnet_T); models/common/windows.py needs 6.
- checkpoints: color_syncnet_train.py keeps one at step 1 and every 10,000 steps; the runner keeps last.ckpt.
- the Wav2Lip paper's text gives lr 1e-3; hparams.py (and the maintainer, Wav2Lip#55) 1e-4, used here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from data.clip import Clip
from models.base import TalkingFaceModule
from models.common.config import Presets, to_config
from models.syncnet.nets import SyncNetColor, sync_bce, sync_probability
from models.syncnet.windows import SyncExpertWindows


@dataclass
class SyncNetExpertConfig(Presets):
    """Expert hyperparameters; defaults are the `paper` preset (Wav2Lip hparams.py)."""

    preset_source: ClassVar[str] = "syncnet_expert"  # its presets: configs/models/syncnet_expert.yaml

    width: float = 1.0  # channel multiplier; 1.0 = the official network (lipsync_expert.pth loads)
    lr: float = 1e-4  # hparams.syncnet_lr
    betas: tuple[float, float] = (0.9, 0.999)  # torch Adam defaults, as the official script
    batch_size: int = 64  # hparams.syncnet_batch_size
    # Officially a negative may be any other window (1); see windows.SyncExpertWindows for why 2 helps.
    negative_min_shift: int = 1


class SyncNetExpertModule(TalkingFaceModule):
    """Lip-sync expert trained with BCE on the cosine similarity of its audio and face embeddings.

    A component: Wav2Lip trains against it; it generates no video.
    Batches are `windows.SyncExpertWindows` items: "face" (B,15,48,96),
    "mel" (B,1,80,16), "label" (B,). Logs train/loss, train/acc, val/loss, val/acc (acc: cosine > 0.5 agrees
    with the label). The network is `self.net` (a SyncNetColor; checkpoint keys "net.*").
    """

    kind = "component"
    crop = "wav2lip"  # data.faces crop: the 96 px face box its Wav2Lip generator is trained on
    trainable = True
    config_class = SyncNetExpertConfig

    def __init__(self, cfg: SyncNetExpertConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = to_config(SyncNetExpertConfig, cfg)
        # a plain dict, so the checkpoint loads with torch.load(weights_only=True)
        self.save_hyperparameters({"cfg": dataclasses.asdict(self.cfg)})
        self.net = SyncNetColor(width=self.cfg.width)

    def train_dataset(self, clips: Sequence[Clip], *, seed: int, fixed: bool) -> SyncExpertWindows:
        return SyncExpertWindows(clips, seed=seed, fixed=fixed, negative_min_shift=self.cfg.negative_min_shift)

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
        return torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr, betas=(self.cfg.betas[0], self.cfg.betas[1]))
