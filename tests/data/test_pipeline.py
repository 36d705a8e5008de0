"""Tests for trainer.data.pipeline: order, resume, sharding and value range."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import cpu_strategy
from trainer.data import packed
from trainer.data import pipeline
from trainer.data import sources

# The in-memory source: image i is 2x2 pixels of value i, so a pipeline
# element tells which source indices it holds.
NUM_IDS = 24
GLOBAL_BATCH = 4
SEED = 7


def _ids_source(num_examples: int = NUM_IDS) -> sources.Source:
  images = np.broadcast_to(
      np.arange(num_examples, dtype=np.uint8)[:, None, None, None],
      (num_examples, 2, 2, 1))
  request = sources.Request(split="train", image_size=2, channels=1,
                            resize=False)
  return sources.in_memory("ids", np.ascontiguousarray(images),
                           np.zeros(num_examples, np.int32), 1, request)


# `-m "not slow"` feeds the in-memory one only (tests/data/test_packed.py
# reads packed datasets by index).
@pytest.fixture(scope="module", params=[
    "in_memory", pytest.param("packed", marks=pytest.mark.slow)])
def ids_source(request, tmp_path_factory) -> sources.Source:
  """The ids source, in memory or packed (read by index from ArrayRecord)."""
  source = _ids_source()
  if request.param == "in_memory":
    return source
  root = tmp_path_factory.mktemp("ids")
  images = source.read(tf.range(NUM_IDS, dtype=tf.int64))["image"]
  for i, image in enumerate(images):
    tf.io.write_file(str(root / "png" / f"{i:02d}.png"),
                     tf.io.encode_png(image))
  packed.create(packed.Settings(source=f"folder:{root / 'png'}", split="all",
                                channels=1, shard_size=5), str(root / "ids"))
  return sources.load(f"packed:{root / 'ids'}", sources.Request(
      split="train", image_size=2, channels=1, resize=False))


def _to_ids(images: np.ndarray) -> np.ndarray:
  """float32 [..., 2, 2, 1] images of an ids source -> int ids [...]."""
  values = np.round((images + 1.0) * 127.5).astype(int)
  # Every pixel of an image holds its id.
  np.testing.assert_array_equal(values.min(axis=(-3, -2, -1)),
                                values.max(axis=(-3, -2, -1)))
  return values[..., 0, 0, 0]


def _stream(num_examples: int, count: int, *, start: int = 0,
            seed: int = SEED, shuffle: bool = True) -> np.ndarray:
  """The first `count` indices of index_stream(start=start)."""
  stream = pipeline.index_stream(num_examples, seed=seed, shuffle=shuffle,
                                 start=start)
  return np.array(list(stream.take(count).as_numpy_iterator()))


def _run(source: sources.Source, *, replicas: int, steps: int, n_disc: int,
         start_step: int = 0, shuffle: bool = True,
         global_batch: int = GLOBAL_BATCH) -> list[list[np.ndarray]]:
  """Per step, per replica: its float32 [n_disc, batch/replicas, H, W, C]."""
  strategy = cpu_strategy(replicas)
  input_fn = pipeline.make_input_fn(
      source, global_batch=global_batch, n_disc=n_disc, seed=SEED,
      shuffle=shuffle, start_step=start_step)
  iterator = iter(strategy.distribute_datasets_from_function(input_fn))
  return [[t["image"].numpy() for t in
           strategy.experimental_local_results(next(iterator))]
          for _ in range(steps)]


# ---------------------------------------------------------- index_stream ---


def test_shuffled_epochs_are_distinct_permutations():
  epochs = _stream(10, 60).reshape(6, 10)
  for epoch in epochs:
    np.testing.assert_array_equal(np.sort(epoch), np.arange(10))
  assert len({tuple(epoch) for epoch in epochs}) == len(epochs)


def test_stream_is_reproducible_from_the_seed():
  np.testing.assert_array_equal(_stream(10, 30), _stream(10, 30))
  assert not np.array_equal(_stream(10, 30), _stream(10, 30, seed=SEED + 1))


def test_unshuffled_stream_repeats_the_source_order():
  np.testing.assert_array_equal(_stream(10, 30, shuffle=False),
                                np.tile(np.arange(10), 3))


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("start", [1, 7, 10, 13, 29, 40])
def test_stream_from_start_is_the_tail_of_the_whole_stream(start, shuffle):
  whole = _stream(10, start + 25, shuffle=shuffle)
  np.testing.assert_array_equal(
      _stream(10, 25, start=start, shuffle=shuffle), whole[start:])


# --------------------------------------------------------- to_unit_range ---


@pytest.mark.parametrize("start_step", [0, 5])
def test_first_step_reading_is_the_first_step_whose_batch_holds_the_index(
    start_step):
  per_step = GLOBAL_BATCH * 2
  steps = _stream(NUM_IDS, 12 * per_step, start=start_step * per_step
                  ).reshape(12, per_step)
  for index in (0, 5, NUM_IDS - 1):
    first = next(k for k, batch in enumerate(steps) if index in batch)
    assert pipeline.first_step_reading(
        index, NUM_IDS, seed=SEED, shuffle=True, start_step=start_step,
        global_batch=GLOBAL_BATCH, n_disc=2) == start_step + first + 1


def test_to_unit_range_maps_the_byte_range_onto_minus_one_to_one():
  values = pipeline.to_unit_range(tf.constant([0, 51, 255], tf.uint8))
  assert values.dtype == tf.float32
  # Exact at both ends: G's tanh output range, scaled once (not by 255 twice).
  assert values.numpy()[0] == -1.0
  assert values.numpy()[2] == 1.0
  np.testing.assert_allclose(values.numpy()[1], 51 / 127.5 - 1, rtol=1e-6)


# --------------------------------------------------------- make_input_fn ---


@pytest.fixture(scope="module")
def mnist_source(mnist_dir) -> sources.Source:
  request = sources.Request(split="test", image_size=28, channels=1,
                            resize=False)
  return sources.load(f"idx:{mnist_dir}", request)


@pytest.mark.parametrize("replicas", [1, 2], ids=["1replica", "2replicas"])
def test_replica_elements_have_static_shape_and_unit_range(
    mnist_source, replicas):
  n_disc, global_batch = 2, 16
  strategy = cpu_strategy(replicas)
  dataset = strategy.distribute_datasets_from_function(pipeline.make_input_fn(
      mnist_source, global_batch=global_batch, n_disc=n_disc, seed=SEED,
      shuffle=True, start_step=0))
  specs = dataset.element_spec
  image_specs = tf.nest.flatten(specs["image"], expand_composites=True)
  label_specs = tf.nest.flatten(specs["label"], expand_composites=True)
  assert len(image_specs) == len(label_specs) == replicas
  for spec in image_specs:
    assert spec.shape == (n_disc, global_batch // replicas, 28, 28, 1)
    assert spec.shape.is_fully_defined()
    assert spec.dtype == tf.float32
  for spec in label_specs:
    assert spec.shape == (n_disc, global_batch // replicas)
    assert spec.dtype == tf.int32

  per_replica = strategy.experimental_local_results(next(iter(dataset)))
  values = np.stack([t["image"].numpy() for t in per_replica])
  assert values.min() == -1.0 and values.max() == 1.0
  # Real digits use the whole range, not just its ends.
  assert np.mean((values > -1) & (values < 1)) > 0.01


def test_unshuffled_batches_follow_the_source(mnist_source):
  n_disc, global_batch = 2, 8
  step = _run(mnist_source, replicas=1, steps=1, n_disc=n_disc,
              shuffle=False, global_batch=global_batch)[0][0]
  expected = mnist_source.read(tf.range(n_disc * global_batch,
                                        dtype=tf.int64))["image"]
  expected = tf.reshape(pipeline.to_unit_range(expected),
                        [n_disc, global_batch, 28, 28, 1])
  np.testing.assert_array_equal(step, expected.numpy())


@pytest.mark.parametrize("n_disc", [1, 2], ids=["n_disc1", "n_disc2"])
@pytest.mark.parametrize("replicas", [1, 2], ids=["1replica", "2replicas"])
def test_replicas_together_take_the_global_batch_of_each_d_update(
    replicas, n_disc):
  steps = 7  # More than one epoch of the 24 ids.
  run = _run(_ids_source(), replicas=replicas, steps=steps, n_disc=n_disc)
  # Global positions, [step, d_update, global_batch].
  expected = _stream(NUM_IDS, steps * n_disc * GLOBAL_BATCH).reshape(
      steps, n_disc, GLOBAL_BATCH)
  for step, per_replica in enumerate(run):
    # Replica r holds rows r * batch/replicas ... of each D update's batch.
    together = np.concatenate([_to_ids(x) for x in per_replica], axis=1)
    np.testing.assert_array_equal(together, expected[step],
                                  err_msg=f"step {step}")


@pytest.mark.parametrize("n_disc", [1, 2], ids=["n_disc1", "n_disc2"])
@pytest.mark.parametrize("start_step", [1, 4])
def test_start_step_resumes_where_step_zero_run_would_be(
    ids_source, start_step, n_disc):
  source, steps = ids_source, 3
  from_zero = _run(source, replicas=2, steps=start_step + steps, n_disc=n_disc)
  resumed = _run(source, replicas=2, steps=steps, n_disc=n_disc,
                 start_step=start_step)
  for step in range(steps):
    for replica in range(2):
      np.testing.assert_array_equal(resumed[step][replica],
                                    from_zero[start_step + step][replica])


@pytest.mark.parametrize("replicas", [1, 2], ids=["1replica", "2replicas"])
def test_labels_travel_with_their_images(mnist_source, replicas):
  # Unshuffled, step 0 holds examples 0..31 in order: [n_disc, global batch].
  n_disc, global_batch = 2, 16
  strategy = cpu_strategy(replicas)
  dataset = strategy.distribute_datasets_from_function(pipeline.make_input_fn(
      mnist_source, global_batch=global_batch, n_disc=n_disc, seed=SEED,
      shuffle=False, start_step=0))
  per_replica = strategy.experimental_local_results(next(iter(dataset)))
  labels = np.concatenate([e["label"].numpy() for e in per_replica], axis=1)
  images = np.concatenate([e["image"].numpy() for e in per_replica], axis=1)
  expected = mnist_source.read(tf.range(n_disc * global_batch,
                                        dtype=tf.int64))
  np.testing.assert_array_equal(
      labels, expected["label"].numpy().reshape(n_disc, global_batch))
  np.testing.assert_array_equal(
      images, pipeline.to_unit_range(expected["image"]).numpy().reshape(
          images.shape))
  assert len(set(labels.ravel())) > 5  # real digits, not a constant


@pytest.mark.parametrize("n_disc", [1, 2], ids=["n_disc1", "n_disc2"])
def test_two_pipelines_feed_what_one_feeds_to_the_same_replicas(
    ids_source, n_disc):
  # Workers (one pipeline each) get the rows that replicas of one process
  # get: what is drawn per row meets the same example either way.
  steps, source = 7, ids_source
  one = _run(source, replicas=2, steps=steps, n_disc=n_disc)
  input_fn = pipeline.make_input_fn(
      source, global_batch=GLOBAL_BATCH, n_disc=n_disc, seed=SEED,
      shuffle=True, start_step=0)
  workers = []
  for worker in (0, 1):
    context = tf.distribute.InputContext(num_input_pipelines=2,
                                         input_pipeline_id=worker,
                                         num_replicas_in_sync=2)
    elements = list(input_fn(context).take(steps).as_numpy_iterator())
    for step, element in enumerate(elements):
      np.testing.assert_array_equal(_to_ids(element["image"]),
                                    _to_ids(one[step][worker]),
                                    err_msg=f"worker {worker}, step {step}")
    workers.append([_to_ids(e["image"]) for e in elements])
  # The two workers' halves, side by side, are each D update's global batch.
  expected = _stream(NUM_IDS, steps * n_disc * GLOBAL_BATCH).reshape(
      steps, n_disc, GLOBAL_BATCH)
  np.testing.assert_array_equal(np.concatenate(workers, axis=-1), expected)
