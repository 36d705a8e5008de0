"""The sharded, resumable input pipeline.

Order: the examples are visited epoch after epoch, each epoch a permutation of
the whole source drawn from (seed, epoch). Global position p (counting every
example fed to any replica since step 0) maps to epoch p // N, and a run
resumed at step s starts at position s * global_batch * n_disc: no example is
replayed and none skipped, and skipping costs nothing.

Sharding: row j of a D update's global batch is the example at position
start + j, and the replica with global id r holds rows r * b ... (r + 1) * b
- 1 (b per replica), whatever the number of input pipelines: pipeline i of
k feeds replicas i * R ... (i + 1) * R - 1 (R = replicas per pipeline) and
reads only their examples. A global batch is then split alike over
replicas of one process and over workers, so everything drawn per row (the
noise, the augmentation's parameters) meets the same example in both.
"""

import numpy as np
import tensorflow as tf

from trainer.data.sources import Source


def _epoch_order(epoch: tf.Tensor, num_examples: int, seed: int,
                 shuffle: bool) -> tf.data.Dataset:
  indices = tf.range(num_examples, dtype=tf.int64)
  if shuffle:
    indices = tf.random.experimental.index_shuffle(
        indices, seed=tf.stack([tf.constant(seed, tf.int64), epoch]),
        max_index=num_examples - 1)
  return tf.data.Dataset.from_tensor_slices(indices)


def index_stream(num_examples: int, *, seed: int, shuffle: bool,
                 start: int) -> tf.data.Dataset:
  """Source indices from global position `start` on, forever."""
  first_epoch, offset = divmod(start, num_examples)
  epochs = tf.data.Dataset.range(first_epoch, tf.int64.max)
  stream = epochs.flat_map(
      lambda e: _epoch_order(e, num_examples, seed, shuffle))
  return stream.skip(offset)


def first_step_reading(index: int, num_examples: int, *, seed: int,
                       shuffle: bool, start_step: int, global_batch: int,
                       n_disc: int) -> int:
  """The first step after `start_step` whose examples include `index`.

  Steps are numbered as in the training log: step s reads global positions
  (s - 1) * global_batch * n_disc onwards.
  """
  per_step = global_batch * n_disc
  stream = index_stream(num_examples, seed=seed, shuffle=shuffle,
                        start=start_step * per_step).batch(per_step)
  # Every index occurs once per epoch: within an epoch and a step of here.
  for offset, indices in enumerate(stream.take(num_examples // per_step + 2)):
    if index in indices.numpy():
      return start_step + offset + 1
  raise ValueError(f"index {index} is not in [0, {num_examples})")


def to_unit_range(images: tf.Tensor) -> tf.Tensor:
  """uint8 [0, 255] -> float32 [-1, 1], the range of G's tanh output."""
  return tf.cast(images, tf.float32) / 127.5 - 1.0


def make_input_fn(source: Source, *, global_batch: int, n_disc: int, seed: int,
                  shuffle: bool, start_step: int):
  """Returns the dataset function for `distribute_datasets_from_function`.

  Each element is one replica's data for one training step, with static
  shapes: {"image": float32 [n_disc, per_replica_batch, H, W, C] in [-1, 1],
  "label": int32 [n_disc, per_replica_batch]} (one batch per D update).
  """

  def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
    per_replica = context.get_per_replica_batch_size(global_batch)
    # This pipeline's replicas, which it feeds in turn, one element each.
    replicas = context.num_replicas_in_sync // context.num_input_pipelines
    start = start_step * global_batch * n_disc
    indices = index_stream(source.num_examples, seed=seed, shuffle=shuffle,
                           start=start)
    pipelines, pipeline = (context.num_input_pipelines,
                           context.input_pipeline_id)
    # One step is [n_disc, pipelines, replicas, per_replica] indices; this
    # pipeline keeps its block of each D update's global batch (indices are
    # cheap: only its own examples are read).
    steps = indices.batch(n_disc * global_batch, drop_remainder=True)
    per_replica_indices = steps.map(lambda idx: tf.transpose(
        tf.reshape(idx, [n_disc, pipelines, replicas, per_replica])[:, pipeline],
        [1, 0, 2])).unbatch()  # [n_disc, per_replica], replica after replica

    def read(idx: tf.Tensor) -> dict[str, tf.Tensor]:
      example = source.read(tf.reshape(idx, [-1]))
      return {"image": tf.reshape(to_unit_range(example["image"]),
                                  [n_disc, per_replica, *source.image_shape]),
              "label": tf.reshape(example["label"], [n_disc, per_replica])}

    examples = per_replica_indices.map(
        read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return examples.prefetch(tf.data.AUTOTUNE)

  return dataset_fn


def first_examples(source: Source, count: int) -> dict[str, np.ndarray]:
  """The first `count` examples (cycling if the source is smaller).

  Returns:
    {"image": float32 [count, H, W, C] in [-1, 1], "label": int32 [count]}.
  """
  indices = tf.range(count, dtype=tf.int64) % source.num_examples
  example = source.read(indices)
  return {"image": to_unit_range(example["image"]).numpy(),
          "label": example["label"].numpy()}
