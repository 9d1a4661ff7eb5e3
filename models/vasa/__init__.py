"""VASA-style talking faces (after Xu et al. 2024, "VASA-1"; no official code exists): a disentangled face latent
space (face_latent.py, stage 1) and a motion diffusion transformer over [pose, dynamics] latents driven by audio,
gaze, head distance and emotion (motion_dit.py + process.py, stage 2); module.py orchestrates both.

This is a re-implementation from the paper's text, labelled "VASA-style" everywhere: it is not VASA-1.
"""
