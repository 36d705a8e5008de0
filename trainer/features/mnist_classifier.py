"""The project's MNIST classifier: the feature extractor for MNIST metrics.

FID, KID, precision/recall and the Inception Score on MNIST and Stacked MNIST
need a network that knows digits; InceptionV3 (ImageNet) does not. This one is
a small CNN trained by `train` and shipped as a versioned weights file
(DEFAULT_PATH) with a JSON file next to it that records how it was trained,
its held-out accuracy and the sha256 of the weights.

Only the real MNIST test split is available offline, so the recipe trains on
test[:9000] and reports the accuracy on test[9000:], digits that are used for
nothing else: no validation, no early stopping (the epoch count is fixed).

Retrain (about 5 minutes on 2 CPU cores):

  python -m trainer.train_classifier --data=embedded:mnist \
      --train_split='test[:9000]' --heldout_split='test[9000:]' \
      --out=trainer/features/assets/mnist_classifier_v1
"""

import dataclasses
import json
import math
import os
import shlex
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from trainer import features
from trainer import files
from trainer.data import pipeline
from trainer.data import sources
from trainer.errors import UserError

VERSION = "v1"
_STEM = f"mnist_classifier_{VERSION}"
_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PATH = os.path.join(_HERE, "assets", f"{_STEM}.weights.h5")
_REPO = os.path.dirname(os.path.dirname(_HERE))

# Keras saves and loads weights only under this suffix.
_WEIGHTS_SUFFIX = ".weights.h5"
_METADATA_SUFFIX = ".json"
IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
EMBEDDING_SIZE = 128
_DROPOUT = 0.3
# Batch size for inference; any size gives the same outputs.
_EVAL_BATCH = 500
# The real MNIST test split that ships with the package.
_DEFAULT_DATA = "embedded:mnist"


@dataclasses.dataclass(frozen=True)
class Recipe:
  """Everything that decides the trained weights.

  Attributes:
    data: the data source spec, e.g. idx:/data/mnist (see data/sources.py).
    train_split: the digits trained on.
    heldout_split: the digits the accuracy is reported on; never trained on
      and never used to choose anything.
    epochs: a fixed count, since there is no validation set to stop on.
    batch_size: examples per step.
    seed: seeds the initialisation, the order, dropout and augmentation.
    learning_rate: the peak of the schedule (linear warm-up, cosine decay).
    warmup_epochs: epochs of linear warm-up from 0.
    weight_decay: AdamW's decoupled decay, on kernels only.
    max_shift: random shifts, pixels, up to this in x and y.
    max_rotation: random rotations, degrees, up to this either way.
    max_zoom: random scaling by a factor in [1 - max_zoom, 1 + max_zoom].
  """
  data: str = _DEFAULT_DATA
  train_split: str = "test[:9000]"
  heldout_split: str = "test[9000:]"
  epochs: int = 20
  batch_size: int = 128
  seed: int = 0
  learning_rate: float = 3e-3
  warmup_epochs: int = 2
  weight_decay: float = 5e-4
  max_shift: float = 2.5
  max_rotation: float = 12.0
  max_zoom: float = 0.1


@dataclasses.dataclass(frozen=True)
class Trained:
  """A trained classifier and how it did on the held-out digits."""
  model: keras.Model
  recipe: Recipe
  heldout_correct: int
  heldout_size: int
  train_seconds: float

  @property
  def heldout_accuracy(self) -> float:
    return self.heldout_correct / self.heldout_size


def metadata_path(weights_path: str) -> str:
  """The JSON file that describes the weights file `weights_path`."""
  return weights_path.removesuffix(_WEIGHTS_SUFFIX) + _METADATA_SUFFIX


def retrain_command(recipe: Recipe, out: str) -> str:
  """The shell command that trains `recipe` and saves it as `out`.*."""
  return shlex.join([
      "python", "-m", "trainer.train_classifier", f"--data={recipe.data}",
      f"--train_split={recipe.train_split}",
      f"--heldout_split={recipe.heldout_split}", f"--out={out}",
      f"--epochs={recipe.epochs}", f"--seed={recipe.seed}"])


# ---------------------------------------------------------------- network ---

