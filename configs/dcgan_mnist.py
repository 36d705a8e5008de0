r"""DCGAN on MNIST: the seed's networks, trained the way they should be.

Run (any machine, offline too: it trains on the 10,000 MNIST digits that
ship with the package, the data source embedded:mnist):

  python -m trainer.main --strategy=mirrored

The full 60,000 training images (`tfds:mnist` needs internet once, or a
prepared TFDS dir):

  python -m trainer.main --strategy=mirrored \
      --config.data.source=tfds:mnist --config.data.split=train

Variants (`--config=configs/dcgan_mnist.py:<variant>`):
  (none)  10,000 steps at global batch 256 (256 epochs of the embedded
          10,000 digits, 43 of tfds:mnist's 60,000), non-saturating loss, Adam
          2e-4 / beta1 0.5, G_ema, alternating updates. About 2 hours on 2
          idle CPU cores (float32), 5 to 13 minutes on an A100 (computed;
          BENCHMARKS.md). Expected: clearly readable digits from G_ema after
          a few thousand steps. This is the recommended MNIST recipe: at the
          tutorial's budget of 2,000 steps it reaches well under half the
          tutorial loop's FID (BENCHMARKS.md).
          Speed on a CPU: add --config.runtime.mixed_precision=mixed_bfloat16
          where the CPU has AVX-512 BF16 or AMX, and
          --config.train.simultaneous=True for the tutorial's cheaper step
          (a little worse per step). XLA stays off: on the 2-core CPU where
          these defaults were measured, it is slower in every setting.
  stacked Stacked MNIST (three digits as R, G, B: 1000 modes), the
          mode-collapse benchmark: the same DCGAN with 3 channels, evaluated
          every 1000 steps by mode counting with the MNIST classifier.
          Its digits come from embedded:mnist (stacked_mnist:tfds:mnist
          for the 60,000). Expected (mixed_bfloat16, 26,000
          samples, BENCHMARKS.md): all 1000 modes from about
          8,000 steps on, and a KL that keeps falling with longer training:
          0.058 at 24,000 steps (add --config.train.steps=24000; about 1.7
          hours on 2 CPU cores).
  limited Limited data, as the DiffAugment and ADA papers measure it: the
          first 1,000 images only (data.split='test[:1000]'), evaluated by
          FID against the whole split every 500 steps;
          4,000 steps at batch 64; D without dropout, ADA in front of it
          (augment.speed_kimg=100, so that p can move within the run).
            python -m trainer.main --config=configs/dcgan_mnist.py:limited \
                --strategy=one_device
          Measured (BENCHMARKS.md, seeds 0 and 1, D
          without dropout in all runs): FID 7.93 +- 0.20 at 4,000 steps,
          against 8.03 +- 0.24 without augmentation and 12.06 +- 0.15
          with diffaugment. At this budget D only starts to overfit (r_t
          about 0.62 at the end without augmentation), so ADA keeps p near
          0 and tracks the plain run; its gain needs longer training,
          which was not measured here.
  short   3,000 steps at batch 64 (about 12 minutes on 2 idle CPU cores): the
          budget of the apply tools' quality figures in BENCHMARKS.md.
  smoke   40 steps at batch 64 with frequent logs, images and checkpoints:
          checks that everything runs, in well under a minute on 2 CPU cores.
          It is not expected to produce digits.
"""

import ml_collections

from trainer import defaults


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` names a variant (see the module docstring)."""
  # Every field is the base's (trainer/defaults.py) and dcgan's own.
  config = defaults.base("dcgan")
  if arg == "smoke":
    config.update_from_flattened_dict(defaults.SMOKE)
  elif arg == "short":
    config.update_from_flattened_dict(defaults.SHORT)
  elif arg == "limited":
    config.data.split = "test[:1000]"
    config.eval.split = "test"
    config.eval.metrics = "fid,kid"
    config.model.d_dropout = 0.0
    config.augment.name = "ada"
    config.augment.speed_kimg = 100.0
    config.train.steps = 4000
    config.train.batch_size = 64
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
  elif arg == "stacked":
    config.data.source = "stacked_mnist:embedded:mnist"
    config.model.channels = 3
    config.train.eval_every = 1000
  elif arg:
    raise ValueError(
        f"unknown variant {arg!r} of dcgan_mnist; valid: limited, short, "
        "smoke, stacked")
  return config
