"""VASA-style model: face latent warps, diffusion schedule and CFG, windows, generate() contract, training, gaze."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from data.clip import Clip
from models.vasa.face_latent import POSE_DIM, FaceLatentNet, rotation_matrix
from models.vasa.module import VasaConfig, VasaFaceConfig, VasaFaceModule, VasaModule
from models.vasa.motion_dit import AUDIO_FEATURES, CONDITIONS, MotionConditions, MotionDiT, mel_frame_features
from models.vasa.process import CosineSchedule, guided_x0, iter_motion_windows, sample_window
from models.vasa.windows import (
    FacePairWindows,
    MotionWindows,
    gaze_distance_from_landmarks,
    normalise_landmarks,
)

torch.set_num_threads(1)
TINY_FACE = {"resolution": 32, "channels": 8, "max_channels": 16, "vol_channels": 4, "vol_depth": 2}
TINY_MOTION = {"window": 8, "context": 3, "d_model": 32, "layers": 1, "heads": 2, "sample_steps": 4}


def synthetic_clips(n: int, seed: int = 2, seconds: tuple[float, float] = (1.0, 1.3)) -> list[Clip]:
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    cfg = SyntheticConfig(n_clips=n, n_speakers=4, size=64, min_seconds=seconds[0], max_seconds=seconds[1], seed=seed)
    spec = make_corpus_spec(cfg)
    return [render_clip(spec, i) for i in range(n)]


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    return synthetic_clips(4)


def small_face(**kw) -> VasaFaceModule:
    torch.manual_seed(0)
    return VasaFaceModule(VasaFaceConfig.preset("tiny", **{**TINY_FACE, **kw}))


def small_vasa(face: VasaFaceModule | None = None, **kw) -> VasaModule:
    torch.manual_seed(0)
    face = face or small_face()
    return VasaModule(VasaConfig.preset("tiny", **{**TINY_MOTION, **kw}), face=face)


def conditions(b: int, w: int, k: int, m: int, a: int, e: int = 8, keep: bool = True) -> MotionConditions:
    g = torch.Generator().manual_seed(1)
    flag = torch.full((b,), keep)
    return MotionConditions(
        audio=torch.randn(b, w, a, generator=g),
        audio_valid=torch.ones(b, w, dtype=torch.bool),
        prev_motion=torch.randn(b, k, m, generator=g),
        prev_audio=torch.randn(b, k, a, generator=g),
        gaze=torch.randn(b, 2, generator=g),
        distance=torch.randn(b, 1, generator=g),
        emotion=torch.randn(b, e, generator=g),
        keep={c: flag.clone() for c in CONDITIONS},
    )


# ----- paper presets ----------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]

# what VASA-1 states (no official code; sections 3.2 and 4; docs/official_recipes.md)
VASA1_MOTION = {
    "layers": 8,  # an 8-layer transformer encoder
    "d_model": 512,  # embedding dimension 512
    "heads": 8,  # 8 heads
    "cond_dropout": 0.1,  # each condition dropped with probability 0.1 ...
    "prev_dropout": 0.5,  # ... except the previous window's motion and audio, 0.5
    "sample_steps": 50,  # 50 sampling steps
    "cfg_audio": 0.5,  # lambda_A
    "cfg_gaze": 1.0,  # lambda_g
    "cfg_distance": 0.0,  # only lambda_A and lambda_g are used
    "cfg_emotion": 0.0,
    "cfg_prev": 0.0,
    "distance": None,  # the mean head distance of the training videos
    "emotion": None,  # an empty emotion offset
}
VASA1_DIT_PARAMS = 29e6  # about 29M parameters of the diffusion transformer


def test_paper_presets_follow_vasa1() -> None:
    motion, face = VasaConfig.preset("paper"), VasaFaceConfig.preset("paper")
    assert motion == VasaConfig() and face == VasaFaceConfig() and motion.face_preset == "paper"
    assert {key: getattr(motion, key) for key in VASA1_MOTION} == VASA1_MOTION
    _, audio_dim = AUDIO_FEATURES[motion.audio_features]
    dit = MotionDiT(
        POSE_DIM + face.dyn_dim,
        audio_dim,
        window=motion.window,
        context=motion.context,
        d_model=motion.d_model,
        layers=motion.layers,
        heads=motion.heads,
        emotion_dim=motion.emotion_dim,
    )
    size = sum(p.numel() for p in dit.parameters())
    assert abs(size - VASA1_DIT_PARAMS) / VASA1_DIT_PARAMS < 0.1, size  # 27.6M with mel input
    # not published by VASA-1: our values, as the module docstring states them
    assert (motion.window, motion.context, motion.diffusion_steps) == (50, 10, 1000)
    budgets = {}
    for name in ("vasa_face", "vasa"):
        trainer = OmegaConf.load(REPO / "configs" / "models" / f"{name}.yaml").presets.paper.trainer
        budgets[name] = trainer.max_steps
    assert budgets == {"vasa_face": 500_000, "vasa": 300_000}


# ----- face latent model ------------------------------------------------------------------------------------


def test_rotation_matrix_known_answers() -> None:
    zero = torch.zeros(1)
    quarter = torch.full((1,), math.pi / 2)
    r = rotation_matrix(zero, zero, quarter)[0]  # roll 90 deg: x -> y
    assert torch.allclose(r @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    r = rotation_matrix(quarter, zero, zero)[0]  # yaw 90 deg: z -> x
    assert torch.allclose(r @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    angles = torch.randn(3, 5)
    rs = rotation_matrix(*angles)
    assert torch.allclose(rs @ rs.transpose(1, 2), torch.eye(3).expand(5, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rs), torch.ones(5), atol=1e-5)


def test_rigid_warps_invert_each_other() -> None:
    """Canonicalising a volume under a pose and posing it again with the same pose gives it back (zero flows)."""
    torch.manual_seed(0)
    net = FaceLatentNet(resolution=64, channels=8, max_channels=16, vol_channels=2, vol_depth=8)
    d, h, w = 8, 16, 16
    axes = (torch.linspace(-1, 1, d), torch.linspace(-1, 1, h), torch.linspace(-1, 1, w))
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    vol = torch.stack([torch.sin(1.5 * x + 0.5 * y), torch.cos(1.2 * y - 0.7 * z)])[None]  # smooth
    pose = torch.tensor([[0.05, -0.04, 0.1, 0.05, -0.03, 0.02]])
    z_id, dyn = torch.zeros(1, net.id_dim), torch.zeros(1, net.dyn_dim)
    back = net.pose_volume(net.canonicalize(vol, z_id, pose, dyn), z_id, pose, dyn)
    inner = (slice(None), slice(None), slice(2, -2), slice(3, -3), slice(3, -3))
    assert (back - vol)[inner].abs().max() < 0.08
    # and the warp does something: the canonical volume differs from the posed one
    assert (net.canonicalize(vol, z_id, pose, dyn) - vol)[inner].abs().max() > 0.05


def test_face_model_shapes_and_pose_bounds() -> None:
    net = small_face().net
    img = torch.rand(3, 3, 32, 32) * 2 - 1
    lat = net.encode(img)
    assert lat.volume.shape == (3, 4, 2, 16, 16)  # tiny preset: vol_stride 2
    assert lat.motion().shape == (3, 6 + net.dyn_dim)
    assert net.decode(lat, lat.pose, lat.dyn).shape == (3, 3, 32, 32)
    # the image path: at initialisation (identity pose, zero flows) the composed warp is the identity, so with
    # the blending mask forced to the warped image the decoder returns the source image
    with torch.no_grad():
        net.decoder.out.bias[3] = 50.0
        assert torch.allclose(net.decode(lat, lat.pose, lat.dyn), img, atol=1e-4)
        moved = lat.pose.clone()
        moved[:, 3] += 4 * 2 / 31  # tx of 4 pixels (align_corners: 2 / (R - 1) per pixel): the face moves right
        out = net.decode(lat, moved, lat.dyn)
        assert torch.allclose(out[..., 10:], img[..., 6:-4], atol=1e-4)  # away from the clamped border
    big = net._bound_pose(torch.full((2, 6), 1e3))
    assert torch.all(big[:, :3] <= net.max_angle + 1e-6) and torch.all(big[:, 3:5] <= 0.5)
    assert net.landmarks(lat.z_id, lat.pose, lat.dyn).shape == (3, 68, 2)


def test_landmark_guide_maps_known_answers() -> None:
    from models.vasa.face_latent import landmark_guide_maps

    lm = torch.zeros(2, 68, 2)
    lm[1, [61, 62, 63], 1] = -0.2  # upper inner lip above the lower one: an open mouth centred at y = -0.1
    maps = landmark_guide_maps(lm, 21)  # 0.1 per cell
    assert maps.shape == (2, 3, 21, 21) and float(maps[0].abs().max()) == 0.0  # all closed
    mouth = maps[1, 0]
    assert float(maps[1, 1:].abs().max()) == 0.0
    peak = divmod(int(mouth.argmax()), 21)
    assert peak == (9, 10)  # row of y = -0.1, column of x = 0
    assert float(mouth.max()) == pytest.approx(3 * 2.0, rel=1e-4)  # three pairs, each 2 cells apart


def test_face_training_reduces_losses(clips) -> None:
    """A few Adam steps on one batch lower reconstruction and landmark losses (the losses are wired to the nets)."""
    module = small_face(lr=3e-3, w_cross_id=0.1, w_embed=0.1)  # every paper loss on
    ds = FacePairWindows(clips, resolution=32, fixed=True, seed=0)
    batch = torch.utils.data.default_collate([ds[i] for i in range(6)])
    opt = module.configure_optimizers()
    first = {k: float(v) for k, v in module.losses(batch).items()}
    for _ in range(25):
        opt.zero_grad()
        module.losses(batch)["loss"].backward()
        opt.step()
    last = {k: float(v) for k, v in module.losses(batch).items()}
    assert last["recon"] < 0.8 * first["recon"]
    assert last["landmarks"] < 0.5 * first["landmarks"]
    assert all(np.isfinite(v) for v in last.values())


# ----- windows and labels --------------------------------------------------------------------------------------


def test_gaze_and_distance_labels_known_answers() -> None:
    lm = np.zeros((68, 2), np.float32)
    lm[36:48] = [0.2, -0.1]  # eyes right of and above the frame centre
    lm[36], lm[45] = [0.0, -0.1], [0.4, -0.1]  # outer corners 0.4 apart = 0.2 frame widths
    lm[36:48, 0] += 0.2 - lm[36:48, 0].mean()
    gaze, dist = gaze_distance_from_landmarks(lm)
    assert gaze[0] == pytest.approx(math.atan(0.1), abs=1e-6) and gaze[1] == pytest.approx(math.atan(-0.05), abs=1e-6)
    assert dist == pytest.approx(1 / 0.2, rel=1e-6)
    px = np.array([[0.0, 0.0], [63.0, 63.0], [31.5, 31.5]])
    assert np.allclose(normalise_landmarks(px, 64, 64), [[-1, -1], [1, 1], [0, 0]])


def test_window_datasets(clips) -> None:
    assert isinstance(small_face().train_dataset(clips, seed=0, fixed=True), FacePairWindows)
    faces = FacePairWindows(clips, resolution=32, fixed=True, seed=0)
    item = faces[3]
    assert item["src"].shape == (3, 32, 32) and item["src"].min() >= -1 and item["src"].max() <= 1
    assert item["has_lm"] and item["other_speaker"] != item["speaker"]
    assert torch.equal(faces[3]["drv"], item["drv"])  # fixed mode: a function of the index
    vasa = small_vasa()
    motion = vasa.train_dataset(clips, seed=0, fixed=True)
    assert isinstance(motion, MotionWindows)
    it = motion[5]
    assert it["motion"].shape == (8, 6 + vasa.face.dyn_dim) and it["audio"].shape == (8, 320)
    assert it["prev_motion"].shape == (3, 6 + vasa.face.dyn_dim)
    stats = motion.stats()
    assert stats["motion_std"].shape == (6 + vasa.face.dyn_dim,) and np.all(stats["motion_std"] > 0)
    # gaze labels follow the truth landmarks: the eyes sit above the frame centre (eye line at 42 %)
    assert stats["gaze_mean"][1] < 0


def test_mel_frame_features_align_with_frames(clips) -> None:
    c = clips[0]
    f = mel_frame_features(c.audio)
    assert f.shape == (c.num_frames, 320) and np.abs(f).max() <= 1.0
    silent = mel_frame_features(np.zeros_like(c.audio))
    assert np.allclose(silent, -1.0)  # the floor of Wav2Lip's normalised mel, scaled


# ----- diffusion and CFG ---------------------------------------------------------------------------------------


def test_schedule_and_ddim_with_an_oracle_recover_x0() -> None:
    sched = CosineSchedule(1000)
    ab = sched.alpha_bar
    assert torch.all(ab[1:] < ab[:-1]) and 0.99 < float(ab[0]) <= 1.0 and float(ab[-1]) < 1e-3
    ts = sched.ddim_timesteps(50)
    assert len(ts) == 50 and ts[0] == 999 and ts[-1] == 0
    x0 = torch.randn(2, 8, 5)
    x = torch.randn(2, 8, 5)
    for i, t in enumerate(ts):  # a network that always predicts the true x0 lands exactly on it
        x = sched.ddim_step(x, x0, t, ts[i + 1] if i + 1 < len(ts) else None)
    assert torch.allclose(x, x0)


class _Recorder(torch.nn.Module):
    """A fake H: output = a different constant per set of kept conditions, so CFG's algebra can be checked."""

    window, context, motion_dim, emotion_dim = 4, 2, 3, 8

    def forward(self, x_t, t, cond):
        code = sum((2**i) * cond.keep[c].float() for i, c in enumerate(CONDITIONS))
        return code[:, None, None].expand_as(x_t).clone()


