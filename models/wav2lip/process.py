"""Wav2Lip's losses and inference pipeline, apart from the network and the LightningModule.

Sources: Wav2Lip:wav2lip_train.py (`get_sync_loss`, `cosine_loss`) and Wav2Lip:inference.py (`datagen`,
mel chunking, paste-back).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data.audio import MEL_STEPS_PER_WINDOW, MELS_PER_FRAME, wav2lip_melspectrogram
from models.common.frames import FACE_SIZE, LOWER_HALF, model_to_rgb, resize_faces, rgb_to_model
from models.syncnet.nets import sync_bce

MEL_FLOOR = -4.0  # the normalised mel's minimum (silence), used to pad audio shorter than one window


def expert_sync_loss(expert: nn.Module, mel: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """BCE(cos(expert audio emb, expert face emb of the generated lower halves), 1) (official `get_sync_loss`).

    mel (B,1,80,16); generated (B,3,T,96,96) BGR [0,1] with T = 5. The lower halves are stacked on channels
    as 3*t + c, the expert's layout.
    """
    lower = generated[:, :, :, LOWER_HALF]  # (B, 3, T, 48, 96)
    batch, _, frames = lower.shape[:3]
    face = lower.transpose(1, 2).reshape(batch, 3 * frames, *lower.shape[3:])
    audio_emb, face_emb = expert(mel, face)
    return sync_bce(audio_emb, face_emb, torch.ones(batch, device=mel.device))


def mel_chunks(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """Per-output-frame mel windows float32 (num_frames, 1, 80, 16) as inference.py cuts them.

    Frame i's chunk starts at column int(i * 80 / 25) (inference alignment; training uses one frame earlier,
    see windows.Wav2LipWindows). Chunks running past the end reuse the last 16 columns, as inference.py
    does; audio shorter than one window (< 0.2 s) is padded with silence first.
    """
    mel = wav2lip_melspectrogram(audio)
    if mel.shape[1] < MEL_STEPS_PER_WINDOW:
        pad = MEL_STEPS_PER_WINDOW - mel.shape[1]
        mel = np.pad(mel, ((0, 0), (0, pad)), constant_values=MEL_FLOOR)
    last = mel.shape[1] - MEL_STEPS_PER_WINDOW
    starts = [min(int(i * MELS_PER_FRAME), last) for i in range(num_frames)]
    out = np.stack([mel[:, s : s + MEL_STEPS_PER_WINDOW] for s in starts]) if starts else np.zeros((0, 80, 16))
    return out[:, None].astype(np.float32)


def _full_boxes(frames: np.ndarray) -> np.ndarray:
    height, width = frames.shape[1:3]
    return np.tile(np.array([0, 0, width, height], np.int64), (frames.shape[0], 1))


@torch.no_grad()
def reanimate(
    net: nn.Module,
    pose_frames: np.ndarray,
    audio: np.ndarray,
    *,
    boxes: np.ndarray | None = None,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Redraw the mouth of `pose_frames` (uint8 RGB [P,H,W,3]) to follow `audio`: uint8 RGB [N//640,H,W,3].

    Output frame i uses pose frame i % P: a shorter video is looped and a longer one truncated, and a single
    frame is repeated (inference.py, `--static`). The face box of each pose frame (x1, y1, x2, y2; default the
    whole frame, which is the synthetic corpus's face crop) is resized to 96x96; the network sees
    [box with rows 48-95 zeroed, the same box unmasked] and its output is resized back to the box and pasted
    into the frame (cv2.resize's default bilinear, as inference.py).
    """
    num_frames = int(audio.shape[0]) // 640
    height, width = pose_frames.shape[1:3]
    out = np.empty((num_frames, height, width, 3), np.uint8)
    if num_frames == 0:
        return out
    boxes = _full_boxes(pose_frames) if boxes is None else np.asarray(boxes, np.int64).reshape(-1, 4)
    if len(boxes) != len(pose_frames):
        raise ValueError(f"got {len(boxes)} boxes for {len(pose_frames)} pose frames")
    boxes = np.clip(boxes, 0, [width, height, width, height])  # inference.py clips padded boxes to the frame
    if np.any(boxes[:, 2] <= boxes[:, 0]) or np.any(boxes[:, 3] <= boxes[:, 1]):
        raise ValueError("every face box needs x2 > x1 and y2 > y1 inside the frame")
    crops = np.stack([resize_faces(f[None, y1:y2, x1:x2])[0] for f, (x1, y1, x2, y2) in zip(pose_frames, boxes)])
    faces = rgb_to_model(crops)  # (P, 3, 96, 96), computed once for the looped video
    masked = faces.clone()
    masked[:, :, LOWER_HALF] = 0.0
    net_input = torch.cat([masked, faces], dim=1)  # (P, 6, 96, 96)
    mels = torch.from_numpy(mel_chunks(audio, num_frames))

    for lo in range(0, num_frames, batch_size):
        idx = np.arange(lo, min(lo + batch_size, num_frames))
        src = idx % len(pose_frames)
        pred = net(mels[idx].to(device), net_input[src].to(device))
        mouths = model_to_rgb(pred)  # (n, 96, 96, 3)
        for i, j, mouth in zip(idx, src, mouths):
            x1, y1, x2, y2 = boxes[j]
            frame = pose_frames[j].copy()
            if (x2 - x1, y2 - y1) != (FACE_SIZE, FACE_SIZE):
                mouth = cv2.resize(mouth, (int(x2 - x1), int(y2 - y1)))
            frame[y1:y2, x1:x2] = mouth
            out[i] = frame
    return out


# ----- visual-quality GAN (Wav2Lip:hq_wav2lip_train.py) -------------------------------------------------------


def perceptual_loss(disc: nn.Module, generated: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial term BCE(D(fake), 1) (official `perceptual_forward`, without its `.cuda()`)."""
    pred = disc(generated)
    return F.binary_cross_entropy(pred, torch.ones_like(pred))


def disc_losses(disc: nn.Module, real: torch.Tensor, generated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(BCE(D(gt), 1), BCE(D(G.detach()), 0)): the discriminator's real and fake terms, summed for its step."""
    pred_real = disc(real)
    pred_fake = disc(generated.detach())
    return (
        F.binary_cross_entropy(pred_real, torch.ones_like(pred_real)),
        F.binary_cross_entropy(pred_fake, torch.zeros_like(pred_fake)),
    )


def gan_generator_loss(
    l1: torch.Tensor, sync: torch.Tensor | float, perceptual: torch.Tensor | float, syncnet_wt: float, disc_wt: float
) -> torch.Tensor:
    """syncnet_wt * sync + disc_wt * perceptual + (1 - syncnet_wt - disc_wt) * L1 (hq_wav2lip_train.py `train`)."""
    return syncnet_wt * sync + disc_wt * perceptual + (1.0 - syncnet_wt - disc_wt) * l1
