r"""R3GAN (Huang et al. 2024, "The GAN is dead; long live the GAN!").

The networks of trainer/models/r3gan.py (docs/config-reference.md),
the relativistic pairing loss `rpgan` with R1 and R2 on every step (weight
gamma: gamma/2 (R1 + R2)), Adam with beta1 = 0, and R3GAN's cosine
schedules over the images seen: learning rates, gamma and beta2, G_ema's
half-life (from 0) and ADA's augmentation probability p (fixed, not
adaptive). The numbers are those of the presets in brownvc/R3GAN's
train.py (CIFAR10, FFHQ-256) and of its README's commands (batch sizes).
The rest is the base config's (trainer/defaults.py); each variant's data,
evaluation and loop are those trainer/defaults.py's VARIANTS gives it, as
configs/stylegan2.py's variant of the same name has them (the same
datasets, sizes and metrics).

Differences from R3GAN's runs that are not settings: its augmentation
pipeline adds cutout and runs the colour transforms at half probability
(trainer/augment.py has no cutout and runs every group at p); its datasets
are doubled by x-flips (--mirror=1); its Adam has epsilon 1e-8 (Keras'
1e-7 here).

Run (GPUs; the data source must exist, see docs/data.md):

  python -m trainer.main --config=configs/r3gan.py:cifar32 \
      --workdir=runs/r3gan_cifar --strategy=mirrored \
      --config.runtime.mixed_precision=mixed_bfloat16

Variants (`--config=configs/r3gan.py:<variant>`):
  cifar32  (also the default) CIFAR-10 at 32x32, class-conditional:
           the CIFAR10 preset. 768 channels at 4, 8, 16 and 32, 2 blocks
           per stage, cardinality 96, expansion 2, z of 64; batch 512;
           over 20 M images lr 2e-4 -> 5e-5, gamma 0.05 -> 0.005, beta2
           0.9 -> 0.99, G_ema half-life 0 -> 5 M images, p 0 -> 0.55;
           20 M images (the schedules' length: R3GAN's train.py runs until
           stopped). `tfds:cifar10` (TFDS must be able to download it or
           find it prepared). Hardware: 8 GPUs (R3GAN's command), days.
           Expected (the paper, on GPUs, 50k-sample Inception FID; not
           measured here): FID 1.96.
  ffhq256  FFHQ at 256x256, unconditional: the FFHQ-256 preset. 768
           channels up to 32x32, then 384, 192, 96 (cardinality 96, 48,
           24, 12), 2 blocks per stage; batch 256; over 20 M images lr
           2e-4 -> 5e-5, gamma 150 -> 15, beta2 0.9 -> 0.99, G_ema
           half-life 0 -> 500 k images, p 0 -> 0.3; 20 M images. Pass your
           images as --config.data.source=folder:<dir>. Hardware: 8 GPUs,
           days. Expected (the paper; not measured here): FID 2.75.
  ffhq1024 FFHQ at 1024x1024. R3GAN has no such preset (its largest is
           FFHQ-256): this is FFHQ-256's recipe with the widths halving
           on (48 at 512, 24 at 1024; cardinality 6 and 3) and its
           schedules unchanged, an extrapolation that nobody has measured.
           Hardware: 8 GPUs with 32 GB or more, a week or more. Expected:
           unknown; treat it as a starting point.
  mnist32  MNIST resized to 32x32, small enough for a 2-core CPU: widths
           128 up to 16x16 and 64 at 32x32, 1 block per stage, cardinality
           8 (4 at 32x32), z of 64, batch 32, no augmentation; R3GAN's
           schedules over the run's 256 k images, 8,000 steps (lr 2e-4 ->
           5e-5, gamma 0.05 -> 0.005, beta2 0.9 -> 0.99) and G_ema's
           half-life 0 -> 10 k images. Measured speed: about 18
           examples/sec on one device of a shared 2-core CPU, so about 4
           hours. On the embedded MNIST digits:
             python -m trainer.main --config=configs/r3gan.py:mnist32 \
                 --strategy=one_device --workdir=runs/r3gan_mnist32
           Expected: readable digits; the whole run has not been measured.
           In one hour of one core, with the schedules over 64 k images
           instead of 256 k, it reaches FID 113 and 96 (seeds 0 and 1;
           varied shapes, no collapse) where the DCGAN reaches 8.3 and
           8.6 in the same time; on Stacked MNIST
           (--config.model.channels=3) 167 and 63 of the 1000 modes at
           the end of the hour (seeds 0 and 1; at most 290 and 317), the
           DCGAN 941 and 932 (BENCHMARKS.md).
  smoke    Tiny networks at 32x32 on MNIST, 20 steps at batch 8 with R1,
           R2 and scheduled ADA: checks that everything runs, in about a
           minute on 2 CPU cores. Not expected to produce digits.
"""

