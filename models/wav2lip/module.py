"""LightningModule for Wav2Lip's generator without the GAN term (Wav2Lip:wav2lip_train.py).

Loss = syncnet_wt * sync + (1 - syncnet_wt) * L1, with syncnet_wt 0 until the average eval sync loss drops
below 0.75, then 0.01 (Wav2Lip:wav2lip_train.py; docs/official_recipes.md). The expert is frozen and, unlike
the official script, kept in eval mode (`expert_train_mode_bn=True` reproduces the official train-mode
BatchNorm, which also lets the expert's running statistics drift with the generator's outputs).

Paper preset vs the official code (table: docs/official_recipes.md; pinned by tests/models/test_wav2lip.py).
Equal: width 1.0, Wav2Lip:hparams.py batch_size 16 and initial_learning_rate 1e-4, torch Adam default betas,
sync weight 0 -> 0.01 once eval sync loss < 0.75 (never back), training mel alignment (`mel_frame_offset=-1`,
get_segmented_mels), hparams.eval_interval 3000, fp32, inference.py wav2lip_batch_size 128. Different:
- step budget: hparams.py nepochs 2e17 (stopped by hand; README: eval sync loss ~0.2, "< 1 day"), so the budget
  is ours: max_steps 250,000 = the global_step users read in the released wav2lip.pth (Wav2Lip#53, approximate).
- eval size: wav2lip_train.py eval_model stops after 701 batches (`step > 700`, cycling the val loader);
  limit_val_batches 701, but our pass ends at the end of the val windows when there are fewer.
- no eval after step 1: wav2lip_train.py also evaluates at global_step 1, which only matters if the untrained
  generator already scores < 0.75; Lightning validates every val_check_interval batches only.
- expert BatchNorm: wav2lip_train.py never calls syncnet.eval() (train-mode BN); eval mode here, see above.
- eval items: wav2lip_train.py draws new random windows each eval; ours are a fixed seeded set, so evals compare.
- clip length: wav2lip_train.py skips videos with <= 15 frames (3 * syncnet_T); models/common/windows.py needs 6.
- checkpoints: wav2lip_train.py keeps one every 3,000 steps with sample collages; the runner keeps last.ckpt.
- the paper's text says batch 80 and hparams.py's comment a sync weight of 0.03; the code (16, 0.01) is used.

Tiny preset, measured on the synthetic corpus (96x96, medium difficulty, 5 training speakers, 16 clips of 2
unseen test speakers), 2 CPU cores, `torch.set_num_threads(2)`, on a machine shared with other jobs:
- throughput (synthetic tensors, quiet machine): expert width 0.25 batch 64: 3.2-3.9 steps/s; generator
  width 0.125 batch 8 with the sync term: 2.1 steps/s (width 0.25: 1.1; batch 16 costs 2-2.5x batch 8);
  generate(): ~165-235 frames/s at width 0.125 (96x96, identity frame repeated).
- expert (width 0.25, lr 5e-4): held-out BCE 0.53 after 100 steps, 0.47 after 200, 0.36 after 600; width
  0.125 needs ~700 steps for < 0.5.
- 150 s expert + 330 s generator through Lightning (259 + 665 steps): mean AV confidence of a calibrated
  evaluator (metrics.calibration.sync) 0.289 for the trained generator vs 0.032 untrained and 0.068 for the
  static baseline (real clips ~0.34); the mouth visibly opens and closes with the syllables.
- without the sync term (official gate never opened: eval sync loss 2-4) the generator stayed blurry with a
  still mouth after 530 steps (confidence 0.076, static level); a sync weight of 0.05 from the start
  fooled the weak expert with off-colour textures. Channel floors of 8 (models.common.blocks) were needed
  for unseen speakers' colours to pass the 96x96 skip.
- measured offsets are -1 frame for almost every clip: the official training alignment (per-frame mels one
  frame before inference, `mel_frame_offset=-1`) reproduces its 40 ms lead of the mouth at inference;
  `mel_frame_offset=0` trains with the inference alignment.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torchmetrics import MeanMetric

from data.clip import Clip
from models.base import TalkingFaceModule
from models.common.config import Presets, to_config
from models.common.frames import LOWER_HALF, model_to_rgb, rgb_to_model
from models.syncnet.module import SyncNetExpertModule
from models.syncnet.nets import SyncNetColor
from models.wav2lip.nets import Wav2LipGenerator
from models.wav2lip.process import expert_sync_loss, mel_chunks, reanimate
from models.wav2lip.windows import Wav2LipWindows


@dataclass
class Wav2LipConfig(Presets):
    """Generator hyperparameters; defaults are the `paper` preset (Wav2Lip hparams.py, wav2lip_train.py)."""

    preset_source: ClassVar[str] = "wav2lip"  # its presets: configs/models/wav2lip.yaml
    generation_fields: ClassVar[tuple[str, ...]] = ("generate_batch_size",)

    width: float = 1.0  # channel multiplier; 1.0 = the official network (wav2lip.pth loads)
    lr: float = 1e-4  # hparams.initial_learning_rate
    betas: tuple[float, float] = (0.9, 0.999)  # torch Adam defaults (the GAN variant uses (0.5, 0.999))
    batch_size: int = 16  # hparams.batch_size
    syncnet_wt: float = 0.0  # starting sync weight (hparams.syncnet_wt)
    syncnet_wt_after: float = 0.01  # set once the eval sync loss < sync_threshold (0.03 in the GAN variant)
    sync_threshold: float = 0.75
    expert_width: float = 1.0  # the expert's width; taken from the expert when one is passed
    expert_train_mode_bn: bool = False  # True: the official (unintended) train-mode BatchNorm in the expert
    mel_frame_offset: int = -1  # per-frame mel alignment in training; -1 official, 0 = inference alignment
    generate_batch_size: int = 128  # frames per forward pass in generate() (inference.py wav2lip_batch_size)


class Wav2LipModule(TalkingFaceModule):
    """Wav2Lip generator training (L1 + expert sync loss) and `generate` (models/base.py contract).

    Batches are `windows.Wav2LipWindows` items. The generator is `self.net`
    (checkpoint keys "net.*"), the frozen expert `self.expert` ("expert.*"). Logs train/l1, train/sync (once
    the sync weight is on), train/loss, val/l1, val/sync, val/loss and syncnet_wt.
    """

    crop = "wav2lip"  # data.faces crop: the 96 px face box (Wav2Lip preprocess.py: S3FD box resized to 96)
    trainable = True
    config_class = Wav2LipConfig
    trained_against = {"syncnet": "its frozen SyncNet expert (lipsync_expert, Wav2Lip's SyncNet_color)"}
    redraws_faces = True  # face_audio_windows + redraw_faces: `bench generate` on any video
    default_pads = (0, 10, 0, 0)  # inference.py --pads (top, bottom, left, right): include the chin

    def __init__(
        self,
        cfg: Wav2LipConfig | Mapping[str, Any] | None = None,
        expert: SyncNetExpertModule | SyncNetColor | None = None,
    ) -> None:
        super().__init__()
        cfg = to_config(Wav2LipConfig, cfg)
        self._expert_given = expert is not None
        if isinstance(expert, SyncNetExpertModule):
            expert = expert.net
        if expert is not None:
            if not isinstance(expert, SyncNetColor):
                raise TypeError(f"expert must be a SyncNetExpertModule or SyncNetColor, got {type(expert)}")
            # a private frozen copy: freezing must not change the caller's expert
            expert = copy.deepcopy(expert)
            cfg = dataclasses.replace(cfg, expert_width=expert.width)
        else:
            # same structure as the trained expert, so load_from_checkpoint restores its weights
            expert = SyncNetColor(width=cfg.expert_width)
        self.cfg = cfg
        self.save_hyperparameters({"cfg": dataclasses.asdict(cfg)})
        self.net = Wav2LipGenerator(width=cfg.width)
        self.expert = expert
        self.expert.requires_grad_(False)
        self.syncnet_wt = float(cfg.syncnet_wt)
        self.val_sync = MeanMetric()
        self._set_expert_mode()

    # ----- expert mode -------------------------------------------------------------------------------------
    def _set_expert_mode(self) -> None:
        self.expert.train(self.cfg.expert_train_mode_bn)

    def train(self, mode: bool = True) -> Wav2LipModule:
        # Lightning toggles train()/eval() on the whole module around validation; the expert keeps its mode.
        super().train(mode)
        self._set_expert_mode()
        return self

    def train_dataset(self, clips: Sequence[Clip], *, seed: int, fixed: bool) -> Wav2LipWindows:
        return Wav2LipWindows(clips, seed=seed, fixed=fixed, mel_frame_offset=self.cfg.mel_frame_offset)

    def forward(self, mels: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        return self.net(mels, face)

    # ----- training ----------------------------------------------------------------------------------------
    def sync_loss(self, mel: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        """Expert sync loss of generated windows (B,3,5,96,96) against their mel (B,1,80,16)."""
        return expert_sync_loss(self.expert, mel, generated)

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        generated = self.net(batch["mels"], batch["face"])
        l1 = F.l1_loss(generated, batch["target"])
        size = generated.shape[0]
        wt = self.syncnet_wt
        loss = (1.0 - wt) * l1
        # the official script skips the expert entirely while the weight is 0
        if wt > 0.0:
            sync = self.sync_loss(batch["mel"], generated)
            loss = loss + wt * sync
            self.log("train/sync", sync, batch_size=size)
        self.log("train/l1", l1, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("syncnet_wt", wt, batch_size=size)
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        generated = self.net(batch["mels"], batch["face"])
        l1 = F.l1_loss(generated, batch["target"])
        sync = self.sync_loss(batch["mel"], generated)
        size = generated.shape[0]
        self.val_sync.update(sync.detach(), weight=size)
        self.log("val/l1", l1, batch_size=size, sync_dist=True)
        self.log("val/sync", sync, batch_size=size, sync_dist=True)
        self.log("val/loss", self.syncnet_wt * sync + (1.0 - self.syncnet_wt) * l1, batch_size=size, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        # MeanMetric reduces across DDP ranks, so every rank takes the same decision.
        if self.val_sync.update_count == 0:
            return
        average = float(self.val_sync.compute())
        self.val_sync.reset()
        if self._trainer is not None and self._trainer.sanity_checking:
            return  # the official schedule evaluates after the first step, not before training
        self.update_syncnet_wt(average)

    def update_syncnet_wt(self, eval_sync_loss: float) -> float:
        """Apply the official schedule to one eval result; returns the (possibly new) sync weight."""
        if eval_sync_loss < self.cfg.sync_threshold and self.syncnet_wt < self.cfg.syncnet_wt_after:
            self.syncnet_wt = float(self.cfg.syncnet_wt_after)
        return self.syncnet_wt

    def on_fit_start(self) -> None:
        if not self._expert_given:
            rank_zero_warn(
                "Wav2LipModule: no trained expert was given; the sync loss uses the expert weights this module "
                "holds (untrained unless restored from a checkpoint)."
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["syncnet_wt"] = self.syncnet_wt

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.syncnet_wt = float(checkpoint.get("syncnet_wt", self.cfg.syncnet_wt))
        self._expert_given = True  # the expert's weights come with the checkpoint

    def configure_optimizers(self) -> torch.optim.Optimizer | list[torch.optim.Optimizer]:  # GAN variant: [G, D]
        return torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr, betas=(self.cfg.betas[0], self.cfg.betas[1]))

    # ----- generation --------------------------------------------------------------------------------------
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
        """Reanimate the mouth of `pose_prior` (or of `identity` repeated) to follow `audio`.

        identity uint8 [B,H,W,3] RGB; audio float32 [B,N] 16 kHz; pose_prior uint8 [B,P,H,W,3] (or a list of
        [P_b,H,W,3]) looped or truncated to T = N // 640 frames like inference.py; boxes (x1,y1,x2,y2) per pose
        frame, [B,P,4], default the whole frame. Returns uint8 [B,T,H,W,3] RGB at the pose frames' resolution.
        Wav2Lip inference has no randomness: `seed` is accepted for the common contract and changes nothing.
        """
        batch = identity.shape[0]
        was_training = self.training
        self.eval()
        try:
            videos = []
            for b in range(batch):
                pose = identity[b][None] if pose_prior is None else np.asarray(pose_prior[b])
                if pose.dtype != np.uint8 or pose.ndim != 4 or pose.shape[0] == 0:
                    raise ValueError(f"pose_prior[{b}] must be uint8 [P,H,W,3] with P >= 1, got {pose.shape}")
                box = None if boxes is None else np.asarray(boxes[b])
                videos.append(
                    reanimate(
                        self.net,
                        pose,
                        audio[b],
                        boxes=box,
                        batch_size=self.cfg.generate_batch_size,
                        device=self.device,
                    )
                )
        finally:
            self.train(was_training)
        return np.stack(videos)

    # ----- face-video pipeline (benchmark.generate) --------------------------------------------------------
    def face_audio_windows(self, audio: np.ndarray, num_frames: int) -> np.ndarray:
        """Per-output-frame mel windows (num_frames, 1, 80, 16) with inference.py's alignment."""
        return mel_chunks(audio, num_frames)

    @torch.no_grad()
    def redraw_faces(self, crops: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """uint8 RGB 96x96 face crops [n,96,96,3] + their audio windows -> redrawn faces, uint8 RGB [n,96,96,3].

        Network input [crop with rows 48-95 zeroed, the same crop] as inference.py `datagen`.
        """
        faces = rgb_to_model(crops).to(self.device)
        masked = faces.clone()
        masked[:, :, LOWER_HALF] = 0.0
        mels = torch.as_tensor(windows, dtype=torch.float32, device=self.device)
        out = []
        for lo in range(0, len(faces), self.cfg.generate_batch_size):
            hi = lo + self.cfg.generate_batch_size
            out.append(model_to_rgb(self.net(mels[lo:hi], torch.cat([masked[lo:hi], faces[lo:hi]], dim=1))))
        return np.concatenate(out) if out else np.zeros((0, *crops.shape[1:]), np.uint8)
