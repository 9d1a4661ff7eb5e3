"""Corpora, preparation and data modules. DATASETS maps a dataset name to its lazy "module:Class" entry."""

DATASETS: dict[str, str] = {
    "synthetic": "data.corpus:SyntheticCorpus",
    "lrw": "data.lrw:LRWCorpus",
    "crema": "data.crema:CremaCorpus",
    "voxceleb2": "data.voxceleb2:VoxCeleb2Corpus",
    "lrs2": "data.lrs2:LRS2Corpus",
    "lrs3": "data.lrs3:LRS3Corpus",
}
