"""LipGAN (Prajwal et al. 2019): a PyTorch re-implementation of the official Keras code."""
