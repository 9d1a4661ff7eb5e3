"""Diffused Heads (Stypulkowski et al., WACV 2024): UNet + audio encoder (nets), diffusion process and samplers
(process), training items (windows), official checkpoint layouts (checkpoints), LightningModule (module)."""
