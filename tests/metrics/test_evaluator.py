"""trainer/metrics/evaluator.py on real MNIST, real networks and real
extractors."""

import dataclasses
import socket

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import cpu_strategy, load_config
from trainer.data import pipeline
from trainer.data import sources
from trainer.errors import UserError
from trainer import features
from trainer import metrics
from trainer.metrics import evaluator as evaluator_lib
from trainer import state as state_lib

# Small counts: these tests check behaviour; BENCHMARKS.md has real figures.
_SMALL = {"eval.num_samples": 400, "eval.num_real": 400,
          "eval.kid_subsets": 10, "eval.kid_subset_size": 200,
          "eval.batch_size": 100}


def _config(mnist_dir, cache_dir, **overrides):
  return load_config("smoke", **{
      "data.source": f"idx:{mnist_dir}", "data.split": "test",
      "model.g_width": 8, "model.d_width": 8, "eval.cache_dir": str(cache_dir),
      **_SMALL, **overrides})


def _evaluate(config, strategy, workdir, state=None) -> dict:
  state = state or state_lib.build_state(config, strategy)
  evaluator = evaluator_lib.Evaluator(config, strategy, state, str(workdir),
                                      is_chief=True)
  return evaluator.evaluate(step=0)


@pytest.mark.slow
def test_metrics_do_not_depend_on_batch_size_or_replicas(mnist_dir, tmp_path):
  results = []
  for replicas, batch in ((1, 100), (2, 50), (2, 400)):
    config = _config(mnist_dir, tmp_path / f"cache_{replicas}_{batch}",
                     **{"eval.batch_size": batch})
    results.append(_evaluate(config, cpu_strategy(replicas),
                             tmp_path / "run"))
  names = ("fid", "kid", "inception_score", "precision", "recall", "modes",
           "mode_kl")
  for result in results[1:]:
    for name in names:
      np.testing.assert_allclose(result[name], results[0][name], rtol=1e-4,
                                 atol=1e-6, err_msg=name)


@pytest.mark.slow
def test_real_features_are_cached_and_a_bad_cache_is_recomputed(
    mnist_dir, tmp_path):
  config = _config(mnist_dir, tmp_path / "cache")
  first = _evaluate(config, cpu_strategy(2), tmp_path / "run")
  cached = list((tmp_path / "cache").glob("real_features_*.npz"))
  assert len(cached) == 1, cached
  # A changed sample count is another key; a damaged file is recomputed.
  cached[0].write_bytes(b"not an npz file")
  again = _evaluate(config, cpu_strategy(2), tmp_path / "run")
  assert again["fid"] == pytest.approx(first["fid"], rel=1e-6)
  assert np.load(cached[0])["embeddings"].shape == (400, 128)
  _evaluate(_config(mnist_dir, tmp_path / "cache",
                    **{"eval.num_real": 300}), cpu_strategy(2),
            tmp_path / "run")
  assert len(list((tmp_path / "cache").glob("real_features_*.npz"))) == 2


def _constant_generator(image: np.ndarray, latent_dim: int) -> keras.Model:
  """A real Keras generator whose every sample is `image` ([-1, 1])."""
  z = keras.Input([latent_dim])
  flat = keras.layers.Dense(
      image.size, kernel_initializer="zeros",
      bias_initializer=keras.initializers.Constant(image.reshape(-1)))(z)
  return keras.Model(z, keras.layers.Reshape(image.shape)(flat))


