"""Tests for the shipped MNIST classifier and the command that retrains it."""

import json
import pathlib
import shlex
import shutil
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import run_command
from trainer import features
from trainer.data import pipeline
from trainer.data import sources
from trainer.errors import UserError
from trainer.features import mnist_classifier

HELDOUT_SPLIT = "test[9000:]"
MIN_HELDOUT_ACCURACY = 0.985


def _read(mnist_dir: pathlib.Path,
          split: str) -> tuple[np.ndarray, np.ndarray]:
  """Images uint8 [N, 28, 28, 1] and labels [N] of a split of real MNIST."""
  source = sources.load(f"idx:{mnist_dir}", sources.Request(
      split=split, image_size=28, channels=1, resize=False))
  data = source.read(tf.range(source.num_examples, dtype=tf.int64))
  return data["image"].numpy(), data["label"].numpy()


@pytest.fixture(scope="module")
def shipped() -> keras.Model:
  return mnist_classifier.load()


def _metadata(weights_path: str) -> dict:
  with open(mnist_classifier.metadata_path(weights_path),
            encoding="utf-8") as f:
    return json.load(f)


def test_shipped_classifier_reaches_its_recorded_heldout_accuracy(
    shipped, mnist_dir):
  metadata = _metadata(mnist_classifier.DEFAULT_PATH)
  assert metadata["version"] == mnist_classifier.VERSION
  assert metadata["recipe"]["heldout_split"] == HELDOUT_SPLIT
  assert metadata["recipe"]["train_split"] == "test[:9000]"
  images, labels = _read(mnist_dir, HELDOUT_SPLIT)
  correct = mnist_classifier.count_correct(shipped, images, labels)
  assert correct / len(labels) >= MIN_HELDOUT_ACCURACY
  assert len(labels) == metadata["heldout_size"]
  # Another CPU's rounding may move a digit that lies on a decision boundary.
  assert abs(correct - metadata["heldout_correct"]) <= 1, (
      correct, metadata["heldout_correct"])


def test_outputs_have_their_shapes_and_do_not_depend_on_the_batch(
    shipped, mnist_dir):
  images, _ = _read(mnist_dir, "test[9000:9100]")
  images = pipeline.to_unit_range(images)  # [100, 28, 28, 1]
  embedding, logits = shipped(images, training=False)
  assert embedding.shape == (100, mnist_classifier.EMBEDDING_SIZE)
  assert logits.shape == (100, 10)
  assert embedding.dtype == logits.dtype == tf.float32
  in_sevens = [shipped(images[i:i + 7], training=False)
               for i in range(0, 100, 7)]
  np.testing.assert_allclose(
      np.concatenate([e for e, _ in in_sevens]), embedding, atol=1e-4,
      rtol=1e-4)
  np.testing.assert_allclose(
      np.concatenate([l for _, l in in_sevens]), logits, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_retrain_command_writes_a_loadable_classifier(mnist_dir, tmp_path):
  out = tmp_path / "classifier"
  code, stdout, stderr = run_command(
      sys.executable, "-m", "trainer.train_classifier",
      f"--data=idx:{mnist_dir}", "--train_split=test[:2000]",
      f"--heldout_split={HELDOUT_SPLIT}", f"--out={out}", "--epochs=1")
  assert code == 0, stderr
  assert "held-out accuracy" in stdout, stdout
  weights = f"{out}.weights.h5"
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      "classifier.json", "classifier.weights.h5"]  # No temporary files left.
  metadata = _metadata(weights)
  assert metadata["recipe"]["epochs"] == 1
  assert "--train_split=test[:2000]" in shlex.split(metadata["command"])
  model = mnist_classifier.load(weights)
  assert model.count_params() == metadata["num_parameters"]


def _truncate(path: pathlib.Path) -> None:
  path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


@pytest.mark.parametrize("damage, words", [
    ("missing", ["do not exist"]),
    ("truncated", ["corrupt", "sha256"]),
    # Without the metadata there is no sha256; reading the file fails.
    ("truncated_without_metadata", ["cannot load"]),
])
def test_bad_weights_file_is_one_clear_error(tmp_path, damage, words):
  weights = tmp_path / "mnist_classifier_v1.weights.h5"
  if damage != "missing":
    shutil.copy(mnist_classifier.DEFAULT_PATH, weights)
    shutil.copy(mnist_classifier.metadata_path(mnist_classifier.DEFAULT_PATH),
                mnist_classifier.metadata_path(str(weights)))
    _truncate(weights)
  if damage == "truncated_without_metadata":
    pathlib.Path(mnist_classifier.metadata_path(str(weights))).unlink()
  with pytest.raises(UserError) as error:
    mnist_classifier.load(str(weights))
  message = str(error.value)
  for word in [str(weights), "python -m trainer.train_classifier", *words]:
    assert word in message, message


def test_images_of_another_size_are_classified_after_resizing(mnist_dir):
  # MNIST trained at 32x32: the same digits, resized up, classified as well
  # as at 28x28, under an identity of their own.
  images, labels = _read(mnist_dir, "test[9000:9500]")
  digits = pipeline.to_unit_range(images)  # [500, 28, 28, 1]
  at_32 = tf.image.resize(digits, [32, 32], method="bilinear")
  native = features.build("mnist_classifier", "", (28, 28, 1))
  resized = features.build("mnist_classifier", "", (32, 32, 1))
  _, probabilities = resized.extract(at_32)
  accuracy = np.mean(np.argmax(probabilities, axis=1) == labels)
  assert accuracy >= MIN_HELDOUT_ACCURACY - 0.01, accuracy
  assert resized.identity != native.identity
  assert resized.identity.endswith("-from-32x32")
  # Stacked MNIST at 32x32 too: each channel's digit is classified.
  stacked = features.build("mnist_classifier", "", (32, 32, 3))
  rolled = tf.concat([at_32, tf.roll(at_32, 1, 0), tf.roll(at_32, 2, 0)], -1)
  _, modes = stacked.extract(rolled)
  expected = 100 * labels + 10 * np.roll(labels, 1) + np.roll(labels, 2)
  assert np.mean(np.argmax(modes, axis=1) == expected) >= 0.95


def test_a_channel_count_it_cannot_read_is_one_clear_error():
  with pytest.raises(UserError, match=(
      "mnist_classifier reads images with 1 channel .MNIST. or 3 .Stacked "
      "MNIST.; these are 32x32x2. Use eval.extractor=inception_v3")):
    features.build("mnist_classifier", "", (32, 32, 2))
