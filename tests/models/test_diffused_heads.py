"""Diffused Heads: official state-dict layouts, the diffusion process, samplers, generation, checkpoints, configs."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from models.checkpoints import CheckpointError, check_state_dict
from models.diffused_heads.module import DiffusedHeadsConfig, DiffusedHeadsModule
from models.diffused_heads.nets import DiffusedHeadsUNet, UNetConfig
from models.diffused_heads.process import (
    GaussianDiffusion,
    SamplerConfig,
    audio_window_ids,
    autoregressive_sample,
    cosine_betas,
    discretized_gaussian_nll,
    lip_loss,
    mask_lower_half,
    mouth_boxes,
    normal_kl,
    sample_frame,
    space_timesteps,
)
from models.diffused_heads.windows import DiffusedHeadsWindows

DATA = Path(__file__).resolve().parents[1] / "data_files"


def _table(name: str) -> dict[str, tuple[int, ...]]:
    rows = (DATA / name).read_text().splitlines()[1:]
    out = {}
    for row in rows:
        key, shape, _ = row.split("\t")
        out[key] = tuple(int(s) for s in shape.strip("[]").split(",") if s.strip())
    return out


def _tiny_unet(seed: int = 0, **kw) -> DiffusedHeadsUNet:
    torch.manual_seed(seed)
    cfg = dict(
        image_size=16,
        model_channels=16,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(8,),
        num_heads=1,
        num_head_channels=-1,
        dropout=0.0,
        norm_groups=4,
        audio_dim=8,
    )
    cfg.update(kw)
    net = DiffusedHeadsUNet(UNetConfig(**cfg)).eval()
    with torch.no_grad():  # the zero-initialised output convs would make every output 0
        for p in net.parameters():
            p.copy_(torch.randn(p.shape) * 0.03)
    return net


# ------------------------------------------------------------------------------------------- official layouts


@pytest.mark.parametrize(
    ("table", "grayscale"),
    [("diffused_heads_UNet_state_dict.tsv", True), ("diffused_heads_UNet_rgbmotion_state_dict.tsv", False)],
)
def test_paper_unet_strict_loads_reference_table(table: str, grayscale: bool) -> None:
    ref = _table(table)
    with torch.device("meta"):
        net = DiffusedHeadsUNet(UNetConfig(grayscale_motion=grayscale))
    sd = {k: torch.empty(shape, device="meta") for k, shape in ref.items()}
    check_state_dict(net, sd, source=table)
    net.load_state_dict(sd, strict=True, assign=True)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == ref


def test_unet_rejects_other_table() -> None:
    with torch.device("meta"):
        net = DiffusedHeadsUNet(UNetConfig(grayscale_motion=True))
    sd = {k: torch.empty(s, device="meta") for k, s in _table("diffused_heads_UNet_rgbmotion_state_dict.tsv").items()}
    with pytest.raises(CheckpointError, match="input_blocks.0.0.weight"):
        check_state_dict(net, sd)


def test_unet_forward_shape_and_time_embedding() -> None:
    net = _tiny_unet()
    x = torch.randn(2, 3, 16, 16)
    out = net(x, torch.tensor([0, 999]), x, torch.randn(2, 2, 16, 16), torch.randn(2, 5, 8))
    assert out.shape == (2, 6, 16, 16)
    # official frequencies exp(-ln(1e4) k / (2C)): at C=16 the slowest one is exp(-ln(1e4) 7/32)
    emb = net.time_embed
    t = torch.tensor([1.0])
    k = torch.arange(8.0)
    feats = torch.cat(
        [torch.cos(t * torch.exp(-math.log(1e4) * k / 32)), torch.sin(t * torch.exp(-math.log(1e4) * k / 32))]
    )
    assert torch.allclose(emb(t), emb.fc(feats[None]), atol=1e-6)


# ------------------------------------------------------------------------------------------- process


def test_cosine_schedule_and_respacing() -> None:
    betas = cosine_betas(1000)
    ab = np.cumprod(1 - betas)
    assert betas[-1] == pytest.approx(0.999)  # clipped
    assert ab[0] == pytest.approx(
        math.cos(1.008**-1 * 0.009 * math.pi / 2) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2, rel=1e-9
    )
    steps = space_timesteps(1000, 100)
    assert len(steps) == 100 and steps[0] == 0 and steps[-1] == 999 and steps[1] == 10
    d = GaussianDiffusion.cosine(1000)
    r = d.respaced(100)
    np.testing.assert_allclose(r.alpha_bar, d.alpha_bar[steps], rtol=1e-9)
    assert list(r.timesteps) == steps
    with pytest.raises(ValueError):
        space_timesteps(1000, 1)


def test_losses_known_values() -> None:
    m = torch.randn(4, 3)
    assert torch.allclose(normal_kl(m, torch.zeros_like(m), m, torch.zeros_like(m)), torch.zeros_like(m))
    # KL(N(0,1) || N(1,1)) = 1/2
    assert normal_kl(torch.zeros(1), torch.zeros(1), torch.ones(1), torch.zeros(1)).item() == pytest.approx(0.5)
    # a sharp Gaussian on the bin centre: probability ~1, NLL ~0; far off: large
    x = torch.tensor([0.0, 1.0, -1.0])
    near = discretized_gaussian_nll(x, x, torch.full_like(x, -8.0))
    assert near.max().item() < 1e-3
    assert discretized_gaussian_nll(x, x + 0.5, torch.full_like(x, -8.0))[0].item() > 20


def test_lip_loss_only_sees_the_mouth_box() -> None:
    lms = torch.tensor([[[10.2, 20.5], [14.9, 24.1]]])  # (B, points, xy)
    box = mouth_boxes(lms, size=32, margin=5)
    assert box.tolist() == [[15, 30, 5, 20]]  # rows floor(20.5)-5 .. ceil(24.1)+5, cols floor(10.2)-5 .. ceil(14.9)+5
    eps = torch.zeros(1, 3, 32, 32)
    pred = eps.clone()
    pred[:, :, :15] = 1.0  # outside the box
    assert lip_loss(eps, pred, box).item() == 0.0
    pred[:, :, 15:30, 5:20] = 2.0
    assert lip_loss(eps, pred, box).item() == pytest.approx(4.0)


# expected slices from this implementation (seeded tiny random UNet), pinned against regressions
EXPECTED = {
    "ancestral": [-0.88465, 1.0, -0.83269, 0.09240, 0.98158, 0.99488, 0.31028, 0.44545, -7.29859],
    "ddim": [-1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 8.0],
}


@pytest.mark.parametrize("method", ["ancestral", "ddim"])
def test_sampler_regression_slice(method: str) -> None:
    torch.set_num_threads(1)
    net = _tiny_unet(seed=0)
    g = torch.Generator().manual_seed(0)
    cond = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    motion = torch.rand(1, 2, 16, 16, generator=g) * 2 - 1
    audio = torch.randn(1, 5, 8, generator=g)
    x_T = torch.randn(1, 3, 16, 16, generator=g)

    def denoise(x, t):
        return net(x, t, cond, motion, audio)

    with torch.no_grad():
        out = sample_frame(denoise, GaussianDiffusion.cosine(1000), x_T, SamplerConfig(method, 10), g)
    # a random network's x0 predictions saturate at the [-1, 1] clamp (official behaviour) for DDIM, so its slice
    # is mostly signs; the sum over the frame pins the rest
    got = torch.cat([out[0, 0, 0, :8], out.sum().reshape(1)])
    if EXPECTED[method] is None:
        pytest.fail(f"{method}: {got.tolist()}")
    assert torch.allclose(got, torch.tensor(EXPECTED[method]), atol=1e-3)


@pytest.mark.parametrize("method", ["ddim", "ancestral"])
def test_x0_and_eps_parameterisations_agree_on_an_oracle(method: str) -> None:
    # a denoiser that knows the clean frame: as x0 it returns it, as eps the noise that x_t implies; both must give
    # the same chain, and DDIM (eta 0) lands exactly on the clean frame
    x0 = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 1.6 - 0.8
    outs = {}
    for prediction in ("x0", "eps"):
        d = GaussianDiffusion.cosine(1000, prediction)
        chain = d.respaced(10)
        assert chain.prediction == prediction
        pos = {int(t): i for i, t in enumerate(chain.timesteps)}

        def denoise(x_t, t, d=chain, pos=pos, prediction=prediction):
            idx = torch.tensor([pos[int(v)] for v in t])
            pred = x0 if prediction == "x0" else d.eps_from_x0(x_t, idx, x0)
            return torch.cat([pred, torch.zeros_like(pred)], dim=1)

        g = torch.Generator().manual_seed(0)
        x_T = torch.randn(2, 3, 8, 8, generator=g)
        outs[prediction] = sample_frame(denoise, d, x_T, SamplerConfig(method, 10), g)
    torch.testing.assert_close(outs["x0"], outs["eps"], atol=1e-4, rtol=0)
    if method == "ddim":
        torch.testing.assert_close(outs["x0"], x0, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="prediction"):
        GaussianDiffusion.cosine(10, "v")


def test_x0_prediction_trains_towards_the_clean_frame() -> None:
    for residual in (False, True):
        m = _tiny_module(prediction="x0", identity_residual=residual)
        ds = m.train_dataset(_clips(1), seed=0, fixed=True)
        batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
        out = m.losses(batch)
        # zero-initialised output conv: the x0 prediction is 0 (or the identity frame), whatever the noise
        start = batch["identity"] if residual else torch.zeros_like(batch["x0"])
        assert out["simple"].item() == pytest.approx((batch["x0"] - start).pow(2).mean().item(), rel=1e-5)


def test_audio_window_edges() -> None:
    assert audio_window_ids(0, 10, 2) == [0, 0, 0, 1, 2]
    assert audio_window_ids(9, 10, 2) == [7, 8, 9, 9, 9]
    assert audio_window_ids(4, 10, 0) == [4]


# ------------------------------------------------------------------------------------------- module


def _clips(n: int = 2):
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(SyntheticConfig(seed=3, n_speakers=4, n_clips=n, size=64, min_seconds=1.0, max_seconds=1.0))
    return [render_clip(spec, i) for i in range(n)]


def _tiny_module(**kw) -> DiffusedHeadsModule:
    torch.manual_seed(0)
    cfg = DiffusedHeadsConfig.preset(
        "tiny", image_size=16, model_channels=16, channel_mult=(1, 2), sample_steps=2, **kw
    )
    return DiffusedHeadsModule(cfg)


def test_windows_motion_padding_and_mouth() -> None:
    clips = _clips(1)
    ds = DiffusedHeadsWindows(clips, image_size=16, identity_frame="first", fixed=True)
    item = ds[0]
    assert item["x0"].shape == (3, 16, 16) and item["motion"].shape == (2, 3, 16, 16)
    assert item["audio_features"].shape == (5, 80, 16) and item["mouth"].shape == (20, 2)
    assert -1.0 <= item["x0"].min() and item["x0"].max() <= 1.0
    # mouth landmarks rescaled from 64 px to 16 px
    assert item["mouth"].max() < 16
    # motion frames before the clip start are the identity frame
    for i in range(len(ds)):
        it = ds[i]
        gt = next(
            j
            for j in range(len(ds.frames[0]))
            if torch.equal(it["x0"], torch.as_tensor(ds.frames[0][j]).movedim(-1, 0).float().div(127.5).sub(1))
        )
        if gt == 1:
            assert torch.equal(it["motion"][0], it["identity"])
            break


def test_training_step_updates_unet_and_audio_encoder() -> None:
    m = _tiny_module()
    ds = m.train_dataset(_clips(1), seed=0, fixed=True)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    m.log = lambda *a, **k: None
    opt = m.configure_optimizers()
    for _ in range(3):  # zero-initialised output convs (official): gradients reach the encoder from step 3
        opt["optimizer"].zero_grad()
        loss = m.training_step(batch, 0)
        assert torch.isfinite(loss)
        loss.backward()
        assert m.net.out[2].weight.grad.abs().sum() > 0
        opt["optimizer"].step()
    assert m.audio_encoder.proj.weight.grad.abs().sum() > 0
    assert isinstance(opt["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)


def test_random_identity_and_target_are_different_frames() -> None:
    clip = _clips(1)[0]
    video = clip.video.copy()
    video[:, 0, 0, 0] = np.arange(len(video))  # frame i marks itself in its first pixel
    clip = dataclasses.replace(clip, video=video)
    ds = DiffusedHeadsWindows([clip], image_size=64, identity_frame="random", fixed=True)
    pairs = {
        (int(ds[i]["x0"][0, 0, 0].add(1).mul(127.5).round()), int(ds[i]["identity"][0, 0, 0].add(1).mul(127.5).round()))
        for i in range(200)
    }
    assert all(gt != ident for gt, ident in pairs)  # official np.random.choice(n, 2, replace=False)
    assert len({gt for gt, _ in pairs}) == len(video) and len({i for _, i in pairs}) == len(video)


def test_sda_front_end_is_frozen_and_feeds_precomputed_embeddings(sda_encoder_file: str) -> None:
    from models.common.audio_frontends import audio_feature_extractor

    m = _tiny_module(audio_frontend="sda", audio_frontend_weights=sda_encoder_file, audio_dim=256)
    assert m.audio_encoder is None and m.audio_frontend.name == "sda"
    assert not any(k.startswith("audio_encoder.") for k in m.state_dict())  # not saved with the model
    opt = m.configure_optimizers()["optimizer"]
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(p.numel() for p in m.net.parameters())
    clip = _clips(1)[0]
    ds = m.train_dataset([clip], seed=0, fixed=True)
    emb = audio_feature_extractor("sda", sda_encoder_file)(clip.audio)
    assert emb.shape == (clip.num_frames, 256)
    item = ds[3]
    assert item["audio_features"].shape == (5, 256)
    rows = [int(r) for r in item["audio_features"][:, 3]]  # the fake encoder's row k carries k
    assert rows == sorted(rows) and torch.equal(item["audio_features"], torch.from_numpy(emb[rows]))
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    m.log = lambda *a, **k: None
    loss = m.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    out = m.eval().generate(clip.video[None, 0], clip.audio[None, :1920], seed=0)
    assert out.shape == (1, 3, 64, 64, 3)


@pytest.mark.parametrize("grayscale", [True, False])
def test_grayscale_motion_is_a_plain_param_both_ways(grayscale: bool) -> None:
    m = _tiny_module(grayscale_motion=grayscale)
    c = 1 if grayscale else 3
    assert m.net.input_blocks[0][0].weight.shape[1] == 3 + 2 * c + 3
    assert m.motion_input(torch.rand(2, 2, 3, 16, 16)).shape == (2, 2 * c, 16, 16)
    ds = m.train_dataset(_clips(1), seed=0, fixed=True)
    m.log = lambda *a, **k: None
    assert torch.isfinite(m.training_step(torch.utils.data.default_collate([ds[i] for i in range(2)]), 0))


def test_lr_decays_spread_over_the_trainers_max_steps() -> None:
    m = _tiny_module(lr_step_every=0, lr_decays=18)  # the paper's schedule on a small network
    with pytest.raises(ValueError, match="max_steps"):
        m.lr_step_size()  # no trainer: nothing to spread the decays over
    m.trainer = SimpleNamespace(max_steps=1800)
    assert m.lr_step_size() == 100 and m.lr_step_size(500_000) == 27_777  # 500k // 27,777 = 18 decays
    sched = m.configure_optimizers()["lr_scheduler"]["scheduler"]
    opt = sched.optimizer
    lrs = []
    for _ in range(1800):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert len(set(lrs)) == 19 and lrs[-1] == pytest.approx(m.cfg.lr * 0.8**18)  # 18 decays, as officially
    m.trainer = SimpleNamespace(max_steps=-1, estimated_stepping_batches=900)  # an epoch-bounded run
    assert m.lr_step_size() == 50
    assert _tiny_module().lr_step_size() == 300  # tiny: a fixed period
    with pytest.raises(ValueError, match="lr_decays"):
        _tiny_module(lr_step_every=0, lr_decays=None)


def test_generate_contract_and_determinism() -> None:
    m = _tiny_module().eval()
    with torch.no_grad():  # untrained, the tiny preset's identity-residual model returns the identity frame
        for p in m.net.parameters():
            p.add_(torch.randn(p.shape) * 0.02)
    clip = _clips(1)[0]
    ident, audio = clip.video[None, 0], clip.audio[None, :3200]  # 5 frames
    a = m.generate(ident, audio, seed=1)
    assert a.shape == (1, 5, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, m.generate(ident, audio, seed=1))
    assert not np.array_equal(a, m.generate(ident, audio, seed=2))
    ext = np.zeros((1, 5, m.cfg.audio_dim), np.float32)
    assert m.generate(ident, audio, seed=1, audio_emb=ext).shape == a.shape
    with pytest.raises(ValueError, match="audio_emb"):
        m.generate(ident, audio, audio_emb=ext[:, :3])
    with pytest.raises(ValueError, match="uint8"):
        m.generate(ident.astype(np.float32), audio)


def test_batched_generation_equals_per_clip_with_offset_seeds() -> None:
    m = _tiny_module(prediction="x0", sampler="ancestral").eval()
    with torch.no_grad():
        for p in m.net.parameters():
            p.add_(torch.randn(p.shape) * 0.02)
    clips = _clips(2)
    ident = np.stack([c.video[0] for c in clips])
    audio = np.stack([c.audio[:2560] for c in clips])  # 4 frames each
    both = m.generate(ident, audio, seed=5)
    for j in range(2):
        alone = m.generate(ident[j : j + 1], audio[j : j + 1], seed=5 + j)[0]
        assert np.abs(both[j].astype(int) - alone).max() <= 2  # batched convolutions round differently


def test_identity_residual_untrained_model_returns_the_identity_frame() -> None:
    # zero-initialised output conv: x0 = identity exactly, so DDIM returns it at every frame (then resized back up)
    m = _tiny_module(prediction="x0", identity_residual=True, motion_mask="lower_half").eval()
    clip = _clips(1)[0]
    out = m.generate(clip.video[None, 0], clip.audio[None, :1920], seed=0)[0]
    small = cv2.resize(clip.video[0], (16, 16), interpolation=cv2.INTER_AREA)
    up = torch.nn.functional.interpolate(
        torch.from_numpy(small).permute(2, 0, 1)[None].float(), size=(64, 64), mode="bicubic", align_corners=False
    )
    expected = up[0].permute(1, 2, 0).clamp(0, 255).round().numpy()
    assert out.shape == (3, 64, 64, 3)
    assert np.abs(out.astype(float) - expected[None]).max() <= 1
    with pytest.raises(ValueError, match="identity_residual needs prediction"):
        DiffusedHeadsModule(DiffusedHeadsConfig.preset("tiny", prediction="eps", identity_residual=True))
    with pytest.raises(ValueError, match="motion_mask"):
        DiffusedHeadsModule(DiffusedHeadsConfig.preset("tiny", motion_mask="eyes"))


def test_lower_half_motion_mask_hides_the_mouth_in_training_and_generation() -> None:
    x = torch.rand(2, 1, 8, 8) + 0.5
    masked = mask_lower_half(x)
    assert torch.equal(masked[..., :4, :], x[..., :4, :]) and masked[..., 4:, :].abs().max() == 0
    m = _tiny_module(motion_mask="lower_half")
    motion = m.motion_input(torch.rand(3, 2, 3, 16, 16) + 0.5)  # grayscale: (3, 2, 16, 16)
    assert motion.shape == (3, 2, 16, 16) and motion[..., 8:, :].abs().max() == 0 and motion[..., :8, :].min() > 0
    seen = []

    def unet(x_t, t, cond, motion_frames, audio):
        seen.append(motion_frames.clone())
        return torch.full((x_t.shape[0], 6, *x_t.shape[2:]), 0.7)  # x0 = 0.7 everywhere: the mask must show

    autoregressive_sample(
        unet,
        GaussianDiffusion.cosine(1000, "x0"),
        torch.rand(1, 3, 16, 16) + 0.5,
        torch.zeros(1, 3, 4),
        n_motion_frames=2,
        n_audio_motion_embs=1,
        grayscale_motion=True,
        sampler=SamplerConfig("ddim", 2),
        generator=torch.Generator().manual_seed(0),
        motion_mask="lower_half",
    )
    assert len(seen) == 3 * 2 and all(f[..., 8:, :].abs().max() == 0 and f[..., :8, :].min() > 0 for f in seen)


def test_train_dataset_is_the_windows() -> None:
    assert isinstance(_tiny_module().train_dataset(_clips(1), seed=0, fixed=True), DiffusedHeadsWindows)
    ds = DiffusedHeadsWindows(_clips(1), image_size=16)
    assert ds.num_windows == len(ds.frames[0]) == len(ds)


def test_torchscript_backend_matches_eager(tmp_path: Path) -> None:
    m = _tiny_module().eval()
    with torch.no_grad():
        for p in m.net.parameters():
            p.add_(torch.randn(p.shape) * 0.02)
    clip = _clips(1)[0]
    ident, audio = clip.video[None, 0], clip.audio[None, :1920]
    eager = m.generate(ident, audio, seed=0)
    path = tmp_path / "unet_script.pt"
    torch.jit.script(m.net).save(str(path))
    m.use_torchscript(str(path))
    scripted = m.generate(ident, audio, seed=0)
    assert np.abs(eager.astype(int) - scripted).max() <= 1


# ------------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize("experiment", ["dh_m0_rgb", "dh_m3_gray", "dh_no_lip_loss", "dh_lip_identity_landmarks"])
def test_table3_overlays_compose_and_build(experiment: str) -> None:
    from benchmark.config import compose
    from benchmark.train import model_params

    cfg = compose("diffused_heads", "synthetic", "tiny", experiment=experiment)
    params = model_params(cfg, DiffusedHeadsModule)
    if experiment == "dh_m0_rgb":
        assert params.n_audio_motion_embs == 0 and params.grayscale_motion is False
        with torch.device("meta"):
            net = DiffusedHeadsModule(params).net
        assert net.input_blocks[0][0].weight.shape[1] == 3 + 6 + 3
        assert net.audio_embed[0].weight.shape[1] == params.audio_dim
    if experiment == "dh_no_lip_loss":
        assert params.lip_weight == 0.0
    assert cfg.run.name.startswith("diffused_heads-")


def test_paper_preset_is_the_official_config() -> None:
    cfg = DiffusedHeadsConfig.preset("paper")
    # configs/config.yaml of the train branch (docs/diffused_heads.md); the deliberate differences
    # are listed in the module docstring (audio front end mel, target-frame landmarks)
    official = {
        "image_size": 128,
        "model_channels": 256,
        "channel_mult": (1, 2, 3),
        "num_res_blocks": 2,
        "attention_resolutions": (32,),
        "num_heads": 4,
        "num_head_channels": 64,
        "dropout": 0.1,
        "norm_groups": 32,
        "grayscale_motion": True,
        "n_motion_frames": 2,
        "n_audio_motion_embs": 2,
        "audio_dim": 256,
        "n_timesteps": 1000,
        "prediction": "eps",
        "motion_mask": "none",
        "identity_residual": False,
        "vlb_weight": 1e-4,
        "lip_weight": 0.2,
        "lip_margin": 5,
        "identity_frame": "random",
        "lr": 5e-5,
        "lr_gamma": 0.8,
        "lr_decays": 18,
        "lr_step_every": None,
        "ema_decay": None,
        "batch_size": 10,
        "sampler": "ancestral",
        "sample_steps": 100,
        "segment_len": None,
    }
    assert {k: getattr(cfg, k) for k in official} == official
    assert (cfg.audio_frontend, cfg.lip_landmarks) == ("mel", "target")
    with pytest.raises(ValueError, match="unknown keys"):
        DiffusedHeadsConfig.preset("tiny", no_such_key=1)
