r"""Class-conditional DCGAN on MNIST: G(z | digit), projection discriminator.

The networks of configs/dcgan_mnist.py with `model.num_classes = 10`: G
concatenates a learned embedding of the digit to the noise, D adds the
projection of its features onto the digit's embedding to its logit. The noise
then carries the handwriting and the label the digit, which is what
`python -m trainer.apply transfer` uses to redraw an image as other digits.

Run (any machine, offline too: the embedded MNIST digits):

  python -m trainer.main --config=configs/cgan_mnist.py --workdir=runs/cgan \
      --strategy=mirrored

To keep test[9000:] held out for the apply tools' quality checks, train on
the first 9000 digits only: add --config.data.split='test[:9000]'. The full
60,000: --config.data.source=tfds:mnist --config.data.split=train.

Variants (`--config=configs/cgan_mnist.py:<variant>`):
  (none)  The dcgan_mnist schedule (10,000 steps at batch 256). Expected:
          readable digits of the asked class from G_ema after a few thousand
          steps. Measured figures (transfer accuracy) in BENCHMARKS.md.
  short   3,000 steps at batch 64 (about 12 minutes on 2 idle CPU cores): the
          budget of the apply tools' quality figures in BENCHMARKS.md.
  smoke   40 steps at batch 64: checks that everything runs.
"""

import ml_collections

from trainer import defaults

# The variants besides the default, as dcgan_mnist's of the same names.
_VARIANTS = {"short": defaults.SHORT, "smoke": defaults.SMOKE}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` names a variant (see the module docstring)."""
  if arg and arg not in _VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of cgan_mnist; valid: "
                     f"{', '.join(_VARIANTS)}")
  config = defaults.base("dcgan")
  config.model.num_classes = 10
  if arg:
    config.update_from_flattened_dict(_VARIANTS[arg])
  return config
