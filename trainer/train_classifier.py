r"""Trains the MNIST classifier that MNIST metrics use as feature extractor.

  python -m trainer.train_classifier --data=embedded:mnist \
      --train_split='test[:9000]' --heldout_split='test[9000:]' \
      --out=trainer/features/assets/mnist_classifier_v1

writes <out>.weights.h5 and <out>.json (recipe, held-out accuracy, sha256).
The recipe lives in trainer/features/mnist_classifier.py.
"""

import os
import sys

# Before TensorFlow loads: keep its C++ start-up notices out of the log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
from absl import logging
import tensorflow as tf

from trainer.errors import UserError
from trainer.features import mnist_classifier

_RECIPE = mnist_classifier.Recipe()

_DATA = flags.DEFINE_string(
    "data", _RECIPE.data, "MNIST source: embedded:mnist, idx:<dir> or tfds:mnist.")
_TRAIN_SPLIT = flags.DEFINE_string(
    "train_split", _RECIPE.train_split, "The digits to train on.")
_HELDOUT_SPLIT = flags.DEFINE_string(
    "heldout_split", _RECIPE.heldout_split,
    "The digits to report the accuracy on; used for nothing else.")
_OUT = flags.DEFINE_string(
    "out", mnist_classifier.DEFAULT_PATH.removesuffix(".weights.h5"),
    "Writes <out>.weights.h5 and <out>.json.")
_EPOCHS = flags.DEFINE_integer("epochs", _RECIPE.epochs, "Training epochs.",
                               lower_bound=1)
_SEED = flags.DEFINE_integer("seed", _RECIPE.seed, "Random seed.")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  tf.get_logger().setLevel("WARNING")
  recipe = mnist_classifier.Recipe(
      data=_DATA.value, train_split=_TRAIN_SPLIT.value,
      heldout_split=_HELDOUT_SPLIT.value, epochs=_EPOCHS.value,
      seed=_SEED.value)
  try:
    trained = mnist_classifier.train(recipe)
    weights, metadata = mnist_classifier.save(trained, _OUT.value)
  except UserError as e:
    sys.exit(f"error: {e}")
  logging.info("Wrote %s and %s", weights, metadata)
  print(f"held-out accuracy on {recipe.heldout_split}: "
        f"{trained.heldout_accuracy:.4f} ({trained.heldout_correct}/"
        f"{trained.heldout_size}), trained in {trained.train_seconds:.0f} s")


if __name__ == "__main__":
  app.run(main)
