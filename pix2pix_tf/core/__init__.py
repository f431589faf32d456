"""The paper alone: the U-Net and PatchGAN, the pix2pix losses, and Pix2Pix (the GAN step as a keras.Model)."""