def test_a_generator_of_one_digit_has_one_mode(mnist_dir, tmp_path):
  config = _config(mnist_dir, tmp_path / "cache")
  strategy = cpu_strategy(2)
  source = sources.load(config.data.source, sources.Request(
      split="test", image_size=28, channels=1, resize=False))
  seven = pipeline.first_examples(source, 1)["image"][0]  # the first is a 7
  state = state_lib.build_state(config, strategy)
  with strategy.scope():
    collapsed = dataclasses.replace(
        state, generator_ema=_constant_generator(seven, 100))
  result = _evaluate(config, strategy, tmp_path / "run", collapsed)
  assert result["modes"] == 1
  # Its class histogram is all on one digit of ten: KL = log(1/p(7)) > 2.
  assert result["mode_kl"] > 2.0
  assert result["recall"] < 0.2
  assert result["inception_score"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.slow
def test_stacked_mnist_of_real_digits_has_1000_modes(mnist_dir):
  source = sources.load(f"stacked_mnist:idx:{mnist_dir}", sources.Request(
      split="test", image_size=28, channels=3, resize=False))
  extractor = features.build("mnist_classifier", "", source.image_shape)
  assert extractor.num_classes == 1000

  # Every one of the 1000 digit triples, 4 times: the first 4 examples of
  # each in the source's first 24,000 (where the rarest occurs 6 times).
  # Read once, classified in chunks of 1000.
  first = source.read(tf.range(24_000))
  indices = np.concatenate([np.flatnonzero(first["label"].numpy() == mode)[:4]
                            for mode in range(1000)])
  assert indices.size == 4000
  images = tf.gather(first["image"], indices)
  labels = tf.gather(first["label"], indices).numpy()
  embeddings, probabilities = zip(*(
      extractor.extract(pipeline.to_unit_range(chunk))
      for chunk in tf.split(images, 4)))
  classified = metrics.Features(
      np.concatenate(embeddings).astype(np.float64),
      np.concatenate(probabilities).astype(np.float64))
  # Each channel is classified on its own: the mode is right when all three
  # digits are (the classifier's error is about 1% a digit).
  assert np.mean(classified.probabilities.argmax(1) == labels) > 0.95
  # The classifier's histogram of these images against their true one: the
  # same images, so only its errors count (two independent samples of 4,000
  # would differ by a KL of about (1000 - 1) / 4000 = 0.25 from noise).
  truth = metrics.Features(classified.embeddings, np.eye(1000)[labels])
  result = metrics.compute(["class_coverage"], truth, classified,
                           metrics.Settings())
  assert result["modes"] == 1000
  assert result["mode_kl"] < 0.01


@pytest.mark.slow
def test_inception_v3_reads_weights_from_a_local_file(mnist_dir, tmp_path):
  weights = tmp_path / "inception_v3.weights.h5"
  # Untrained weights (ImageNet's cannot be downloaded here): this checks the
  # loading from eval.extractor_path and the pipeline, not feature quality.
  keras.applications.InceptionV3(weights=None).save_weights(weights)
  config = _config(mnist_dir, tmp_path / "cache", **{
      "eval.extractor": "inception_v3", "eval.extractor_path": str(weights),
      "eval.metrics": "fid,inception_score", "eval.num_samples": 8,
      "eval.num_real": 8, "eval.batch_size": 8, "eval.is_splits": 2})
  # One replica: tracing InceptionV3 once per replica is most of the time.
  result = _evaluate(config, cpu_strategy(1), tmp_path / "run")
  assert np.isfinite(result["fid"]) and result["fid"] >= 0
  assert result["protocol"]["extractor"] == "inception_v3"
  real = np.load(next((tmp_path / "cache").glob("*.npz")))
  assert real["embeddings"].shape == (8, 2048)
  assert real["probabilities"].shape == (8, 1000)


def _reachable(host: str) -> bool:
  try:
    socket.create_connection((host, 443), timeout=5).close()
    return True
  except OSError:
    return False


def test_inception_v3_weights_that_cannot_be_downloaded_are_explained():
  if _reachable("storage.googleapis.com"):
    pytest.skip("online: Keras would download InceptionV3's weights")
  with pytest.raises(UserError, match="eval.extractor_path"):
    features.build("inception_v3", "", (28, 28, 1))


@pytest.mark.parametrize("overrides, message", [
    ({"eval.metrics": "fid,sharpness"}, "unknown metric 'sharpness'"),
    ({"eval.kid_subset_size": 1000}, "eval.kid_subset_size"),
    ({"eval.num_real": 20_000}, "has only 10000 images"),
    ({"eval.extractor": "vgg"}, "valid: inception_v3, mnist_classifier"),
    ({"eval.extractor_path": "/nonexistent/classifier.weights.h5"},
     "/nonexistent/classifier.weights.h5"),
    ({"eval.batch_size": 101}, "not divisible by the 2 replicas"),
])
def test_bad_settings_are_refused_with_one_message(mnist_dir, tmp_path,
                                                   overrides, message):
  config = _config(mnist_dir, tmp_path / "cache", **overrides)
  with pytest.raises(UserError, match=message):
    _evaluate(config, cpu_strategy(2), tmp_path / "run")
  assert not list(tmp_path.glob("cache/*"))