import ml_collections

from trainer import defaults

# The presets per variant: model fields where they differ from the r3gan
# architecture's defaults (R3GAN's widths: 768 channels up to 32x32, halving
# above), then the schedules' start and end values (over `schedule_kimg`),
# the batch and the length.
_PRESETS = {
    "cifar32": dict(
        model={}, lr=(2e-4, 5e-5), gamma=(0.05, 0.005),
        ema_kimg=5000.0, p=0.55, schedule_kimg=20_000, batch=512,
        kimg=20_000),
    "ffhq256": dict(
        model={}, lr=(2e-4, 5e-5), gamma=(150.0, 15.0),
        ema_kimg=500.0, p=0.3, schedule_kimg=20_000, batch=256,
        kimg=20_000),
    "ffhq1024": dict(
        model={}, lr=(2e-4, 5e-5), gamma=(150.0, 15.0),
        ema_kimg=500.0, p=0.3, schedule_kimg=20_000, batch=256,
        kimg=20_000),
    "mnist32": dict(
        model=dict(channel_base=2048, channel_max=128, blocks_per_stage=1,
                   cardinality=8),
        lr=(2e-4, 5e-5), gamma=(0.05, 0.005), ema_kimg=10.0, p=0.0,
        schedule_kimg=256, batch=32, kimg=256),
    "smoke": dict(
        model=dict(channel_base=256, channel_max=32, blocks_per_stage=1,
                   cardinality=4),
        lr=(2e-4, 5e-5), gamma=(0.05, 0.005), ema_kimg=0.1, p=0.2,
        schedule_kimg=0.16, batch=8, kimg=0.16),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` names a variant (see the module docstring)."""
  variant = arg or "cifar32"
  if variant not in _PRESETS:
    raise ValueError(f"unknown variant {arg!r} of r3gan; valid: "
                     f"{', '.join(sorted(_PRESETS))}")
  preset = _PRESETS[variant]
  config = defaults.base("r3gan")
  config.update_from_flattened_dict(defaults.VARIANTS[variant])
  horizon = preset["schedule_kimg"]
  cosine = lambda end: f"cosine({end}, {horizon})"

  config.model.latent_dim = 64
  config.model.loss = "rpgan"
  config.model.update(preset["model"])
  # G_ema's half-life ramps up from 0 (R3GAN's ema_scheduler).
  config.schedules.model.ema_kimg = cosine(preset["ema_kimg"])

  start, end = preset["lr"]
  config.optim.g_lr = config.optim.d_lr = start
  config.schedules.optim.g_lr = config.schedules.optim.d_lr = cosine(end)
  config.optim.beta1, config.optim.beta2 = 0.0, 0.9
  config.schedules.optim.beta2 = cosine(0.99)

  # gamma / 2 (R1 + R2) on every D step, as R3GAN applies them.
  config.penalties.names = "r1,r2"
  start, end = preset["gamma"]
  for name in ("r1", "r2"):
    config.penalties[name].weight, config.penalties[name].interval = start, 1
    config.schedules.penalties[name].weight = cosine(end)

  # ADA's pipeline with p scheduled from 0, not adapted; none for p = 0.
  config.augment.name = "ada" if preset["p"] else ""
  config.augment.p_mode = "fixed"
  if preset["p"]:
    config.schedules.augment.p = cosine(preset["p"])

  config.train.batch_size = preset["batch"]
  config.train.steps = int(preset["kimg"] * 1000 // preset["batch"])
  return config
