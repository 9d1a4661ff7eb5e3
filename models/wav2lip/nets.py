"""Wav2Lip's generator `Wav2Lip` (Wav2Lip:models/wav2lip.py).

Block structure follows the official class so that `wav2lip.pth` loads strictly (keys in
tests/data_files/wav2lip_Wav2Lip_state_dict.tsv; docs/checkpoints.md). `width` scales every hidden channel count
(the `tiny` preset); the skip-concatenation widths are derived from the scaled encoder/decoder widths, so the key
set never changes.
"""

from __future__ import annotations

import torch
from torch import nn

from models.common.blocks import ConvBNReLU, ConvLeakyReLU, ConvTransposeBNReLU, scale_channels

FACE_SIZE = 96  # the official U-Net only fits 96x96 (128x128 fails at the skip concat)
FACE_CHANNELS = 6  # masked target (BGR) + reference (BGR)
_Stride = int | tuple[int, int]  # one stride for both axes, or (rows, cols)


# Face encoder, one entry per skip level: (cout, first kernel, first stride, first padding, n residual blocks)
# 96 -> 96 -> 48 -> 24 -> 12 -> 6 -> 3 -> 1 (official comments).
_ENCODER: list[tuple[int, int, _Stride, int, int]] = [
    (16, 7, 1, 3, 0),
    (32, 3, 2, 1, 2),
    (64, 3, 2, 1, 3),
    (128, 3, 2, 1, 2),
    (256, 3, 2, 1, 2),
    (512, 3, 2, 1, 1),
]

# Audio encoder (80x16 mel -> 1x1): (cout, kernel, stride, padding, residual).
_AUDIO: list[tuple[int, int, _Stride, int, bool]] = [
    (32, 3, 1, 1, False),
    (32, 3, 1, 1, True),
    (32, 3, 1, 1, True),
    (64, 3, (3, 1), 1, False),
    (64, 3, 1, 1, True),
    (64, 3, 1, 1, True),
    (128, 3, 3, 1, False),
    (128, 3, 1, 1, True),
    (128, 3, 1, 1, True),
    (256, 3, (3, 2), 1, False),
    (256, 3, 1, 1, True),
    (512, 3, 1, 0, False),
    (512, 1, 1, 0, False),
]

# Decoder levels after the 1x1 entry block: (cout, transpose stride, padding, output_padding, n residual).
# Level 1 grows 1x1 -> 3x3 (stride 1, no padding), the others double the size.
_DECODER = [
    (512, 1, 0, 0, 1),
    (512, 2, 1, 1, 2),
    (384, 2, 1, 1, 2),
    (256, 2, 1, 1, 2),
    (128, 2, 1, 1, 2),
    (64, 2, 1, 1, 2),
]


