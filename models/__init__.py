"""Talking-face models, one folder per paper. MODELS maps a model name to its lazy LightningModule class."""

MODELS: dict[str, str] = {
    "wav2lip": "models.wav2lip.module:Wav2LipModule",
    "syncnet_expert": "models.syncnet.module:SyncNetExpertModule",
    "static": "models.static:StaticFrameModel",
}
