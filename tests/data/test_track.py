"""data.faces.track: run_pipeline.py's scene cuts, IoU tracking, interpolation, track dropping and crop."""

from __future__ import annotations

import numpy as np
import pytest

from data.faces.boxes import landmark_boxes
from data.faces.crops import SyncNetCrop
from data.faces.track import (
    TrackSettings,
    box_landmarks,
    crop_track,
    face_tracks,
    interpolate_boxes,
    iou,
    scene_cuts,
    track_shot,
)


def _scene(n: int, colour: tuple[int, int, int], seed: int, size: int = 64) -> np.ndarray:
    """n frames of one shot: a flat background and a small square drifting slowly (small frame differences)."""
    rng = np.random.default_rng(seed)
    video = np.empty((n, size, size, 3), np.uint8)
    video[:] = np.asarray(colour, np.uint8)
    for t in range(n):
        x = 10 + t // 4
        video[t, 20:30, x : x + 10] = 255 - np.asarray(colour, np.uint8)
    noise = rng.integers(-3, 4, video.shape)
    return np.clip(video.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _moving_boxes(n: int, step: float = 1.5) -> list[np.ndarray]:
    return [np.array([[20 + step * t, 10.0, 80 + step * t, 70.0]]) for t in range(n)]


def _no_detector(frames: np.ndarray) -> list[np.ndarray]:
    raise AssertionError("detections are given: the detector must not run")


def test_scene_cut_is_found_at_an_injected_cut():
    video = np.concatenate([_scene(40, (200, 60, 40), 0), _scene(35, (30, 90, 220), 1)])
    assert scene_cuts(video) == [(0, 40), (40, 75)]
    assert scene_cuts(_scene(50, (200, 60, 40), 2)) == [(0, 50)]
    # ContentDetector's minimum scene length: a second cut 10 frames after the first is ignored
    three = np.concatenate([_scene(40, (200, 60, 40), 0), _scene(10, (30, 90, 220), 1), _scene(30, (250, 250, 20), 3)])
    assert scene_cuts(three) == [(0, 40), (40, 80)]
    assert scene_cuts(three, min_scene_len=5) == [(0, 40), (40, 50), (50, 80)]


def test_one_track_through_a_moving_face_split_at_a_cut():
    video = np.concatenate([_scene(40, (200, 60, 40), 0, size=160), _scene(40, (30, 90, 220), 1, size=160)])
    dets = _moving_boxes(80, step=0.5)
    tracks, report = face_tracks(video, _no_detector, detections=dets)
    # the boxes overlap across the cut (IoU > 0.5), yet each scene is tracked on its own
    assert iou(dets[39][0], dets[40][0]) > 0.5
    assert [(t.first, t.last) for t in tracks] == [(0, 39), (40, 79)] == report.tracks
    assert report.frames_with_face == 80 and not report.dropped
    assert all(t.crops.shape == (40, 224, 224, 3) and t.crops.dtype == np.uint8 for t in tracks)

    one, _ = face_tracks(video[:40], _no_detector, detections=dets[:40])
    assert len(one) == 1 and one[0].detections == 40
    np.testing.assert_allclose(one[0].boxes, np.concatenate(dets[:40]))


def test_iou_threshold_and_a_second_face_make_a_second_track():
    settings = TrackSettings()
    dets = [np.array([[10.0, 10, 60, 60], [100.0, 10, 150, 60]]) for _ in range(30)]
    kept, dropped = track_shot(dets, settings)
    assert len(kept) == 2 and not dropped
    assert [k[2] for k in kept] == [30, 30]
    # a jump to a box overlapping by IoU <= 0.5 starts a new track
    jump = [np.array([[10.0, 10, 60, 60]])] * 10 + [np.array([[35.0, 10, 85, 60]])] * 10
    assert iou(jump[0][0], jump[-1][0]) <= 0.5
    kept, _ = track_shot(jump, settings)
    assert [(int(f[0]), int(f[-1])) for f, _, _ in kept] == [(0, 9), (10, 19)]


def test_gaps_are_interpolated_and_long_gaps_end_a_track():
    dets = _moving_boxes(40)
    for t in range(10, 16):
        dets[t] = np.zeros((0, 4))
    kept, _ = track_shot(dets, TrackSettings())
    assert len(kept) == 1
    frames, boxes, n_det = kept[0]
    assert frames.tolist() == list(range(40)) and n_det == 34
    np.testing.assert_allclose(boxes, np.concatenate(_moving_boxes(40)))  # linear motion: exact
    f, b = interpolate_boxes(np.array([2, 6]), np.array([[0.0, 0, 10, 10], [4, 8, 14, 18]]))
    assert f.tolist() == [2, 3, 4, 5, 6] and b[2].tolist() == [2.0, 4.0, 12.0, 14.0]

    gap = [d if not 5 <= t < 5 + 26 else np.zeros((0, 4)) for t, d in enumerate(_moving_boxes(40, step=0.0))]
    kept, _ = track_shot(gap, TrackSettings())  # frames 4 and 31 are 27 apart > num_failed_det 25
    assert [(int(f[0]), int(f[-1])) for f, _, _ in kept] == [(0, 4), (31, 39)]
    kept, _ = track_shot(gap, TrackSettings(num_failed_det=27))
    assert len(kept) == 1


def test_min_track_drops_short_tracks_only_when_set():
    video = np.zeros((30, 96, 160, 3), np.uint8)
    dets = _moving_boxes(30, step=0.0)
    tracks, report = face_tracks(video, _no_detector, detections=dets)
    assert len(tracks) == 1 and not report.dropped  # default: every track kept
    tracks, report = face_tracks(video, _no_detector, TrackSettings(min_track=29), detections=dets)
    assert len(tracks) == 1  # 30 detections > 29
    # the official default: a 30-frame scene is not even tracked
    tracks, report = face_tracks(video, _no_detector, TrackSettings(min_track=100), detections=dets)
    assert not tracks and report.dropped[0]["reason"] == "scene shorter than min_track"
    kept, dropped = track_shot(dets, TrackSettings(min_track=30))
    assert not kept and dropped[0]["detections"] == 30 and "min_track 30" in dropped[0]["reason"]


def test_small_faces_are_dropped_with_the_reason():
    dets = [np.array([[10.0, 10, 40, 40]])] * 20  # 30 px
    kept, dropped = track_shot(dets, TrackSettings(min_face_size=40))
    assert not kept and "min_face_size" in dropped[0]["reason"]
    kept, _ = track_shot(dets, TrackSettings(min_face_size=29))
    assert len(kept) == 1


def test_box_landmarks_give_back_the_box():
    rng = np.random.default_rng(0)
    x1, y1 = rng.uniform(-20, 200, 50), rng.uniform(-20, 200, 50)
    boxes = np.stack([x1, y1, x1 + rng.uniform(5, 150, 50), y1 + rng.uniform(5, 150, 50)], 1)
    expected = np.stack([np.floor(boxes[:, 0]), np.floor(boxes[:, 1]), np.ceil(boxes[:, 2]), np.ceil(boxes[:, 3])], 1)
    assert np.array_equal(landmark_boxes(box_landmarks(boxes)), expected.astype(np.int64))
    ints = np.round(boxes)
    assert np.array_equal(landmark_boxes(box_landmarks(ints)), ints.astype(np.int64))


def test_crop_geometry_equals_syncnet_crop_on_the_same_boxes():
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(SyntheticConfig(seed=1, n_clips=2, size=96, min_seconds=1.0, max_seconds=1.0))
    clip = render_clip(spec, 0)
    assert clip.landmarks is not None
    crop = SyncNetCrop()
    expected = np.stack([crop.apply(f, m) for f, m in zip(clip.video, crop.transforms(clip.landmarks))])
    got = crop_track(clip.video, 0, landmark_boxes(clip.landmarks).astype(np.float64))
    assert got.shape == (len(clip.video), 224, 224, 3) and np.array_equal(got, expected)
    # a track starting later crops its own frames; crop_scale reaches the geometry
    later = crop_track(clip.video, 5, landmark_boxes(clip.landmarks[5:]).astype(np.float64))
    assert np.array_equal(later[0], crop.apply(clip.video[5], crop.transforms(clip.landmarks[5:])[0]))
    wider = crop_track(clip.video, 0, landmark_boxes(clip.landmarks).astype(np.float64), crop_scale=0.8)
    assert not np.array_equal(wider, got)
    assert SyncNetCrop.crop_scale == 0.4  # the shared crop is not changed by a track's setting


def test_dlib_finds_the_synthetic_faces():
    pytest.importorskip("dlib")
    from data.faces.track import dlib_detector
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(SyntheticConfig(seed=5, n_clips=3, size=96, min_seconds=1.0, max_seconds=1.0))
    clip = render_clip(spec, 1)
    tracks, report = face_tracks(clip.video, dlib_detector(), detector_name="dlib")
    assert report.frames_with_face == len(clip.video) and len(tracks) == 1
    assert tracks[0].num_frames == len(clip.video)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="min_track"):
        TrackSettings(min_track=-1)
    with pytest.raises(ValueError, match="iou_threshold"):
        TrackSettings(iou_threshold=1.0)
    with pytest.raises(ValueError, match="frames of boxes"):
        face_tracks(np.zeros((5, 32, 32, 3), np.uint8), _no_detector, detections=[np.zeros((0, 4))] * 4)