def test_multi_condition_cfg_formula() -> None:
    net = _Recorder()
    cond = conditions(2, 4, 2, 3, 5)
    x = torch.zeros(2, 4, 3)
    out = guided_x0(net, x, torch.zeros(2, dtype=torch.long), cond, {"audio": 0.5, "gaze": 1.0, "emotion": 0.0})
    full = 31.0
    no_audio, no_gaze = full - 1, full - 4  # bit 0 = audio, bit 2 = gaze
    expect = (1 + 1.5) * full - 0.5 * no_audio - 1.0 * no_gaze
    assert torch.allclose(out, torch.full_like(out, expect))
    with pytest.raises(ValueError, match="unknown conditions"):
        guided_x0(net, x, torch.zeros(2, dtype=torch.long), cond, {"lips": 1.0})


def test_dropped_conditions_are_ignored() -> None:
    torch.manual_seed(0)
    net = MotionDiT(5, 7, window=6, context=2, d_model=16, layers=1, heads=2, dropout=0.0).eval()
    x, t = torch.randn(2, 6, 5), torch.tensor([10, 500])
    a, b = conditions(2, 6, 2, 5, 7, keep=False), conditions(2, 6, 2, 5, 7, keep=False)
    b.audio, b.gaze, b.prev_motion = b.audio + 3.0, b.gaze - 2.0, b.prev_motion * 4  # dropped: no effect
    assert torch.allclose(net(x, t, a), net(x, t, b), atol=1e-6)
    a.keep["audio"][:] = True
    b.keep["audio"][:] = True
    assert not torch.allclose(net(x, t, a), net(x, t, b), atol=1e-4)
    b.audio = a.audio.clone()
    b.audio_valid[:, 3:] = False  # a truncated tail differs from real audio there
    b.audio[:, 3:] += 5.0
    a.audio_valid[:, 3:] = False
    assert torch.allclose(net(x, t, a), net(x, t, b), atol=1e-6)
    with pytest.raises(ValueError, match="expected windows of 6 frames"):
        net(torch.randn(2, 5, 5), t, conditions(2, 5, 2, 5, 7))