class Wav2LipGenerator(nn.Module):
    """Audio-conditioned U-Net that redraws the lower half of a 96x96 face.

    4-D form: audio (N,1,80,16) mel in [-4,4], face (N,6,96,96) BGR in [0,1] (channels 0-2: target frame with
    rows 48-95 zeroed; 3-5: reference frame) -> (N,3,96,96) BGR in [0,1] (sigmoid).
    5-D form: audio (B,T,1,80,16), face (B,6,T,96,96) -> (B,3,T,96,96); frames are folded into the batch.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.width = float(width)

        def c(n: int) -> int:
            return scale_channels(n, self.width)

        blocks: list[nn.Sequential] = []
        cin = FACE_CHANNELS
        enc_out: list[int] = []
        for cout, kernel, stride, padding, n_res in _ENCODER:
            cout = c(cout)
            layers: list[nn.Module] = [ConvBNReLU(cin, cout, kernel, stride, padding)]
            layers += [ConvBNReLU(cout, cout, 3, 1, 1, residual=True) for _ in range(n_res)]
            blocks.append(nn.Sequential(*layers))
            enc_out.append(cout)
            cin = cout
        # 3x3 -> 1x1 bottleneck
        blocks.append(nn.Sequential(ConvBNReLU(cin, c(512), 3, 1, 0), ConvBNReLU(c(512), c(512), 1, 1, 0)))
        enc_out.append(c(512))
        self.face_encoder_blocks = nn.ModuleList(blocks)

        audio_layers = []
        cin = 1
        for cout, kernel, stride, padding, residual in _AUDIO:
            audio_layers.append(ConvBNReLU(cin, c(cout), kernel, stride, padding, residual))
            cin = c(cout)
        self.audio_encoder = nn.Sequential(*audio_layers)

        # Each decoder level sees the previous output concatenated with the encoder feature of its size.
        dec: list[nn.Sequential] = [nn.Sequential(ConvBNReLU(cin, c(512), 1, 1, 0))]
        prev = c(512)
        for level, (cout, stride, padding, out_pad, n_res) in enumerate(_DECODER, start=1):
            cout = c(cout)
            skip = enc_out[-level]
            layers = [ConvTransposeBNReLU(prev + skip, cout, 3, stride, padding, out_pad)]
            layers += [ConvBNReLU(cout, cout, 3, 1, 1, residual=True) for _ in range(n_res)]
            dec.append(nn.Sequential(*layers))
            prev = cout
        self.face_decoder_blocks = nn.ModuleList(dec)

        self.output_block = nn.Sequential(
            ConvBNReLU(prev + enc_out[0], c(32), 3, 1, 1), nn.Conv2d(c(32), 3, 1, 1, 0), nn.Sigmoid()
        )

    def forward(self, audio: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        five_d = face.dim() == 5
        if five_d:
            batch, _, frames = face.shape[:3]
            if audio.shape[:2] != (batch, frames):
                raise ValueError(f"audio {tuple(audio.shape)} does not match face {tuple(face.shape)}")
            # Frame-major folding, like the official torch.cat over frames; undone below.
            audio = audio.transpose(0, 1).reshape(batch * frames, *audio.shape[2:])
            face = face.permute(2, 0, 1, 3, 4).reshape(batch * frames, face.shape[1], *face.shape[3:])

        x = self.audio_encoder(audio)
        feats = []
        h = face
        for block in self.face_encoder_blocks:
            h = block(h)
            feats.append(h)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), feats.pop()), dim=1)
        out = self.output_block(x)

        if five_d:
            out = out.reshape(frames, batch, *out.shape[1:]).permute(1, 2, 0, 3, 4)
        return out


# Visual-quality discriminator (Wav2Lip:models/wav2lip.py `Wav2Lip_disc_qual`): one entry per block, each a list
# of (cout, kernel, stride, padding). Spatial path of the lower half: 48x96 -> 48x96 -> 48x48 -> 24 -> 12 -> 6
# -> 3 -> 1 (official comments; keys in tests/data_files/wav2lip_Wav2Lip_disc_qual_state_dict.tsv).
_DISC_QUAL: list[list[tuple[int, int, _Stride, int]]] = [
    [(32, 7, 1, 3)],
    [(64, 5, (1, 2), 2), (64, 5, 1, 2)],
    [(128, 5, 2, 2), (128, 5, 1, 2)],
    [(256, 5, 2, 2), (256, 5, 1, 2)],
    [(512, 3, 2, 1), (512, 3, 1, 1)],
    [(512, 3, 2, 1), (512, 3, 1, 1)],
    [(512, 3, 1, 0), (512, 1, 1, 0)],
]


class Wav2LipDiscQual(nn.Module):
    """Wav2Lip's visual-quality discriminator: probability that the lower half of a 96x96 face is real.

    forward((B,3,T,96,96) BGR [0,1]) -> (B*T, 1) in (0, 1), frames folded frame-major like the official `to_2d`
    (also accepts (N,3,96,96)). Conv + LeakyReLU(0.01) blocks without normalisation, 1x1 conv + sigmoid.
    `width` scales the hidden channels (the `tiny` preset) without changing the key set.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.width = float(width)
        blocks = []
        cin = 3
        for layers in _DISC_QUAL:
            seq = []
            for cout, kernel, stride, padding in layers:
                cout = scale_channels(cout, self.width)
                seq.append(ConvLeakyReLU(cin, cout, kernel, stride, padding))
                cin = cout
            blocks.append(nn.Sequential(*seq))
        self.face_encoder_blocks = nn.ModuleList(blocks)
        self.binary_pred = nn.Sequential(nn.Conv2d(cin, 1, 1, 1, 0), nn.Sigmoid())

    @staticmethod
    def to_2d(faces: torch.Tensor) -> torch.Tensor:
        """(B,3,T,H,W) -> (T*B,3,H,W), frame-major as the official torch.cat over frames; 4-D passes through."""
        if faces.dim() == 4:
            return faces
        return faces.permute(2, 0, 1, 3, 4).reshape(-1, *faces.shape[1:2], *faces.shape[3:])

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        x = self.to_2d(faces)
        x = x[:, :, x.shape[2] // 2 :]  # lower half (official get_lower_half)
        for block in self.face_encoder_blocks:
            x = block(x)
        return self.binary_pred(x).reshape(len(x), -1)
