"""LightningModule for Wav2Lip with the visual-quality discriminator (Wav2Lip:hq_wav2lip_train.py).

Generator loss = syncnet_wt * sync + disc_wt * perceptual + (1 - syncnet_wt - disc_wt) * L1 with disc_wt 0.07;
syncnet_wt starts at 0 and becomes 0.03 once the average eval sync loss < 0.75 (Wav2Lip:hq_wav2lip_train.py;
docs/official_recipes.md). Discriminator loss = BCE(D(gt), 1) + BCE(D(G.detach()), 0). G and D both use
Adam lr 1e-4, betas (0.5, 0.999). Each batch takes one G step then one D step, in the official order.

Lightning counts every optimizer step in manual optimization, so `trainer.max_steps` counts G and D steps
together: a budget of N batches is `max_steps = 2 N` (configs/models/wav2lip_gan.yaml does this).
Lightning's `val_check_interval` counts batches, so 3000 is hparams.eval_interval as is.

Paper preset vs the official code (table: docs/official_recipes.md; pinned by tests/models/test_wav2lip_gan.py).
Equal: the values above, Wav2Lip:hparams.py batch_size 16, eval every 3,000 batches and none at step 1
(hq_wav2lip_train.py, unlike wav2lip_train.py), mel alignment, fp32. Different:
- step budget: hparams.py nepochs 2e17 (README: "~2 days"), so ours: the released wav2lip_gan.pth was saved at
  global_step 258,000, epoch 88 (Wav2Lip#253), i.e. max_steps 516,000 (G + D steps).
- eval size: hq_wav2lip_train.py eval_model makes one pass over the val loader (its `step > 300` cap is never
  reached): LRS2's 1,082 val videos / batch 16 = 68 batches, so limit_val_batches 68 (LRS2-specific).
- the frozen expert's BatchNorm, fixed eval items, the 15-frame clip minimum and checkpoint cadence differ as
  for Wav2LipModule (models/wav2lip/module.py).
- the paper's text says batch 80; hq_wav2lip_train.py uses hparams.batch_size 16, which is used here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from lightning.pytorch.core.optimizer import LightningOptimizer

from models.common.config import to_config
from models.syncnet.module import SyncNetExpertModule
from models.syncnet.nets import SyncNetColor
from models.wav2lip.module import Wav2LipConfig, Wav2LipModule
from models.wav2lip.nets import Wav2LipDiscQual
from models.wav2lip.process import disc_losses, gan_generator_loss, perceptual_loss


@dataclass
class Wav2LipGANConfig(Wav2LipConfig):
    """Wav2Lip + visual-quality discriminator; defaults are the `paper` preset (hq_wav2lip_train.py, hparams.py)."""

    preset_source: ClassVar[str] = "wav2lip_gan"  # its presets: configs/models/wav2lip_gan.yaml

    betas: tuple[float, float] = (0.5, 0.999)  # hq_wav2lip_train.py: both optimizers
    syncnet_wt_after: float = 0.03  # hparams comment / hq_wav2lip_train.py eval_model
    disc_wt: float = 0.07  # hparams.disc_wt
    disc_lr: float = 1e-4  # hparams.disc_initial_learning_rate
    disc_betas: tuple[float, float] = (0.5, 0.999)
    disc_width: float = 1.0  # channel multiplier of the discriminator; 1.0 = visual_quality_disc.pth loads


def build_disc_qual(preset: str = "paper") -> Wav2LipDiscQual:
    """The visual-quality discriminator at a preset's width (`bench weights import ... --as visual_quality_disc`)."""
    if preset not in Wav2LipGANConfig.preset_names():
        raise KeyError(f"unknown preset {preset!r}; known: {', '.join(Wav2LipGANConfig.preset_names())}")
    return Wav2LipDiscQual(width=Wav2LipGANConfig.preset(preset).disc_width)


class Wav2LipGANModule(Wav2LipModule):
    """Wav2Lip generator (`net.*`), frozen expert (`expert.*`) and visual-quality discriminator (`disc.*`).

    Same batches, `generate` and sync-weight schedule as `Wav2LipModule`; training adds the adversarial term
    and the discriminator's step (manual optimization: two optimizers per batch). Logs train/l1, train/sync,
    train/perceptual, train/loss, train/disc_real, train/disc_fake, plus Wav2LipModule's validation values.
    """

    config_class = Wav2LipGANConfig

    def __init__(
        self,
        cfg: Wav2LipGANConfig | Mapping[str, Any] | None = None,
        expert: SyncNetExpertModule | SyncNetColor | None = None,
    ) -> None:
        cfg = to_config(Wav2LipGANConfig, cfg)
        super().__init__(cfg, expert)
        self.cfg: Wav2LipGANConfig
        self.disc = Wav2LipDiscQual(width=self.cfg.disc_width)
        self.automatic_optimization = False

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        opt_g, opt_d = cast(list[LightningOptimizer], self.optimizers())
        target = batch["target"]
        generated = self.net(batch["mels"], batch["face"])
        l1 = F.l1_loss(generated, target)
        wt, disc_wt = self.syncnet_wt, float(self.cfg.disc_wt)
        size = generated.shape[0]
        # both terms are skipped while their weight is 0, as in hq_wav2lip_train.py
        sync = self.sync_loss(batch["mel"], generated) if wt > 0.0 else torch.zeros((), device=l1.device)
        perceptual = perceptual_loss(self.disc, generated) if disc_wt > 0.0 else torch.zeros((), device=l1.device)
        loss = gan_generator_loss(l1, sync, perceptual, wt, disc_wt)
        opt_g.zero_grad()
        self.manual_backward(loss)
        opt_g.step()

        # the generator's backward also left gradients in D: cleared before D's own step (official order)
        opt_d.zero_grad()
        real, fake = disc_losses(self.disc, target, generated)
        self.manual_backward(real + fake)
        opt_d.step()

        self.log("train/l1", l1, batch_size=size)
        if wt > 0.0:
            self.log("train/sync", sync, batch_size=size)
        self.log("train/perceptual", perceptual, batch_size=size)
        self.log("train/disc_real", real, batch_size=size)
        self.log("train/disc_fake", fake, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("syncnet_wt", wt, batch_size=size)
        return loss.detach()

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        generated = self.net(batch["mels"], batch["face"])
        real, fake = disc_losses(self.disc, batch["target"], generated)
        size = generated.shape[0]
        self.log("val/disc_real", real, batch_size=size, sync_dist=True)
        self.log("val/disc_fake", fake, batch_size=size, sync_dist=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        betas, disc_betas = self.cfg.betas, self.cfg.disc_betas
        opt_g = torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr, betas=(betas[0], betas[1]))
        opt_d = torch.optim.Adam(self.disc.parameters(), lr=self.cfg.disc_lr, betas=(disc_betas[0], disc_betas[1]))
        return [opt_g, opt_d]
