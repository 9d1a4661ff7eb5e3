"""LipGAN re-implementation: Keras spatial paths, TF padding, instance norm, contrastive loss, MATLAB MFCC."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import scipy.fft
import scipy.signal
import torch
from omegaconf import OmegaConf
from torch.utils.data import Subset

from data.clip import Clip
from models.lipgan.audio import audio_chunks, matlab_mfcc
from models.lipgan.module import LipGANConfig, LipGANModule
from models.lipgan.nets import (
    KerasConv2d,
    KerasConvTranspose2d,
    KerasInstanceNorm,
    LipGANDiscriminator,
    LipGANGenerator,
    contrastive_loss,
    tf_same_pads,
)


def _spatial(module: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, int]]:
    out = [tuple(x.shape[2:])]
    for child in module:
        x = child(x)
        out.append(tuple(x.shape[2:]))
    return out


# ----- network ----------------------------------------------------------------------------------------------


def test_generator_spatial_paths_match_keras_comments() -> None:
    net = LipGANGenerator(width=0.0625, audio_features="mfcc").eval()
    face, audio = torch.rand(2, 6, 96, 96), torch.randn(2, 1, 12, 35)
    # generator.py comments: 96x96, 48x48, 24x24, 12x12, 6x6, 3x3, then valid 3x3 and 1x1
    assert _spatial(net.face_encoder, face)[1:] == [(96, 96), (48, 48), (24, 24), (12, 12), (6, 6), (3, 3), (1, 1)]
    # generator.py's layers (docs/lipgan.md): 12x35 -> ZeroPadding 13x35 -> (1,2) 13x18 -> 7x9 -> 4x5 -> valid 1x1
    assert _spatial(net.audio_encoder, audio) == [
        (12, 35),
        (12, 35),
        (13, 35),
        (13, 18),
        (7, 9),
        (4, 5),
        (1, 1),
        (1, 1),
    ]
    sizes = []
    hooks = [lvl.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[2:]))) for lvl in net.decoder]
    with torch.no_grad():
        out = net(audio, face)
    for h in hooks:
        h.remove()
    assert sizes == [(3, 3), (6, 6), (12, 12), (24, 24), (48, 48), (96, 96)]
    assert out.shape == (2, 3, 96, 96) and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    mel = LipGANGenerator(width=0.0625, audio_features="mel").eval()
    # fully_pythonic comments: 80x27 -> 27x9 -> 9x9 -> 3x3 -> 1x1
    assert _spatial(mel.audio_encoder, torch.randn(1, 1, 80, 27)) == [
        (80, 27),
        (80, 27),
        (27, 9),
        (9, 9),
        (3, 3),
        (1, 1),
        (1, 1),
    ]


def test_full_width_channels_follow_create_model_residual() -> None:
    net = LipGANGenerator()
    convs = [m for m in net.face_encoder.modules() if isinstance(m, KerasConv2d)]
    assert [c.out_channels for c in convs][:3] == [32, 64, 64] and convs[0].kernel_size == (7, 7)
    assert convs[1].kernel_size == (5, 5) and convs[1].stride == (2, 2)
    # residual blocks per face level: 2, 3, 2, 2 (create_model_residual)
    assert [len(net.face_encoder[i]) - 1 for i in range(1, 5)] == [2, 3, 2, 2]
    assert net.decoder[0].conv.in_channels == 1024 and net.output_block[0].conv.in_channels == 64
    bn = net.face_encoder[0].bn
    assert (bn.eps, bn.momentum) == (1e-3, 0.2)  # Keras epsilon 1e-3, momentum 0.8


def test_discriminator_paths_and_distance() -> None:
    d = LipGANDiscriminator(width=0.0625).eval()
    face, audio = torch.rand(3, 3, 96, 96), torch.randn(3, 1, 12, 35)
    assert _spatial(d.face_encoder, face)[1:] == [(48, 48), (24, 24), (12, 12), (6, 6), (3, 3), (1, 1)]
    assert _spatial(d.audio_encoder, audio)[-1] == (1, 1)
    f, a = d.embeddings(face, audio)
    dist = d(face, audio)
    torch.testing.assert_close(dist[:, 0], (f - a).norm(dim=1))
    assert dist.shape == (3, 1) and float(dist.min()) >= 0.0 and float(dist.max()) <= 2.0 + 1e-6


def test_tf_same_padding_is_asymmetric() -> None:
    assert tf_same_pads(96, 3, 2) == (0, 1) and tf_same_pads(96, 5, 2) == (1, 2) and tf_same_pads(35, 3, 1) == (1, 1)
    conv = KerasConv2d(1, 1, 3, 2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0  # picks the top-left tap of each window
        conv.bias.zero_()
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # TF pads nothing before (extra row/col after), so the top-left tap of window (0,0) is x[0,0] itself
    torch.testing.assert_close(conv(x)[0, 0], x[0, 0, ::2, ::2])
    convt = KerasConvTranspose2d(1, 1, 3, 2)
    with torch.no_grad():
        convt.weight.zero_()
        convt.weight[0, 0, 0, 0] = 1.0
        convt.bias.zero_()
    y = convt(torch.ones(1, 1, 3, 3))
    assert y.shape == (1, 1, 6, 6)
    # TF crops the end of the full 7x7 output: input pixel (i, j) lands at (2i, 2j)
    expected = torch.zeros(6, 6)
    expected[::2, ::2] = 1.0
    torch.testing.assert_close(y[0, 0], expected)


def test_instance_norm_matches_keras_contrib_formula() -> None:
    x = torch.randn(2, 4, 5, 6) * 3 + 1
    norm = KerasInstanceNorm()
    with torch.no_grad():
        norm.weight.fill_(2.0)
        norm.bias.fill_(0.5)
    xn = x.numpy().astype(np.float64)
    mean = xn.mean(axis=(1, 2, 3), keepdims=True)
    std = xn.std(axis=(1, 2, 3), keepdims=True) + 1e-3  # epsilon on the std, population std
    np.testing.assert_allclose(norm(x).detach().numpy(), (xn - mean) / std * 2.0 + 0.5, rtol=1e-5, atol=1e-5)
    assert norm.weight.shape == (1,)


def test_contrastive_loss_known_values() -> None:
    d = torch.tensor([[0.0], [0.5], [1.5], [0.25]])
    y = torch.tensor([0.0, 0.0, 1.0, 1.0])
    # in sync (0): d^2; off-sync (1): max(0, 1 - d)^2
    assert float(contrastive_loss(d, y)) == pytest.approx((0.0 + 0.25 + 0.0 + 0.5625) / 4)


# ----- MFCC ---------------------------------------------------------------------------------------------------


def independent_matlab_mfcc(x: np.ndarray) -> np.ndarray:
    """The MATLAB recipe (mfcc.m / trifbank.m) written out step by step with loops and scipy, for the test."""
    fs = 16000
    s = x.astype(np.float64) * 32768.0
    s = scipy.signal.lfilter([1.0, -0.97], [1.0], s)  # filter([1 -alpha], 1, speech)
    nw, ns, nfft = 400, 160, 512
    win = scipy.signal.get_window("hamming", nw, fftbins=False)  # symmetric hamming
    frames = [s[i : i + nw] * win for i in range(0, len(s) - nw + 1, ns)]
    k = nfft // 2 + 1
    freqs = np.array([i * fs / 2 / (k - 1) for i in range(k)])
    mel = lambda f: 1127 * np.log(1 + f / 700)  # noqa: E731
    imel = lambda m: 700 * (np.exp(m / 1127) - 1)  # noqa: E731
    cut = [imel(mel(300) + i * (mel(3700) - mel(300)) / 41) for i in range(42)]
    fb = np.zeros((40, k))
    for m in range(40):
        for b, f in enumerate(freqs):
            if cut[m] <= f <= cut[m + 1]:
                fb[m, b] = (f - cut[m]) / (cut[m + 1] - cut[m])
            if cut[m + 1] <= f <= cut[m + 2]:
                fb[m, b] = (cut[m + 2] - f) / (cut[m + 2] - cut[m + 1])
    out = []
    for fr in frames:
        spec = np.abs(np.fft.rfft(fr, nfft))
        logfb = np.log(fb @ spec)
        # sqrt(2/M) cos(pi n (m - 0.5) / M) = sqrt(2/M) / 2 * unnormalised scipy DCT-II
        cc = np.sqrt(2.0 / 40) / 2.0 * scipy.fft.dct(logfb, type=2, norm=None)[:13]
        lifter = np.array([1 + 11 * np.sin(np.pi * n / 22) for n in range(13)])
        out.append((cc * lifter)[1:])
    return np.array(out).T


def test_mfcc_matches_independent_matlab_derivation() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(12000) / 16000
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    ours = matlab_mfcc(x.astype(np.float32))
    ref = independent_matlab_mfcc(x.astype(np.float32))
    assert ours.shape == ref.shape == (12, 1 + (12000 - 400) // 160)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


def test_mfcc_chunks_are_centred_windows() -> None:
    audio = np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1
    feat = matlab_mfcc(audio)  # 98 columns
    ch = audio_chunks("mfcc", audio, 25)
    assert ch.shape == (25, 1, 12, 35) and ch.dtype == np.float32
    # chunk k = columns 4k..4k+34 goes with frame k + 4 (preprocess.py window midpoints)
    np.testing.assert_allclose(ch[10, 0], feat[:, 24:59], rtol=1e-6)
    np.testing.assert_allclose(ch[0, 0, :, :16], np.repeat(feat[:, :1], 16, 1), rtol=1e-6)  # edge repeated
    assert audio_chunks("mel", audio, 25).shape == (25, 1, 80, 27)


# ----- module -------------------------------------------------------------------------------------------------


REPO = Path(__file__).resolve().parents[2]

# LipGAN master @0a4aab9: train.py, generator.py, discriminator.py (docs/official_recipes.md)
OFFICIAL_LIPGAN = {
    "width": 1.0,  # train.py --model residual: generator.py create_model_residual
    "disc_width": 1.0,  # discriminator.py create_model
    "audio_features": "mfcc",  # master: 12 x 35 MATLAB MFCC (the model of the paper)
    "lr": 1e-4,  # train.py --lr, used by gen, disc and the combined model
    "disc_lr": 1e-4,
    "batch_size": 96,  # train.py --batch_size, per GPU
    "l1_wt": 1.0,  # create_combined_model loss_weights=[1., .01]
    "gan_wt": 0.01,
    "margin": 1.0,  # contrastive_loss margin
    "off_sync_roll": 10,  # np.roll(audio, 10, axis=0)
    "min_ref_distance": 6,  # choose_ip_frame: >= 6 frames from the target
    "frame_offset": 0,  # preprocess.py: the image is the window's middle frame
    "generate_batch_size": 256,  # batch_inference.py --lipgan_batch_size
}
# train.py never stops (--epochs 2e7); the paper trains ~20 epochs of ~2.25M LRS2 train images
PAPER_EPOCHS, LRS2_TRAIN_IMAGES = 20, 2_250_000


def test_paper_preset_matches_official_train_py() -> None:
    paper = LipGANConfig.preset("paper")
    assert paper == LipGANConfig()
    assert {key: getattr(paper, key) for key in OFFICIAL_LIPGAN} == OFFICIAL_LIPGAN
    trainer = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "models" / "lipgan.yaml").presets.paper.trainer)
    batches = round(PAPER_EPOCHS * LRS2_TRAIN_IMAGES / OFFICIAL_LIPGAN["batch_size"], -4)
    assert trainer["max_steps"] == 2 * batches == 940_000  # Lightning counts the G and the D step
    assert trainer["precision"] == "32-true"
    assert (trainer["val_check_interval"], trainer["limit_val_batches"]) == (2000, 100)  # ours: train.py has none
    # Keras Adam(lr=args.lr): default betas (0.9, 0.999), also torch's
    opt_g, opt_d = LipGANModule(LipGANConfig.preset("paper", width=0.0625, disc_width=0.0625)).configure_optimizers()
    for opt in (opt_g, opt_d):
        assert (opt.defaults["lr"], opt.defaults["betas"]) == (1e-4, (0.9, 0.999))


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(SyntheticConfig(n_clips=2, size=96, min_seconds=1.2, max_seconds=1.4, seed=2))
    return [render_clip(spec, i) for i in range(2)]


def test_windows_reference_is_six_frames_away(clips: list[Clip]) -> None:
    module = LipGANModule(LipGANConfig.preset("tiny", width=0.0625, disc_width=0.0625))
    ds = Subset(module.train_dataset(clips, seed=0, fixed=True), range(16))
    for i in range(16):
        item = ds[i]
        assert abs(item["ref"] - item["frame"]) >= 6
        assert item["face"].shape == (6, 96, 96) and item["audio"].shape == (1, 12, 35)
        assert float(item["face"][3:, 48:].abs().max()) == 0.0  # target channels 3-5, lower half zeroed
        torch.testing.assert_close(item["face"][3:, :48], item["target"][:, :48])


def test_training_and_generate(clips: list[Clip]) -> None:
    torch.manual_seed(0)
    module = LipGANModule(LipGANConfig.preset("tiny", width=0.0625, disc_width=0.0625, batch_size=4))
    g0 = module.net.output_block[2].weight.clone()
    d0 = module.disc.face_encoder[5].weight.clone()
    ds = Subset(module.train_dataset(clips, seed=0, fixed=True), range(8))
    trainer = L.Trainer(
        max_steps=4, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.fit(module, torch.utils.data.DataLoader(ds, batch_size=4))
    assert not torch.equal(module.net.output_block[2].weight, g0)
    assert not torch.equal(module.disc.face_encoder[5].weight, d0)
    frame = np.random.default_rng(0).integers(0, 256, (1, 120, 160, 3), dtype=np.uint8)
    audio = clips[0].audio[None, : 6 * 640]
    out = module.generate(frame, audio, boxes=np.array([[[30, 10, 130, 110]]]))
    assert out.shape == (1, 6, 120, 160, 3) and out.dtype == np.uint8
    outside = np.ones((120, 160), bool)
    outside[10:110, 30:130] = False
    assert all(np.array_equal(out[0, i][outside], frame[0][outside]) for i in range(6))
    np.testing.assert_array_equal(out, module.generate(frame, audio, boxes=np.array([[[30, 10, 130, 110]]])))
