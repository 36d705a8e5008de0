"""Network pickles of other code bases (StyleGAN2-ADA, StyleGAN3, R3GAN),
read without running them and converted into workdirs of ours:
`python -m trainer.convert` (docs/convert.md)."""