def test_sampling_is_seeded_and_windows_chain() -> None:
    torch.manual_seed(0)
    net = MotionDiT(5, 7, window=6, context=2, d_model=16, layers=1, heads=2, dropout=0.0).eval()
    sched = CosineSchedule(100)
    cond = conditions(1, 6, 2, 5, 7)
    one = sample_window(net, sched, cond, 5, {"audio": 0.5}, torch.Generator().manual_seed(3))
    two = sample_window(net, sched, cond, 5, {"audio": 0.5}, torch.Generator().manual_seed(3))
    assert torch.equal(one, two)
    audio = torch.randn(2, 15, 7)
    wins = list(
        iter_motion_windows(
            net,
            sched,
            audio,
            torch.zeros(2, 2),
            torch.zeros(2, 1),
            None,
            steps=3,
            scales={"audio": 0.5},
            generator=torch.Generator().manual_seed(0),
        )
    )
    assert [w.shape[1] for w in wins] == [6, 6, 3] and all(w.shape[0] == 2 for w in wins)


# ----- pipeline ------------------------------------------------------------------------------------------------


def test_generate_contract_seed_and_streaming(clips) -> None:
    vasa = small_vasa().eval()
    c = clips[0]
    audio = c.audio[None, : 640 * 19 + 300]  # 19 frames and a bit: T = floor(N / 640)
    out = vasa.generate(c.video[None, 0], audio, seed=4)
    assert out.shape == (1, 19, 64, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out, vasa.generate(c.video[None, 0], audio, seed=4))
    assert not np.array_equal(out, vasa.generate(c.video[None, 0], audio, seed=5))
    chunks = list(vasa.stream(c.video[None, 0], audio, seed=4))
    assert [x.shape[1] for x in chunks] == [8, 8, 3]
    # the same windows and motion; decoding in other batch sizes may round a rare pixel the other way
    diff = np.abs(np.concatenate(chunks, axis=1).astype(np.int16) - out)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    two = vasa.generate(np.stack([c.video[0], clips[1].video[0]]), np.repeat(audio, 2, 0), seed=4)
    assert two.shape == (2, 19, 64, 64, 3)
    with pytest.raises(ValueError, match="identity must be uint8"):
        vasa.generate(c.video[None, 0].astype(np.float32), audio)
    with pytest.raises(ValueError, match="shorter than one frame"):
        vasa.generate(c.video[None, 0], audio[:, :100])
    with pytest.raises(ValueError, match="emotion must have 8 values"):
        vasa.generate(c.video[None, 0], audio, emotion=[1.0, 2.0])


