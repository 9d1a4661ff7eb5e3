"""Real-corpus datasets: official split rules, split overrides, leak refusal, data modules on prepared corpora."""

from __future__ import annotations

import pytest
import torch

from data.corpus import SplitLeakError
from data.crema import CREMA_DH_TEST_ACTORS, CremaCorpus
from data.datamodule import StreamingWindows, TalkingFaceDataModule
from data.layouts import get_layout, write_split_files
from data.manifest import derive_val
from data.synthetic.generator import SyntheticConfig
from data.synthetic.writer import write_corpus
from data.voxceleb2 import VoxCeleb2Corpus
from models.syncnet.windows import SyncExpertWindows
from models.wav2lip.windows import Wav2LipWindows

CFG = SyntheticConfig(seed=4, n_speakers=4, n_clips=8, size=96, min_seconds=1.0, max_seconds=1.3)
PREP = {"landmarks": "truth", "workers": 1, "shard_clips": 1}


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_official_split_rules_without_split_files(tmp_path):
    crema = tmp_path / "crema"
    for actor in ("1001", "1015", "1089", "1090"):
        _touch(crema / "VideoFlash" / f"{actor}_DFA_ANG_XX.flv")
        _touch(crema / "AudioWAV" / f"{actor}_DFA_ANG_XX.wav")
    refs = get_layout("crema").scan(crema)
    assert {r.speaker_id: r.split for r in refs} == {"1001": "train", "1015": "test", "1089": "test", "1090": "train"}
    assert all(r.audio is not None and r.audio.suffix == ".wav" for r in refs)
    assert len(CREMA_DH_TEST_ACTORS) == 10

    lrw = tmp_path / "lrw"
    for split in ("train", "val", "test"):
        _touch(lrw / "ABOUT" / split / "ABOUT_00001.mp4")
    assert {r.clip_id: r.split for r in get_layout("lrw").scan(lrw)}["ABOUT/val/ABOUT_00001"] == "val"

    vox = tmp_path / "vox"
    _touch(vox / "dev" / "mp4" / "id00012" / "abc" / "00001.mp4")
    _touch(vox / "test" / "mp4" / "id00017" / "xyz" / "00001.mp4")
    assert [(r.speaker_id, r.split) for r in get_layout("voxceleb2").scan(vox)] == [
        ("id00012", "train"),
        ("id00017", "test"),
    ]
    # a split folder overrides the rule; unlisted clips drop out of every split
    override = tmp_path / "my_splits"
    override.mkdir()
    (override / "val.txt").write_text("dev/mp4/id00012/abc/00001.mp4\n")
    assert [r.split for r in get_layout("voxceleb2").scan(vox, override)] == ["val", ""]
    with pytest.raises(ValueError, match="split folder does not exist"):
        get_layout("voxceleb2").scan(vox, tmp_path / "nope")


def test_val_speakers_come_from_train_and_are_stable(tmp_path):
    crema = tmp_path / "crema"
    for actor in range(1001, 1031):
        _touch(crema / "VideoFlash" / f"{actor}_DFA_ANG_XX.flv")
    refs = get_layout("crema").scan(crema)
    speakers = {r.clip_id: r.speaker_id for r in refs}
    val = derive_val(refs, speakers, 4)
    chosen = {speakers[c] for c in val}
    assert len(chosen) == 4 and not chosen & set(CREMA_DH_TEST_ACTORS)
    assert derive_val(list(reversed(refs)), speakers, 4) == val


