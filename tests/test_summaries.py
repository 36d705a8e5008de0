"""A short run's TensorBoard events, read back with TensorBoard's reader."""

import io

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from tests.conftest import cpu_strategy, load_config
from trainer import loop
from trainer import summaries


@pytest.fixture(scope="module")
def events(tmp_path_factory, mnist_dir):
  workdir = tmp_path_factory.mktemp("run")
  config = load_config(**{
      "data.source": f"idx:{mnist_dir}", "data.split": "test",
      "model.g_width": 8, "model.d_width": 8, "train.batch_size": 8,
      "train.steps": 4, "train.log_every": 2, "train.image_every": 2,
      "train.checkpoint_every": 4, "train.grid_size": 9,
      "train.histogram_samples": 30})
  loop.run(config, str(workdir), cpu_strategy(2))
  reader = event_accumulator.EventAccumulator(
      str(workdir / "train"), size_guidance={event_accumulator.TENSORS: 0})
  reader.Reload()
  return reader


def _values(reader, tag):
  return {e.step: tf.make_ndarray(e.tensor_proto) for e in reader.Tensors(tag)}


SCALARS = ["losses/d", "losses/g", "d_output/real", "d_output/fake",
           "grad_norm/d", "grad_norm/g", "perf/examples_per_sec",
           "perf/steps_per_sec", "progress/seconds_left",
           "progress/fraction_done"]


@pytest.mark.parametrize("tag", SCALARS)
def test_scalars_at_every_log_step(events, tag):
  values = _values(events, tag)
  assert sorted(values) == [2, 4]
  assert all(np.isfinite(v) and v.shape == () for v in values.values())


def test_scalar_meanings(events):
  fraction = _values(events, "progress/fraction_done")
  assert fraction[2] == pytest.approx(0.5) and fraction[4] == pytest.approx(1)
  assert _values(events, "progress/seconds_left")[4] == pytest.approx(0)
  for tag in ("d_output/real", "d_output/fake"):
    assert all(0 < v < 1 for v in _values(events, tag).values())
  rate = _values(events, "perf/examples_per_sec")
  steps = _values(events, "perf/steps_per_sec")
  assert rate[4] == pytest.approx(8 * steps[4], rel=1e-5)


@pytest.mark.parametrize("tag", ["samples/generator",
                                 "samples/generator_ema"])
def test_fixed_noise_grid(events, tag):
  grids = _values(events, tag)
  assert sorted(grids) == [0, 2, 4]
  # TF2 image summaries hold [width, height, png bytes...].
  width, height, png = grids[4]
  image = np.array(Image.open(io.BytesIO(png)))
  assert (int(width), int(height)) == (84, 84)  # 9 images, 3 x 3 of 28 x 28
  assert image.shape[:2] == (84, 84)
  assert image.std() > 0
  # Same noise, trained generator: the grid changes as training goes on.
  first = np.array(Image.open(io.BytesIO(grids[0][2])))
  assert not np.array_equal(first, image)


@pytest.mark.parametrize("tag", ["d_probability/real", "d_probability/fake"])
def test_discriminator_probability_histograms(events, tag):
  histograms = _values(events, tag)
  assert sorted(histograms) == [0, 2, 4]
  buckets = histograms[4]  # [k, 3]: left edge, right edge, count
  assert buckets.shape[1] == 3
  assert buckets[:, 2].sum() == pytest.approx(30)
  assert buckets[:, 0].min() >= 0 and buckets[:, 1].max() <= 1


def test_config_text(events):
  (event,) = events.Tensors("config")
  text = tf.make_ndarray(event.tensor_proto).item().decode()
  assert '"batch_size": 8' in text and '"steps": 4' in text


def test_image_grid_tiles_in_rows():
  images = np.stack([np.full((2, 3, 1), v, np.float32)
                     for v in (-1.0, 0.0, 1.0)])
  grid = summaries.image_grid(images)
  assert grid.shape == (1, 4, 6, 1)  # 2 x 2 tiles, the last one empty
  assert grid[0, 0, 0, 0] == 0 and grid[0, 0, 3, 0] == 128
  assert grid[0, 2, 0, 0] == 255 and grid[0, 2, 3, 0] == 0