def test_motion_model_hears_through_a_frozen_pretrained_front_end(clips, sda_encoder_file, monkeypatch) -> None:
    """`audio_features: sda`: the motion model's audio input is the frozen SDA encoder's 256-d embedding per frame
    (one per 640 samples), in training windows and in generation, and the front end is what results record."""
    from models.common import audio_frontends

    monkeypatch.setattr(audio_frontends, "_SHARED", {})
    monkeypatch.setattr(audio_frontends, "SDA_WEIGHTS", sda_encoder_file)  # the registered name's stand-in
    vasa = small_vasa(audio_features="sda").eval()
    assert vasa.audio_frontend.info()["name"] == "sda" and small_vasa().audio_frontend is None
    windows = MotionWindows(
        clips[:2], face_net=vasa.face, window=vasa.cfg.window, context=vasa.cfg.context, audio_features="sda"
    )
    assert windows.audio[0].shape == (clips[0].num_frames, 256)
    expected = audio_frontends.sda_embed(audio_frontends.shared_frontend("sda").model, torch.from_numpy(clips[0].audio))
    assert np.allclose(windows.audio[0], expected.numpy())
    out = vasa.generate(clips[0].video[None, 0], clips[0].audio[None, : 640 * 10], seed=1)
    assert out.shape == (1, 10, 64, 64, 3)
    with pytest.raises(ValueError, match="unknown audio features 'wav2vec2'"):
        small_vasa(audio_features="wav2vec2")