def test_landmark_detector_boxes_and_faceless_frames():
    from data.faces.track import landmark_detector

    rng = np.random.default_rng(1)
    lm = rng.uniform(20, 80, (6, 68, 2))
    lm[2] = np.nan
    dets = landmark_detector(lambda frames: lm)(np.zeros((6, 96, 96, 3), np.uint8))
    assert [len(d) for d in dets] == [1, 1, 0, 1, 1, 1]
    assert np.array_equal(dets[0][0], landmark_boxes(lm[:1])[0].astype(np.float64))


def test_s3fd_network_layout_priors_and_nms():
    import torch

    from data.faces.s3fd import S3FDDetector, S3FDNet, decode, nms, priors

    torch.manual_seed(0)
    net = S3FDNet()
    sd = net.state_dict()
    # the official sfd_face.pth keys: VGG convolutions at their ModuleList indices, the max-out first conf head
    assert len(sd) == 65 and {"vgg.0.weight", "vgg.33.bias", "L2Norm3_3.weight", "extras.3.weight"} <= set(sd)
    assert sd["conf.0.weight"].shape == (4, 256, 3, 3) and sd["loc.3.weight"].shape == (4, 1024, 3, 3)
    assert float(sd["L2Norm4_3.weight"][0]) == 8.0
    loc, prob, shapes = net(torch.zeros(1, 3, 64, 64))
    assert shapes[:3] == [(16, 16), (8, 8), (4, 4)] and loc.shape[1] == prob.shape[1] == sum(h * w for h, w in shapes)
    p = priors(64, 64, shapes)
    assert torch.allclose(p[0], torch.tensor([0.5 / 16, 0.5 / 16, 0.25, 0.25]))
    assert torch.allclose(
        decode(torch.zeros(1, 4), p[:1]), torch.tensor([[0.5 / 16 - 0.125, 0.5 / 16 - 0.125, 0.15625, 0.15625]])
    )
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float64)
    assert nms(boxes, np.array([0.5, 0.9, 0.8]), 0.3).tolist() == [1, 2]
    detector = S3FDDetector(sd, conf_th=0.0)
    found = detector(np.zeros((2, 128, 128, 3), np.uint8))
    assert len(found) == 2 and all(f.ndim == 2 and f.shape[1] == 4 for f in found)
