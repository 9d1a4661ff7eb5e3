"""LightningModule for LipGAN (LipGAN:train.py): residual generator + contrastive audio-visual discriminator.

Each batch (LipGAN:train.py, discriminator.py; docs/lipgan.md), in the official order:
1. discriminator: contrastive(D(real face, its audio), 0) plus one negative with label 1, chosen 50/50 as the
   official loop alternates which of its two negative batches is trained: the generated face with its audio,
   or the real face with audio rolled by 10 within the batch (off-sync). Keras trains these with separate
   `train_on_batch` calls; here the terms are summed into one Adam step.
2. generator: 1.0 * MAE(fake, gt) + 0.01 * contrastive(D(fake, audio), 0) (combined model, loss_weights).
Contrastive loss margin 1.0, in-sync label 0. Adam lr 1e-4 for both (train.py). Lightning counts G and D
optimizer steps in `max_steps` (two per batch).

This is a re-implementation ("LipGAN (re-impl.)" in results): no PyTorch LipGAN exists.

Paper preset vs the official code (table: docs/official_recipes.md; pinned by tests/models/test_lipgan.py).
Equal: LipGAN:train.py (master) residual model, 12x35 MATLAB MFCC, batch_size 96 per GPU (one device here),
lr 1e-4 for G, D and the combined model, Keras Adam betas (0.9, 0.999), loss_weights [1.0, 0.01], margin 1.0,
audio rolled by 10 for off-sync pairs, reference >= 6 frames away, clips < 12 frames skipped, 96x96 BGR, fp32;
the Keras layer numerics (BN momentum 0.8 / eps 1e-3, TF "same" padding, keras-contrib InstanceNorm) are
ported exactly in nets.py. Different:
- step budget: train.py --epochs 20,000,000 (no stop), so ours from the paper's ~20 epochs: ~2.25M
  training images (LRS2 train, ~29 h at 25 fps, one image per 40 ms window, frames - 7 per video) x 20 / 96
  = ~470,000 batches = max_steps 940,000 (G + D steps).
- validation: train.py has none (it saves gen/disc/comb.h5 every 1,000 batches); ours every 2,000 batches on
  100, for monitoring only.
- D updates: train.py makes two Keras train_on_batch calls per batch (one negative kind, then real in-sync),
  i.e. two Adam steps; here one Adam step on their sum.
- D's fake negatives: train.py takes them from gen.predict (BatchNorm with moving statistics); here from the
  generator's training-mode forward that the G step also uses.
- Adam epsilon: Keras 2.2.4 K.epsilon() 1e-7 added to sqrt(v) before bias correction; torch 1e-8 after it.
- the paper's text gives batch 512 on 4 GPUs and lr 1e-3; train.py (96 per GPU, 1e-4) is used here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.core.optimizer import LightningOptimizer

from data.clip import Clip, frames_for_audio
from models.base import TalkingFaceModule
from models.common.config import Presets, to_config
from models.common.frames import model_to_rgb, rgb_to_model
from models.facecrop import crop_faces, paste_faces
from models.lipgan.audio import audio_chunks
from models.lipgan.nets import LipGANDiscriminator, LipGANGenerator, contrastive_loss
from models.lipgan.process import lipgan_input
from models.lipgan.windows import MIN_REF_DISTANCE, LipGANWindows


@dataclass
class LipGANConfig(Presets):
    """Defaults are the `paper` preset (LipGAN train.py: residual model, batch 96, Adam 1e-4)."""

    preset_source: ClassVar[str] = "lipgan"  # its presets: configs/models/lipgan.yaml
    generation_fields: ClassVar[tuple[str, ...]] = ("generate_batch_size",)

    width: float = 1.0  # generator channel multiplier (1.0 = the official residual model)
    disc_width: float = 1.0
    audio_features: str = "mfcc"  # mfcc: master branch 12x35 MATLAB MFCC | mel: fully_pythonic 80x27
    lr: float = 1e-4
    disc_lr: float = 1e-4
    batch_size: int = 96
    l1_wt: float = 1.0  # combined model loss_weights [1.0, 0.01]
    gan_wt: float = 0.01
    margin: float = 1.0
    off_sync_roll: int = 10  # the off-sync negative pairs each face with the audio 10 items away in the batch
    min_ref_distance: int = MIN_REF_DISTANCE
    frame_offset: int = 0  # audio window centre relative to its frame, in frames (0: centred, official)
    generate_batch_size: int = 256  # batch_inference.py lipgan_batch_size


class LipGANModule(TalkingFaceModule):
    """LipGAN training and `generate` (models/base.py contract). Generator `net.*`, discriminator `disc.*`.

    Batches are `windows.LipGANWindows` items. Logs train/l1, train/gan,
    train/loss, train/disc_real, train/disc_neg, val/l1, val/disc_real, val/disc_fake.
    """

    crop = "wav2lip"  # data.faces crop: the 96 px face box (LipGAN preprocess.py: dlib box resized to 96)
    trainable = True
    config_class = LipGANConfig
    # the sync discriminator trained with it (a contrastive audio-face network of LipGAN's own, no evaluator here)
    trained_against = {"lipgan_sync_disc": "its own audio-face sync discriminator (trained alongside it)"}
    redraws_faces = True  # face_audio_windows + redraw_faces: `bench generate` on any video
    default_pads = (0, 0, 0, 0)  # batch_inference.py --pads default

    def __init__(self, cfg: LipGANConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        cfg = to_config(LipGANConfig, cfg)
        self.cfg = cfg
        self.save_hyperparameters({"cfg": dataclasses.asdict(cfg)})
        self.net = LipGANGenerator(width=cfg.width, audio_features=cfg.audio_features)
        self.disc = LipGANDiscriminator(width=cfg.disc_width, audio_features=cfg.audio_features)
        self.automatic_optimization = False

    def train_dataset(self, clips: Sequence[Clip], *, seed: int, fixed: bool) -> LipGANWindows:
        return LipGANWindows(
            clips,
            seed=seed,
            fixed=fixed,
            audio_features=self.cfg.audio_features,
            frame_offset=self.cfg.frame_offset,
            min_ref_distance=self.cfg.min_ref_distance,
        )

    def forward(self, audio: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        return self.net(audio, face)

    def _contrastive(self, face: torch.Tensor, audio: torch.Tensor, label: float) -> torch.Tensor:
        d = self.disc(face, audio)
        return contrastive_loss(d, torch.full_like(d, label), self.cfg.margin)

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        opt_g, opt_d = cast(list[LightningOptimizer], self.optimizers())
        face, target, audio = batch["face"], batch["target"], batch["audio"]
        size = target.shape[0]
        fake = self.net(audio, face)

        opt_d.zero_grad()
        d_real = self._contrastive(target, audio, 0.0)
        roll = self.cfg.off_sync_roll % size
        use_fake = roll == 0 or bool(torch.rand((), device="cpu") < 0.5)
        d_neg = (
            self._contrastive(fake.detach(), audio, 1.0)
            if use_fake
            else self._contrastive(target, torch.roll(audio, roll, dims=0), 1.0)
        )
        self.manual_backward(d_real + d_neg)
        opt_d.step()

        l1 = F.l1_loss(fake, target)
        gan = self._contrastive(fake, audio, 0.0)
        loss = self.cfg.l1_wt * l1 + self.cfg.gan_wt * gan
        opt_g.zero_grad()
        self.manual_backward(loss)
        opt_g.step()

        self.log("train/l1", l1, batch_size=size)
        self.log("train/gan", gan, batch_size=size)
        self.log("train/disc_real", d_real, batch_size=size)
        self.log("train/disc_neg", d_neg, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss.detach()

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        face, target, audio = batch["face"], batch["target"], batch["audio"]
        fake = self.net(audio, face)
        size = target.shape[0]
        l1 = F.l1_loss(fake, target)
        self.log("val/l1", l1, batch_size=size, sync_dist=True)
        self.log("val/disc_real", self._contrastive(target, audio, 0.0), batch_size=size, sync_dist=True)
        self.log("val/disc_fake", self._contrastive(fake, audio, 1.0), batch_size=size, sync_dist=True)
        self.log("val/loss", l1, batch_size=size, sync_dist=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr),
            torch.optim.Adam(self.disc.parameters(), lr=self.cfg.disc_lr),
        ]

    # ----- generation --------------------------------------------------------------------------------------
    def face_audio_windows(self, audio: np.ndarray, num_frames: int) -> np.ndarray:
        """Per-output-frame audio windows (num_frames, 1, 12, 35) or (num_frames, 1, 80, 27), centred."""
        return audio_chunks(self.cfg.audio_features, audio, num_frames, self.cfg.frame_offset)

    @torch.no_grad()
    def redraw_faces(self, crops: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """uint8 RGB face crops [n,96,96,3] + audio windows -> uint8 RGB [n,96,96,3].

        Network input [crop, crop with rows 48-95 zeroed] (batch_inference.py: the frame is its own reference).
        """
        faces = rgb_to_model(crops).to(self.device)
        feats = torch.as_tensor(windows, dtype=torch.float32, device=self.device)
        out = []
        for lo in range(0, len(faces), self.cfg.generate_batch_size):
            hi = lo + self.cfg.generate_batch_size
            out.append(model_to_rgb(self.net(feats[lo:hi], lipgan_input(faces[lo:hi]))))
        return np.concatenate(out) if out else np.zeros((0, *crops.shape[1:]), np.uint8)

    @torch.no_grad()
    def _generate(
        self,
        identity: np.ndarray,
        audio: np.ndarray,
        *,
        pose_prior: np.ndarray | Sequence[np.ndarray] | None = None,
        seed: Sequence[int] = (),
        boxes: np.ndarray | Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Redraw the mouth of `pose_prior` (or of `identity` repeated) to follow `audio`.

        identity uint8 [B,H,W,3] RGB; audio float32 [B,N] 16 kHz; pose_prior uint8 [B,P,H,W,3] looped or
        truncated to T = N // 640 frames; boxes (x1,y1,x2,y2) per pose frame [B,P,4], default the whole
        frame. Returns uint8 [B,T,H,W,3]. Deterministic (no sampling); `seed` is accepted for the contract.
        """
        num_frames = frames_for_audio(audio.shape[1])
        was_training = self.training
        self.eval()
        try:
            videos = []
            for b in range(identity.shape[0]):
                pose = identity[b][None] if pose_prior is None else np.asarray(pose_prior[b])
                if pose.dtype != np.uint8 or pose.ndim != 4 or pose.shape[0] == 0:
                    raise ValueError(f"pose_prior[{b}] must be uint8 [P,H,W,3] with P >= 1, got {pose.shape}")
                h, w = pose.shape[1:3]
                box = np.tile([0, 0, w, h], (len(pose), 1)) if boxes is None else np.asarray(boxes[b], np.int64)
                if box.shape != (len(pose), 4):
                    raise ValueError(f"boxes[{b}] must be [P,4] for {len(pose)} pose frames, got {box.shape}")
                src = np.arange(num_frames) % len(pose)
                crops = crop_faces(pose, box)  # once per pose frame, reused when looping
                faces = self.redraw_faces(crops[src], self.face_audio_windows(audio[b], num_frames))
                videos.append(paste_faces(pose[src], box[src], faces))
        finally:
            self.train(was_training)
        return np.stack(videos)