def test_config_controls_and_checkpoint_round_trip(tmp_path, clips) -> None:
    from benchmark.config import compose
    from benchmark.train import build_untrained

    cfg = compose("vasa", "synthetic", "tiny", ["model.params.gaze=[0.2,0.0]", "model.params.cfg_gaze=2.0"])
    model = build_untrained(cfg)
    assert isinstance(model, VasaModule) and model.cfg.gaze == (0.2, 0.0) and model.cfg.guidance()["gaze"] == 2.0
    assert model.face.resolution == VasaFaceConfig.preset("tiny").resolution
    with pytest.raises(ValueError, match="unknown keys"):
        VasaConfig.preset("tiny", lips=1)
    vasa = small_vasa()
    vasa.set_stats(vasa.train_dataset(clips, seed=0, fixed=False).stats())
    path = tmp_path / "vasa.pt"
    torch.save(vasa.state_dict(), path)
    again = VasaModule(VasaConfig.preset("tiny", **TINY_MOTION), face_cfg=dict(vars(small_face().cfg)))
    again.load_state_dict(torch.load(path, weights_only=True))
    assert bool(again.stats_ready) and torch.equal(again.motion_std, vasa.motion_std)
    c = clips[0]
    assert np.array_equal(
        vasa.eval().generate(c.video[None, 0], c.audio[None, :6400]),
        again.eval().generate(c.video[None, 0], c.audio[None, :6400]),
    )


