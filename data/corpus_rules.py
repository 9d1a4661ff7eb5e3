"""Each real corpus's own rules that its layout in `data.layouts` applies: file naming and the official split.

The corpus modules re-export their own (`data.lrw`, `data.crema`, `data.voxceleb2`, `data.lrs2`, `data.lrs3`);
they are defined here, in a module that imports nothing, because a corpus module builds its corpus class on
`data.corpus`, which reads clips through `data.layouts`, which needs these rules: defined in the corpus module they
would close an import circle.
"""

from __future__ import annotations

# LRW: lipread_mp4/WORD/{train,val,test}/WORD_NNNNN.mp4; the folder a clip lies in is its official split.
LRW_SPLIT_FOLDERS = ("train", "val", "test")

# CREMA-D file name parts (AAAA_SSS_EEE_LL): 12 sentences, 6 emotions, 4 intensity levels.
CREMA_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
CREMA_EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
CREMA_LEVELS = ("XX", "LO", "MD", "HI")
# CREMA-D has no official split: Diffused Heads' test actors are test, every other actor train
# (diffused-heads `datasets/file_list_crema_test.txt`; docs/corpora.md).
CREMA_DH_TEST_ACTORS = ("1015", "1020", "1021", "1030", "1033", "1052", "1062", "1081", "1082", "1089")

# VoxCeleb2: {dev,test}/mp4/idXXXXX/...; each official part and the split it is.
VOXCELEB2_PARTS = {"dev": "train", "test": "test"}

# LRS2 (mvlrs_v1): main/<programme>/<NNNNN>.mp4; the official split is the list its clip is named in, one
# `<programme>/<NNNNN>` per line (a second column in some lists is ignored) in these files of the root.
LRS2_SPLIT_LISTS = {"train": "train.txt", "val": "val.txt", "test": "test.txt"}

# LRS3: {trainval,test,pretrain}/<talk id>/<NNNNN>.mp4; the folder is the official split (pretrain is left out: its
# clips are whole talk segments, not the sentence clips the benchmarks use).
LRS3_PARTS = {"trainval": "train", "test": "test"}