def _conv_bn_relu(x: keras.KerasTensor, width: int,
                  name: str) -> keras.KerasTensor:
  x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False,
                          name=f"{name}_conv")(x)
  x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
  return keras.layers.ReLU(name=f"{name}_relu")(x)


def build() -> keras.Model:
  """The classifier, untrained.

  Returns:
    A model from images float32 [B, 28, 28, 1] in [-1, 1] to the list
    [embedding float32 [B, 128], logits float32 [B, 10]]. The embedding is the
    penultimate layer (after BN and ReLU), the feature for FID, KID and
    precision/recall. Call it with training=False for features: batch norm
    then uses its moving statistics, so each output depends on its own image
    only.
  """
  images = keras.Input(IMAGE_SHAPE, name="images")
  x = images
  for stage, width in enumerate((32, 64), start=1):  # 28x28, then 14x14
    x = _conv_bn_relu(x, width, f"stage{stage}a")
    x = _conv_bn_relu(x, width, f"stage{stage}b")
    x = keras.layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
  x = _conv_bn_relu(x, 128, "stage3")  # [B, 7, 7, 128]
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  x = keras.layers.Dense(EMBEDDING_SIZE, use_bias=False, name="embed")(x)
  x = keras.layers.BatchNormalization(name="embed_bn")(x)
  embedding = keras.layers.ReLU(name="embedding")(x)
  x = keras.layers.Dropout(_DROPOUT, name="dropout")(embedding)
  logits = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
  return keras.Model(images, [embedding, logits], name=_STEM)


def architecture(model: keras.Model) -> list[str]:
  """One line per layer with parameters: name, kind and output shape."""
  return [f"{layer.name}: {type(layer).__name__} "
          f"{tuple(layer.output.shape[1:])}"
          for layer in model.layers if layer.weights]


# ------------------------------------------------------------------- data ---

