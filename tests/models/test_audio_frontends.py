"""Audio front ends: the registry, the official SDA windowing (pinned by hand), the mel encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.common.audio_frontends import (
    SDAEncoder,
    audio_feature_extractor,
    build_audio_frontend,
    check_sda_encoder,
    frame_mel_windows,
    sda_windows,
)


def _audio(n: int) -> np.ndarray:
    # distinct, exactly representable sample values: sample i is (i + 1) / 1024
    return ((np.arange(n) + 1) / 1024.0).astype(np.float32)


@pytest.mark.parametrize("n", [0, 639, 640, 2860, 3200, 5000])
def test_sda_windowing_matches_the_official_cut_by_hand(sda_encoder_file: str, n: int) -> None:
    audio = _audio(n)
    emb = build_audio_frontend("sda", weights=sda_encoder_file).embed(audio)
    frames = n // 640
    assert emb.shape == (frames, 256)
    # the official padded signal: 1,280 zeros, the clip, 1,280 zeros; window k starts at 640 k, 3,200 long
    padded = np.concatenate([np.zeros(1280, np.float32), audio, np.zeros(1280, np.float32)])
    for k in range(frames):
        window = padded[640 * k : 640 * k + 3200]
        assert len(window) == 3200
        assert emb[k, 0].item() == window[0] and emb[k, 1].item() == window[-1]
        assert emb[k, 2].item() == pytest.approx(float(window.astype(np.float64).sum()), rel=1e-5)
        assert emb[k, 3].item() == k  # the hidden state threads through the windows in order, zeros first
        assert emb[k, 4].item() == 3200 and emb[k, 5].item() == 3200  # lengths LongTensor([3200]), (1, 1, 3200)
        np.testing.assert_array_equal(emb[k, 6:206].numpy(), window[::16] * 3.0)


def test_sda_windows_count_and_offsets() -> None:
    audio = torch.from_numpy(_audio(640 * 5 + 17))
    w = sda_windows(audio)
    assert w.shape == (5, 3200)
    assert w[0, 1279].item() == 0.0 and w[0, 1280].item() == audio[0].item()
    assert w[2, 0].item() == audio[0].item() and w[4, 0].item() == audio[1280].item()
    assert sda_windows(torch.zeros(639)).shape == (0, 3200)


def test_sda_front_end_is_frozen_cached_and_batched(sda_encoder_file: str) -> None:
    fe = build_audio_frontend("sda", weights=sda_encoder_file)
    assert fe.trainable is False and fe.dim == 256 and list(fe.parameters()) == []
    info = fe.info()
    assert info["name"] == "sda" and info["path"] == sda_encoder_file and len(info["sha256"]) == 64
    audio = _audio(3000)
    first = fe.frame_features(audio)
    assert fe.frame_features(audio.copy()) is first  # the per-clip cache: same samples, same array
    batch = fe.embed_batch(np.stack([audio, audio[::-1].copy()]))
    assert batch.shape == (2, 4, 256)
    torch.testing.assert_close(batch[0], torch.from_numpy(first))
    assert not torch.equal(batch[0], batch[1])
    # the data side's extractor gives the same features without building a module per dataset
    np.testing.assert_array_equal(audio_feature_extractor("sda", sda_encoder_file)(audio), first)
    with pytest.raises(ValueError, match="audio_dim=256"):
        build_audio_frontend("sda", dim=64, weights=sda_encoder_file)


def test_sda_front_end_resolves_registered_weights(sda_encoder_file: str, tmp_path: Path, monkeypatch) -> None:
    from benchmark.weights import import_weights
    from metrics import weights as store

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))
    with pytest.raises(store.WeightsError, match=r"bench weights import audio_encoder\.pt --as sda_audio_encoder"):
        SDAEncoder()
    entry = import_weights(Path(sda_encoder_file), "sda_audio_encoder")
    assert entry.meta["format"] == "torchscript"
    fe = SDAEncoder()
    assert fe.info()["weights"] == "sda_audio_encoder" and fe.info()["sha256"] == entry.sha256


def test_sda_contract_refuses_other_archives(tmp_path: Path) -> None:
    class Wrong(torch.nn.Module):
        def forward(self, x: torch.Tensor, lengths: torch.Tensor, init_state: torch.Tensor):
            return x[:, 0, :128], init_state, init_state

    path = tmp_path / "wrong.pt"
    torch.jit.script(Wrong()).save(str(path))
    with pytest.raises(ValueError, match=r"wrong\.pt: not the SDA audio encoder.*not 256-d"):
        check_sda_encoder(torch.jit.load(str(path)), str(path))
    with pytest.raises(ValueError, match="not the SDA audio encoder"):
        build_audio_frontend("sda", weights=str(path))


def test_mel_front_end_contract() -> None:
    torch.manual_seed(0)
    fe = build_audio_frontend("mel", dim=32, width=16)
    assert fe.trainable and fe.dim == 32 and fe.info()["weights"] == "trained with the model"
    audio = np.random.default_rng(0).standard_normal(640 * 6 + 100).astype(np.float32) * 0.1
    feats = fe.frame_features(audio)
    np.testing.assert_array_equal(feats, frame_mel_windows(audio, 6))
    assert feats.shape == (6, 80, 16)
    emb = fe.embed(audio)
    assert emb.shape == (6, 32)
    assert fe.embed_batch(np.stack([audio, audio])).shape == (2, 6, 32)
    assert fe(torch.from_numpy(feats)[None, :5]).shape == (1, 5, 32)  # (..., 80, 16) -> (..., dim)
    with pytest.raises(ValueError, match="takes no weights"):
        build_audio_frontend("mel", weights="x.pt")


def test_unknown_front_end_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"known: mel, sda.*Did you mean 'sda'.*bench weights import"):
        build_audio_frontend("sdaa")
    with pytest.raises(KeyError, match="wav2vec2 / Whisper front ends are not offered"):
        build_audio_frontend("whisper")