def test_motion_training_lowers_the_diffusion_loss(clips) -> None:
    vasa = small_vasa(lr=3e-3)
    ds = vasa.train_dataset(clips, seed=0, fixed=True)
    vasa.set_stats(ds.stats())
    batch = torch.utils.data.default_collate([ds[i] for i in range(16)])
    opt = vasa.configure_optimizers()

    def val() -> float:
        torch.manual_seed(0)
        return float(vasa.diffusion_loss(batch, train=False))

    before = val()
    for _ in range(40):
        opt.zero_grad()
        vasa.diffusion_loss(batch).backward()
        opt.step()
    assert val() < 0.7 * before


# ----- gaze control on the synthetic corpus ---------------------------------------------------------------------


def _train_small_pipeline(n_clips: int, face_steps: int, motion_steps: int) -> tuple[VasaModule, MotionWindows]:
    """Both stages trained briefly on synthetic clips (every split), with plain Adam loops."""
    clips = synthetic_clips(n_clips, seed=5, seconds=(1.0, 1.6))
    face = small_face(resolution=32, lr=2e-3, w_landmarks=2.0)
    faces = FacePairWindows(clips, resolution=32, seed=0)
    loader = torch.utils.data.DataLoader(faces, batch_size=16, shuffle=True)
    opt = face.configure_optimizers()
    step = 0
    while step < face_steps:
        for batch in loader:
            opt.zero_grad()
            face.losses(batch)["loss"].backward()
            opt.step()
            step += 1
            if step == face_steps:
                break
    vasa = small_vasa(face, window=8, context=3, d_model=64, layers=2, heads=4, lr=2e-3)
    motion = vasa.train_dataset(clips, seed=0, fixed=False)
    vasa.set_stats(motion.stats())
    loader = torch.utils.data.DataLoader(motion, batch_size=32, shuffle=True)
    opt = vasa.configure_optimizers()
    step = 0
    while step < motion_steps:
        for batch in loader:
            opt.zero_grad()
            vasa.diffusion_loss(batch).backward()
            opt.step()
            step += 1
            if step == motion_steps:
                break
    return vasa.eval(), motion


