"""LightningModule for Wav2Lip with the visual-quality discriminator (Wav2Lip:hq_wav2lip_train.py).

Generator loss = syncnet_wt * sync + disc_wt * perceptual + (1 - syncnet_wt - disc_wt) * L1 with disc_wt 0.07;
syncnet_wt starts at 0 and becomes 0.03 once the average eval sync loss < 0.75 (Wav2Lip:hq_wav2lip_train.py;
docs/official_recipes.md). Discriminator loss = BCE(D(gt), 1) + BCE(D(G.detach()), 0). G and D both use
Adam lr 1e-4, betas (0.5, 0.999). Each batch takes one G step then one D step, in the official order.

Lightning counts every optimizer step in manual optimization, so `trainer.max_steps` counts G and D steps
together: a budget of N batches is `max_steps = 2 N` (configs/models/wav2lip_gan.yaml does this).
`val_every_n_steps` (Lightning's val_check_interval) counts batches, so 3000 is hparams.eval_interval as is.

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
from typing import Any

import torch
import torch.nn.functional as F

from models.common.config import from_preset, to_config
from models.syncnet.module import SyncNetExpertModule
from models.syncnet.nets import PRESET_WIDTHS as EXPERT_WIDTHS
from models.syncnet.nets import SyncNetColor
from models.wav2lip.module import WAV2LIP_PRESETS, Wav2LipConfig, Wav2LipModule
from models.wav2lip.nets import PRESET_WIDTHS, Wav2LipDiscQual
from models.wav2lip.process import disc_losses, gan_generator_loss, perceptual_loss


@dataclass
class Wav2LipGANConfig(Wav2LipConfig):
    """Wav2Lip + visual-quality discriminator; defaults are the `paper` preset (hq_wav2lip_train.py, hparams.py)."""

    betas: tuple[float, float] = (0.5, 0.999)  # hq_wav2lip_train.py: both optimizers
    syncnet_wt_after: float = 0.03  # hparams comment / hq_wav2lip_train.py eval_model
    disc_wt: float = 0.07  # hparams.disc_wt
    disc_lr: float = 1e-4  # hparams.disc_initial_learning_rate
    disc_betas: tuple[float, float] = (0.5, 0.999)
    disc_width: float = 1.0  # channel multiplier of the discriminator; 1.0 = visual_quality_disc.pth loads

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Wav2LipGANConfig:
        return from_preset(cls, WAV2LIP_GAN_PRESETS, name, **overrides)


WAV2LIP_GAN_PRESETS: dict[str, dict[str, Any]] = {
    # the dataclass defaults (official values; differences listed in the module docstring)
    "paper": {},
    # Wav2Lip's tiny settings (see models/wav2lip/module.py) with the GAN's sync weight on from the start,
    # because the official gate does not open within a few CPU minutes.
    "tiny": {
        **WAV2LIP_PRESETS["tiny"],
        "betas": (0.5, 0.999),
        "syncnet_wt": 0.03,
        "syncnet_wt_after": 0.03,
        "disc_lr": 1e-3,
        "disc_width": PRESET_WIDTHS["tiny"],
    },
}
assert EXPERT_WIDTHS["tiny"] == WAV2LIP_PRESETS["tiny"]["expert_width"]


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
        opt_g, opt_d = self.optimizers()
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
        opt_g = torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr, betas=tuple(self.cfg.betas))
        opt_d = torch.optim.Adam(self.disc.parameters(), lr=self.cfg.disc_lr, betas=tuple(self.cfg.disc_betas))
        return [opt_g, opt_d]
