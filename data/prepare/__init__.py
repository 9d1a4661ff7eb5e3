"""`bench data prepare`: a real corpus (LRW / CREMA-D / VoxCeleb2 download) -> per-clip arrays + a manifest.

Per clip (docs/corpora.md): decode with ffmpeg to 25 fps / 16 kHz mono, streamed through a pipe in fixed-size
chunks of frames, so a one-hour video never has to fit in memory; 68 face landmarks from a landmark source
(data.faces.sources: `auto` picks the synthetic truth, 2D-FAN when its weights are present, else dlib), cached
per clip; one crop per model family cut with data.faces.crops; audio features computed once. Outputs go to
`<prepared>/clips/<clip_id>/` (written to a temporary folder and renamed) and then a record
`<prepared>/records/<clip_id>.json`: a clip is finished exactly when its record exists, so a run killed at any
point and started again redoes only unfinished clips, and the manifest (rebuilt from the records, sorted) is the
same as an uninterrupted run's. Preparing again with another crop or feature adds it to finished clips from
their cached landmarks and audio, without detecting anything (data.prepare.run).

Failures are data: a corrupt file, a missing audio stream, audio and video lengths further apart than the
tolerance, no face in too many frames, a clip that is too short, or landmarks missing from the landmarks file
each give a rejected record with its reason; the run goes on (`strict=True` raises at the end).

Array files (uint8 / float32 .npy, memory-mappable): `crop_<family>.npy` [T, S, S, 3] RGB,
`landmarks_<family>.npy` [T, 68, 2] in that crop's pixels, `landmarks.npy` [T, 68, 2] in the decoded video's
pixels (NaN where no face was found; the landmark cache), `audio.npy` [T*640], `mel.npy` [M, 80] (Wav2Lip's mel,
time first) and `mfcc.npy` [K, 13] (python_speech_features as syncnet_python calls it).

Modules: config (settings, errors), stream (ffmpeg pipes, .npy writer), features (audio features), clip (one
clip), run (plan / run / collect), check (`bench data check`); the manifest is built from the records by
data.manifest.build_manifest (re-exported here with derive_val and split_file_hashes).
"""

from data.faces import CROPS, LANDMARK_SOURCES, fill_gaps, forward_mean, transform_points
from data.manifest import build_manifest, derive_val, split_file_hashes
from data.prepare.check import check_prepared, layout_error_hint
from data.prepare.clip import extend_clip, prepare_clip, source_stamp
from data.prepare.config import PREPARE_VERSION, REASONS, ClipRejected, PrepareConfig, PrepareError
from data.prepare.features import FEATURES, Feature
from data.prepare.run import PrepareSummary, plan_clip, prepare_corpus, read_record, record_path
from data.prepare.stream import NpyWriter, stream_audio, stream_frames

__all__ = [
    "CROPS",
    "FEATURES",
    "LANDMARK_SOURCES",
    "PREPARE_VERSION",
    "REASONS",
    "ClipRejected",
    "Feature",
    "NpyWriter",
    "PrepareConfig",
    "PrepareError",
    "PrepareSummary",
    "build_manifest",
    "check_prepared",
    "derive_val",
    "extend_clip",
    "fill_gaps",
    "forward_mean",
    "layout_error_hint",
    "plan_clip",
    "prepare_clip",
    "prepare_corpus",
    "read_record",
    "record_path",
    "source_stamp",
    "split_file_hashes",
    "stream_audio",
    "stream_frames",
    "transform_points",
]