def _read_split(spec: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """All images (uint8 [N, 28, 28, 1]) and labels (int32 [N]) of a split."""
  source = sources.load(spec, sources.Request(
      split=split, image_size=IMAGE_SHAPE[0], channels=IMAGE_SHAPE[2],
      resize=False))
  data = source.read(tf.range(source.num_examples, dtype=tf.int64))
  return data["image"].numpy(), data["label"].numpy()


def _random_affine(images: tf.Tensor, seed: tf.Tensor,
                   recipe: Recipe) -> tf.Tensor:
  """Shifts, rotates and zooms each image at random, in one resampling.

  One combined transform blurs less than three in a row would.

  Args:
    images: float32 [B, H, W, C] in [-1, 1].
    seed: int64 [2], for stateless random numbers.
    recipe: the ranges.

  Returns:
    float32 [B, H, W, C]; pixels from outside the image are background (-1).
  """
  batch = tf.shape(images)[0]
  uniform = tf.random.stateless_uniform([batch, 4], seed, -1.0, 1.0)
  angle = uniform[:, 0] * recipe.max_rotation * math.pi / 180.0
  scale = 1.0 + uniform[:, 1] * recipe.max_zoom
  shift_x = uniform[:, 2] * recipe.max_shift
  shift_y = uniform[:, 3] * recipe.max_shift
  cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
  center = (images.shape[1] - 1) / 2.0
  # Each output pixel p reads the input at M (p - center) + center - shift,
  # with M = rotation / scale.
  offset_x = center - (cos - sin) * center - shift_x
  offset_y = center - (sin + cos) * center - shift_y
  zeros = tf.zeros_like(cos)
  transform = tf.stack([cos, -sin, offset_x, sin, cos, offset_y, zeros, zeros],
                       axis=1)  # [B, 8]
  return keras.ops.image.affine_transform(
      images, transform, interpolation="bilinear", fill_mode="constant",
      fill_value=-1.0)


def _training_batches(images: np.ndarray, labels: np.ndarray,
                      recipe: Recipe) -> tf.data.Dataset:
  """Augmented (images in [-1, 1], labels) batches for all epochs.

  Each epoch is a new seeded permutation (whose last, partial batch is
  dropped); each batch has its own augmentation seed (recipe.seed, batch
  number), so a run is repeatable.
  """
  batches = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(
      len(labels), seed=recipe.seed, reshuffle_each_iteration=True).batch(
          recipe.batch_size, drop_remainder=True).repeat(recipe.epochs)

  def augment(step, batch):
    batch_images, batch_labels = batch
    seed = tf.stack([tf.constant(recipe.seed, tf.int64), step])
    return (_random_affine(pipeline.to_unit_range(batch_images), seed,
                           recipe), batch_labels)

  return batches.enumerate().map(
      augment, num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------- training ---

def _optimizer(recipe: Recipe, steps_per_epoch: int) -> keras.optimizers.AdamW:
  total = recipe.epochs * steps_per_epoch
  # Short runs (a smoke test's one epoch) still get to decay.
  warmup = min(recipe.warmup_epochs * steps_per_epoch, total // 2)
  schedule = keras.optimizers.schedules.CosineDecay(
      initial_learning_rate=0.0, warmup_target=recipe.learning_rate,
      warmup_steps=warmup, decay_steps=total - warmup)
  optimizer = keras.optimizers.AdamW(learning_rate=schedule,
                                     weight_decay=recipe.weight_decay)
  # Decaying the scales and shifts of batch norm only fights the kernels'
  # decay; biases are few.
  optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
  return optimizer


def _log_epoch(epochs: int) -> keras.callbacks.Callback:
  def log(epoch: int, logs: dict[str, float]) -> None:
    logging.info("epoch %d/%d: loss %.4f, accuracy on augmented training "
                 "digits %.4f", epoch + 1, epochs, logs["loss"],
                 logs["accuracy"])

  return keras.callbacks.LambdaCallback(on_epoch_end=log)


def count_correct(model: keras.Model, images: np.ndarray,
                  labels: np.ndarray) -> int:
  """How many of `images` (uint8 [N, 28, 28, 1]) get their label."""
  correct = 0
  for start in range(0, len(labels), _EVAL_BATCH):
    batch = pipeline.to_unit_range(images[start:start + _EVAL_BATCH])
    _, logits = model(batch, training=False)
    predicted = np.argmax(logits.numpy(), axis=-1)
    correct += int(np.sum(predicted == labels[start:start + _EVAL_BATCH]))
  return correct


def train(recipe: Recipe) -> Trained:
  """Trains a classifier by `recipe`; reports its held-out accuracy.

  Raises:
    UserError: the data cannot be read, or there is not a batch of it.
  """
  images, labels = _read_split(recipe.data, recipe.train_split)
  steps_per_epoch = len(labels) // recipe.batch_size
  if steps_per_epoch == 0:
    raise UserError(f"{recipe.data} split {recipe.train_split!r} has "
                    f"{len(labels)} digits, fewer than one batch "
                    f"({recipe.batch_size})")
  # Read before training, so that a bad split fails before minutes of work.
  heldout_images, heldout_labels = _read_split(recipe.data,
                                               recipe.heldout_split)
  keras.utils.set_random_seed(recipe.seed)
  model = build()
  # The same layers, trained through the logits alone.
  classifier = keras.Model(model.inputs, model.outputs[1])
  classifier.compile(
      optimizer=_optimizer(recipe, steps_per_epoch),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=["accuracy"])
  logging.info("Training on %d digits of %s %s for %d epochs",
               len(labels), recipe.data, recipe.train_split, recipe.epochs)
  start = time.monotonic()
  classifier.fit(_training_batches(images, labels, recipe),
                 epochs=recipe.epochs, steps_per_epoch=steps_per_epoch,
                 callbacks=[_log_epoch(recipe.epochs)], shuffle=False,
                 verbose=0)  # The dataset shuffles, with the recipe's seed.
  seconds = time.monotonic() - start
  correct = count_correct(model, heldout_images, heldout_labels)
  return Trained(model, recipe, correct, len(heldout_labels), seconds)


# ------------------------------------------------------------ save / load ---

def save(trained: Trained, out: str) -> tuple[str, str]:
  """Writes `out`.weights.h5 and its metadata `out`.json.

  Returns:
    The paths of the weights and the metadata.
  """
  weights_path = out + _WEIGHTS_SUFFIX
  json_path = metadata_path(weights_path)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  # Weights first: should the metadata then fail to be written, the old
  # sha256 it holds no longer matches, and `load` says so.
  files.replace_atomically(weights_path, trained.model.save_weights)
  recipe = trained.recipe
  metadata = {
      "version": VERSION,
      "weights_file": os.path.basename(weights_path),
      "weights_sha256": features.file_sha256(weights_path),
      "heldout_accuracy": trained.heldout_accuracy,
      "heldout_correct": trained.heldout_correct,
      "heldout_size": trained.heldout_size,
      "recipe": dataclasses.asdict(recipe),
      "optimizer": "AdamW (no decay on batch norm and biases), cross-entropy "
                   "on logits, no label smoothing",
      "lr_schedule": f"linear warm-up over {recipe.warmup_epochs} epochs to "
                     f"{recipe.learning_rate}, cosine decay to 0",
      "augmentation": f"one random affine per image: shift up to "
                      f"{recipe.max_shift} px, rotation up to "
                      f"{recipe.max_rotation} degrees, zoom up to "
                      f"{recipe.max_zoom}; bilinear, background fill; "
                      "training only",
      "model_selection": "none: fixed epoch count, no validation, the "
                         "held-out split is only evaluated once at the end",
      "architecture": architecture(trained.model),
      "inputs": "float32 [B, 28, 28, 1] in [-1, 1]",
      "outputs": f"[embedding float32 [B, {EMBEDDING_SIZE}], logits float32 "
                 f"[B, {NUM_CLASSES}]]",
      "num_parameters": trained.model.count_params(),
      "train_seconds": round(trained.train_seconds, 1),
      "cpu_count": os.cpu_count(),
      "command": retrain_command(recipe, out),
      "tensorflow_version": tf.__version__,
      "keras_version": keras.__version__,
  }

  files.write_atomically(json_path, json.dumps(metadata, indent=2) + "\n")
  return weights_path, json_path


def _fix_hint() -> str:
  """How to get a valid weights file, from the repository root."""
  default_out = os.path.relpath(DEFAULT_PATH.removesuffix(_WEIGHTS_SUFFIX),
                                _REPO)
  return (f"Restore the shipped file (git checkout -- {default_out}"
          f"{_WEIGHTS_SUFFIX} {default_out}{_METADATA_SUFFIX}) or retrain it "
          f"from the repository root: {retrain_command(Recipe(), default_out)}")


def _check_sha256(path: str) -> None:
  """Compares the file with the sha256 in its metadata, if there is one."""
  json_path = metadata_path(path)
  if not os.path.exists(json_path):
    return
  try:
    with open(json_path, encoding="utf-8") as f:
      expected = json.load(f)["weights_sha256"]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(f"cannot read the sha256 of {path} from {json_path} "
                    f"({e}). {_fix_hint()}") from None
  actual = features.file_sha256(path)
  if actual != expected:
    raise UserError(f"MNIST classifier weights {path} are corrupt or not the "
                    f"file {json_path} describes: sha256 {actual}, expected "
                    f"{expected}. {_fix_hint()}")


def load(path: str = DEFAULT_PATH) -> keras.Model:
  """The classifier with the weights from `path` (see `build`).

  Raises:
    UserError: `path` is missing, corrupt (checked against the sha256 in the
      metadata next to it, if present) or not weights of this network.
  """
  if not os.path.isfile(path):
    raise UserError(f"MNIST classifier weights {path} do not exist. "
                    f"{_fix_hint()}")
  if not path.endswith(_WEIGHTS_SUFFIX):
    raise UserError(f"MNIST classifier weights {path}: the file name must end "
                    f"in {_WEIGHTS_SUFFIX}. {_fix_hint()}")
  _check_sha256(path)
  model = build()
  try:
    model.load_weights(path)
  except (OSError, ValueError, KeyError) as e:
    reason = str(e).strip().splitlines()[0][:200] if str(e) else repr(e)
    raise UserError(f"cannot load MNIST classifier weights {path} ({reason}); "
                    f"it is not a {_STEM} weights file. "
                    f"{_fix_hint()}") from None
  return model
