"""Talking-face models, one folder per paper. MODELS maps a model name to its lazy LightningModule class."""

MODELS: dict[str, str] = {
    "wav2lip": "models.wav2lip.module:Wav2LipModule",
    "wav2lip_gan": "models.wav2lip.gan:Wav2LipGANModule",
    "lipgan": "models.lipgan.module:LipGANModule",
    "syncnet_expert": "models.syncnet.module:SyncNetExpertModule",
    "static": "models.static:StaticFrameModel",
    "diffused_heads": "models.diffused_heads.module:DiffusedHeadsModule",
    "vasa_face": "models.vasa.module:VasaFaceModule",
    "vasa": "models.vasa.module:VasaModule",
}
