r"""StyleGAN2 (Karras et al. 2020) with StyleGAN2-ADA's settings.

The networks of trainer/models/stylegan2.py (docs/config-reference.md),
the non-saturating loss, lazy R1 every 16 steps, G's path-length penalty
every 4, Adam with beta1 = 0, G_ema with a half-life in images and ADA's
adaptive augmentation, as stylegan2-ada-pytorch's presets set them. The
rest is the base config's (trainer/defaults.py); each variant's data,
evaluation and loop are those trainer/defaults.py's VARIANTS gives it, as
configs/r3gan.py's variant of the same name has them.

Run (GPUs; the data source must exist, see docs/data.md):

  python -m trainer.main --config=configs/stylegan2.py:cifar32 \
      --workdir=runs/sg2_cifar --strategy=mirrored \
      --config.runtime.mixed_precision=mixed_float16

Variants (`--config=configs/stylegan2.py:<variant>`):
  cifar32  (also the default) CIFAR-10 at 32x32, class-conditional:
           stylegan2-ada-pytorch's `cifar` preset (mapping of 2 layers,
           D without skips (`orig`), channel_base 32768, batch 64,
           minibatch-std groups of 32, lr
           0.0025, R1 gamma 0.01, no path length and no style mixing,
           ema_kimg 500 with a ramp of 0.05), ADA toward r_t = 0.6, for
           100 M images. `tfds:cifar10` (TFDS must be able to download it
           or find it prepared). Hardware: 2 to 8 GPUs, days. Expected
           (the ADA paper, on GPUs, Inception FID over 50k samples; not
           measured here): FID about 2.4 with labels.
  ffhq256  FFHQ-like faces at 256x256, unconditional: the `paper256`
           preset (8 mapping layers, channel_base 16384, batch 64, groups
           of 8, lr 0.0025, gamma 1, path length weight 2, style mixing
           0.9, ema_kimg 20), ADA, 25 M images. Pass your images as
           --config.data.source=folder:<dir> (or a prepared TFDS
           dataset). Hardware: 8 GPUs, days. Expected: the ADA paper's
           FFHQ-256 range (FID of a few units with 70k images); not
           measured here.
  ffhq1024 FFHQ at 1024x1024: StyleGAN2's config F (channel_base 32768,
           batch 32, groups of 4, lr 0.002, gamma 10, ema_kimg 10), 25 M
           images. Hardware: 8 GPUs with 16 GB or more, a week or more.
           Expected (StyleGAN2 paper, config F): FID 2.84; not measured
           here.
  mnist32  MNIST resized to 32x32, small enough for a 2-core CPU: widths
           up to 128, w of 128 from a 2-layer mapping, batch 32, R1 gamma
           0.01, ADA, ema_kimg 10; evaluates every 2000 steps and its
           untrained G at step 0. On the embedded MNIST digits:
             python -m trainer.main --config=configs/stylegan2.py:mnist32 \
                 --strategy=one_device --workdir=runs/sg2_mnist32 \
                 --config.runtime.mixed_precision=mixed_bfloat16
           About 22 examples/sec on one core of this CPU. Measured
           (BENCHMARKS.md): in one hour of one core (81 to 83 k images)
           it collapses to one digit, FID 117 and 143 at the end (seeds 0
           and 1) where the DCGAN reaches 8.3 and 8.6 in the same time;
           its untrained G scores 100 and 136, so by this evaluator the
           hour gains nothing. NVIDIA's StyleGAN2-ADA with the same recipe
           and data drops modes the same way over 64 k images: a check
           that the family runs on a CPU, not a recipe for digits in an
           hour (docs/training.md).
           Class-conditional (--config.model.num_classes=10) it drew 9
           and 10 of the digits at 1,080 steps (35 k images), FID 48.0
           and 38.1 (seeds 0 and 1; BENCHMARKS.md "Attribute edits on
           digits"): a lean that labels keep it from collapsing.
           On Stacked MNIST (--config.model.channels=3) the same hour
           ends with 25 and 7 of the 1000 modes (seeds 0 and 1; at most
           79 and 131), fewer than its untrained G's 159 and 124; the
           DCGAN 941 and 932.
  smoke    Tiny networks at 32x32 on MNIST, 20 steps at batch 8 with R1,
           the path length and ADA: checks that everything runs, in about a
           minute on 2 CPU cores. Not expected to produce digits.
"""

import ml_collections

from trainer import defaults

# The presets' settings per variant: model fields, then the rest. z and w
# have 512 dimensions unless the model fields say otherwise.
_PRESETS = {
    "cifar32": dict(
        model=dict(mapping_layers=2, channel_base=32768, mbstd_group=32,
                   style_mixing=0.0, ema_kimg=500.0, ema_rampup=0.05,
                   d_architecture="orig"),
        lr=0.0025, gamma=0.01, pl_weight=0.0, batch=64, kimg=100_000),
    "ffhq256": dict(
        model=dict(mapping_layers=8, channel_base=16384, mbstd_group=8,
                   style_mixing=0.9, ema_kimg=20.0),
        lr=0.0025, gamma=1.0, pl_weight=2.0, batch=64, kimg=25_000),
    "ffhq1024": dict(
        model=dict(mapping_layers=8, channel_base=32768, mbstd_group=4,
                   style_mixing=0.9, ema_kimg=10.0),
        lr=0.002, gamma=10.0, pl_weight=2.0, batch=32, kimg=25_000),
    "mnist32": dict(
        model=dict(latent_dim=128, w_dim=128, mapping_layers=2,
                   channel_base=2048, channel_max=128, mbstd_group=4,
                   style_mixing=0.9, ema_kimg=10.0, ema_rampup=0.05),
        lr=0.0025, gamma=0.01, pl_weight=0.0, batch=32, kimg=1_000),
    "smoke": dict(
        model=dict(latent_dim=16, w_dim=16, mapping_layers=2,
                   channel_base=256, channel_max=32, mbstd_group=4,
                   style_mixing=0.9, ema_kimg=0.1, ema_rampup=0.05),
        lr=0.0025, gamma=0.01, pl_weight=2.0, batch=8, kimg=0.16),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` names a variant (see the module docstring)."""
  variant = arg or "cifar32"
  if variant not in _PRESETS:
    raise ValueError(f"unknown variant {arg!r} of stylegan2; valid: "
                     f"{', '.join(sorted(_PRESETS))}")
  preset = _PRESETS[variant]
  config = defaults.base("stylegan2")
  config.update_from_flattened_dict(defaults.VARIANTS[variant])
  config.model.latent_dim = 512
  config.model.update(preset["model"])

  config.optim.g_lr = config.optim.d_lr = preset["lr"]
  config.optim.beta1, config.optim.beta2 = 0.0, 0.99
  config.penalties.names = "r1,pl" if preset["pl_weight"] else "r1"
  config.penalties.r1.weight = preset["gamma"]
  if preset["pl_weight"]:
    config.penalties.pl.weight = preset["pl_weight"]
  config.augment.name = "ada"

  config.train.batch_size = preset["batch"]
  config.train.steps = int(preset["kimg"] * 1000 // preset["batch"])
  return config