def _eye_centre_shift(vasa: VasaModule, motion: MotionWindows, axis: int, n_std: float) -> float:
    """Mean eye-centre coordinate (pixels, landmark head) with gaze[axis] = mean + n_std std minus mean - n_std std."""
    clips = synthetic_clips(2, seed=9, seconds=(1.2, 1.2))
    mean, std = vasa.gaze_mean.numpy(), vasa.gaze_std.numpy()
    shifts = []
    for c in clips:
        eyes = []
        for sign in (1.0, -1.0):
            gaze = mean.copy()
            gaze[axis] += sign * n_std * std[axis]
            m = torch.cat(list(vasa.motion_iter(c.audio[None], seed=0, gaze=tuple(gaze))), dim=1)
            lm = vasa.motion_landmarks(c.video[None, 0], m)
            eyes.append(lm[0, :, 36:48, axis].mean())
        shifts.append(eyes[0] - eyes[1])
    return float(np.mean(shifts))


def test_gaze_condition_moves_motion_along_the_data_gaze_direction() -> None:
    """Fast variant (stage 2 only, untrained encoders): raising theta moves the generated motion along the
    direction in which the training windows' motion varies with their gaze label."""
    clips = synthetic_clips(8, seed=5, seconds=(1.0, 1.6))
    vasa = small_vasa(small_face(resolution=32), window=8, context=3, d_model=48, layers=1, heads=4, lr=3e-3)
    ds = vasa.train_dataset(clips, seed=0, fixed=True)
    vasa.set_stats(ds.stats())
    items = torch.utils.data.default_collate([ds[i] for i in range(256)])
    x = vasa._norm("motion", items["motion"]).mean(1)  # window-mean motion [N, M]
    theta = vasa._norm("gaze", items["gaze"])[:, 0]
    direction = ((x - x.mean(0)) * (theta - theta.mean())[:, None]).mean(0)  # covariance with theta
    opt = vasa.configure_optimizers()
    for step in range(60):
        batch = {k: v[(step * 32) % 256 : (step * 32) % 256 + 32] for k, v in items.items()}
        opt.zero_grad()
        vasa.diffusion_loss(batch).backward()
        opt.step()
    vasa.eval()
    mean, std = vasa.gaze_mean.numpy(), vasa.gaze_std.numpy()
    audio = clips[0].audio[None, : 640 * 16]
    moved = []
    for sign in (1.0, -1.0):
        gaze = (float(mean[0] + sign * 2 * std[0]), float(mean[1]))
        m = torch.cat(list(vasa.motion_iter(audio, seed=0, gaze=gaze)), dim=1)
        moved.append(vasa._norm("motion", m)[0].mean(0))
    assert float((moved[0] - moved[1]) @ direction) > 0.0


@pytest.mark.slow
def test_gaze_condition_moves_generated_eyes() -> None:
    """Both gaze angles, longer training: the eyes move in the gaze's direction. Measured (2-core shared CPU, 300 +
    500 steps): theta +-2 std moves the eye centre by 0.15 px where the training data's own spread is 3.1 px, so
    the bound is a share of the data's scale, not a fixed pixel count (same seed: the gaze is the only change)."""
    vasa, motion = _train_small_pipeline(24, face_steps=300, motion_steps=500)
    for axis in (0, 1):
        # +-2 std of the windows' gaze label is, through theta = atan(x / 2) in normalised units, this many
        # pixels of eye-centre displacement in the 64 px test frames
        data_shift = 4 * 2 * math.tan(float(vasa.gaze_std[axis])) * 63 / 2
        shift = _eye_centre_shift(vasa, motion, axis=axis, n_std=2.0)
        print(f"gaze axis {axis}: eye-centre shift {shift:.3f} px, data scale {data_shift:.3f} px")
        assert shift > 0.01 * data_shift > 0, (axis, shift, data_shift)