@pytest.fixture(scope="module")
def crema_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("crema") / "CREMA-D"
    write_corpus(CFG, root, "crema", workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def crema(crema_root, tmp_path_factory):
    corpus = CremaCorpus(root=crema_root, prepared=tmp_path_factory.mktemp("prep"), prepare=PREP, streaming=True)
    corpus.ensure(progress=False)  # prepares on first use
    return corpus


def test_prepared_corpus_serves_crops_and_the_data_module(crema):
    assert crema.is_prepared()
    clip = crema.clips("test")[0]
    assert clip.video.shape[1:] == (96, 96, 3) and clip.landmarks.shape == (clip.num_frames, 68, 2)
    assert clip.audio.shape == (clip.num_frames * 640,) and clip.speaker_id
    fp = crema.fingerprint()
    assert fp["crop"] == "wav2lip" and len(fp["clips"]) == 16

    dm = TalkingFaceDataModule(crema, Wav2LipWindows, batch_size=2, seed=0)
    dm.setup()
    assert isinstance(dm.train_set, StreamingWindows)
    batch = next(iter(dm.train_dataloader()))
    assert batch["face"].shape == (2, 6, 5, 96, 96) and batch["mels"].shape == (2, 5, 1, 80, 16)
    first, again = (next(iter(dm.val_dataloader())) for _ in range(2))
    assert first["target"].shape[0] == 2
    # every validation scores the same windows: evals compare across steps and after a resume
    assert all(torch.equal(first[k], again[k]) for k in ("face", "mels", "target"))


def test_ddp_ranks_stream_disjoint_clips(crema):
    seen = []
    for rank in range(2):
        stream = StreamingWindows(crema, "train", SyncExpertWindows, seed=0, rank=rank, world=2)
        items = [item for _, item in zip(range(12), stream)]
        assert len(items) == 12 and items[0]["face"].shape == (15, 48, 96)
        seen.append({e["clip_id"] for e in crema.index.entries(stream.indices)})
        workers = [{int(i) for g in stream.worker_shards(w, 2) for i in g} for w in range(2)]
        assert not workers[0] & workers[1] and workers[0] | workers[1] == set(stream.indices.tolist())
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert seen[0] | seen[1] == {e["clip_id"] for e in crema.entries("train")}


def test_a_crop_not_prepared_yet_is_cut_on_first_use_from_cached_landmarks(crema, crema_root, tmp_path, monkeypatch):
    import shutil

    from data.faces.sources import TruthSource

    prepared = tmp_path / "prep"
    shutil.copytree(crema.prepared, prepared)  # the module's corpus keeps its own manifest
    calls = []
    monkeypatch.setattr(TruthSource, "known", lambda self, ref: calls.append(ref) or None)
    vasa = CremaCorpus(root=crema_root, prepared=prepared, prepare=PREP, streaming=True, crop="vasa")
    assert not vasa.is_prepared() and vasa.prepare_config.crops == ["vasa"]
    clip = vasa.clips("test")[0]  # first use: the vasa crop is cut now
    assert clip.video.shape[1:] == (256, 256, 3) and clip.landmarks.shape == (clip.num_frames, 68, 2)
    assert calls == [] and vasa.is_prepared()
    # the crop the dataset names by its syncnet_python name
    tracked = CremaCorpus(root=crema_root, prepared=prepared, prepare=PREP, crop="tracked")
    assert tracked.crop == "syncnet" and not tracked.is_prepared()
    with pytest.raises(ValueError, match="did you mean 'vasa'"):
        CremaCorpus(root=crema_root, prepared=prepared, prepare=PREP, crop="vassa")


def test_leaking_splits_are_refused_unless_allowed(crema_root, tmp_path):
    refs = get_layout("crema").scan(crema_root)
    by_speaker: dict[str, list[str]] = {}
    for r in refs:
        by_speaker.setdefault(r.speaker_id, []).append(r.video.relative_to(crema_root).as_posix())
    speakers = sorted(by_speaker)
    # speaker 0 in train and test: a leak
    split_dir = tmp_path / "leaky"
    write_split_files(
        split_dir.parent / "x",
        {
            "train": by_speaker[speakers[0]][:1] + by_speaker[speakers[1]],
            "val": by_speaker[speakers[2]],
            "test": by_speaker[speakers[0]][1:] + by_speaker[speakers[3]],
        },
    )
    (tmp_path / "x" / "splits").rename(split_dir)
    kw = dict(root=crema_root, prepared=tmp_path / "p", prepare=PREP, split_dir=split_dir)
    with pytest.raises(SplitLeakError, match=f"train/test: {speakers[0]}"):
        CremaCorpus(**kw).ensure(progress=False)
    CremaCorpus(**kw, allow_leaking_splits=True).ensure(progress=False)


def test_missing_root_names_the_setting_and_configs_compose(monkeypatch):
    from benchmark.config import compose
    from benchmark.runner import build_corpus

    monkeypatch.delenv("TALKBENCH_VOXCELEB2_ROOT", raising=False)
    with pytest.raises(ValueError, match="TALKBENCH_VOXCELEB2_ROOT or pass dataset.root"):
        VoxCeleb2Corpus(root=None)
    for name in ("lrw", "crema", "voxceleb2"):
        cfg = compose("wav2lip", name, "tiny", [f"dataset.root=/data/{name}", "dataset.prepare.landmarks=truth"])
        corpus = build_corpus(cfg)
        assert corpus.root.as_posix() == f"/data/{name}" and corpus.prepare_config.landmarks == "truth"
        assert corpus.prepare_config.device == "auto" and corpus.shuffle_buffer == 256
        assert corpus.prepare_config.crops == [corpus.crop]  # the dataset's crop is what preparation cuts
        assert build_corpus(compose(None, name, None, [f"dataset.root=/x/{name}"])).prepare_config.landmarks == "auto"
    with pytest.raises(Exception, match="landmark"):
        build_corpus(compose(None, "crema", None, ["dataset.root=/x", "dataset.prepare.landmark=fan"]))
