"""Random draws per example, made from the bits of that example's input.

StyleGAN2's noise inputs and the second z of its style mixing are drawn
from one seed per example, hashed from the example's values (its z, or its
ws when the synthesis is called alone): the outputs are a function of the
inputs alone, and a resumed run draws what an uninterrupted one would. Each
example's draws are its own, so one and two replicas draw the same values
for a global batch however it is split. `uniform` and `normal` draw from
those seeds with a counter-based generator.
"""

import math

import numpy as np
import tensorflow as tf

# Salts of the seeds derived from inputs, one per purpose.
_NOISE_SALT, _MIXING_SALT = 1, 2


def _hash(x: tf.Tensor) -> tf.Tensor:
  """A 32-bit avalanche of uint32 values (Wellons' lowbias32)."""
  shift = lambda v, n: tf.bitwise.right_shift(v, tf.constant(n, tf.uint32))
  x = tf.bitwise.bitwise_xor(x, shift(x, 16)) * tf.constant(0x7feb352d,
                                                              tf.uint32)
  x = tf.bitwise.bitwise_xor(x, shift(x, 15)) * tf.constant(0x846ca68b,
                                                              tf.uint32)
  return tf.bitwise.bitwise_xor(x, shift(x, 16))


def _example_seeds(x: tf.Tensor, salt: int) -> tf.Tensor:
  """One seed per example [B] int32, a function of that example's values.

  Every value's bit pattern is hashed with its position and the salt and
  the hashes are summed: any change of an example's input changes its
  draws, and no other example's input matters. Draws made from these seeds
  are therefore the same whichever replica holds the example and however
  the global batch is split.
  """
  # The features are static, the batch need not be (a served G's is not).
  x = tf.reshape(tf.cast(tf.stop_gradient(x), tf.float32),
                 [-1, math.prod(x.shape[1:])])
  bits = tf.bitcast(x, tf.uint32)  # [B, F]
  positions = tf.cast(tf.range(tf.shape(bits)[1]), tf.uint32)[None, :]
  salted = _hash(positions * tf.constant(0x9e3779b9, tf.uint32)
                 + tf.constant(salt, tf.uint32))
  seeds = tf.reduce_sum(_hash(tf.bitwise.bitwise_xor(bits, salted)), axis=1)
  return tf.bitcast(_hash(seeds), tf.int32)


def noise_seeds(x: tf.Tensor) -> tf.Tensor:
  """The seeds [B] int32 of the noise inputs drawn for the examples of x.

  G draws from those of z (NoiseSeed); the synthesis alone, from its ws.
  """
  return _example_seeds(x, _NOISE_SALT)


def mixing_seeds(z: tf.Tensor) -> tf.Tensor:
  """The seeds [B] int32 of the style-mixing draws for the examples of z."""
  return _example_seeds(z, _MIXING_SALT)


def uniform(seeds: tf.Tensor, shape, stream: int) -> tf.Tensor:
  """Per example, values uniform in (0, 1): [B, *shape] float32.

  A counter-based generator: value k of example b hashes (seed_b, stream,
  k). Elementwise integer ops only, so it runs under XLA and on TPUs, for
  any batch.
  """
  count = int(np.prod(shape)) if shape else 1
  counters = tf.cast(tf.range(count), tf.uint32)[None, :]
  key = _hash(tf.bitcast(seeds, tf.uint32)[:, None]
              + tf.constant(stream * 0x632be5ab & 0xFFFFFFFF, tf.uint32))
  bits = _hash(tf.bitwise.bitwise_xor(
      key, _hash(counters + tf.constant(0x5bd1e995, tf.uint32))))
  # The top 24 bits, centred in their interval: never 0 nor 1.
  values = (tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)),
                    tf.float32) + 0.5) / float(1 << 24)
  return tf.reshape(values, [-1, *shape])


def normal(seeds: tf.Tensor, shape, stream: int) -> tf.Tensor:
  """Per example, standard normal values [B, *shape] (Box-Muller).

  Both uniforms come from one draw of the stream, which keeps the graph
  small: a trace costs about a millisecond per op.
  """
  u1, u2 = tf.unstack(uniform(seeds, [2, *shape], stream), axis=1)
  return tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(2.0 * math.pi * u2)


def draw_noise(seeds: tf.Tensor, sizes) -> list[tf.Tensor]:
  """The noise inputs [B, r, r, 1] of the layers of sizes r, from seeds [B].

  One draw for all the layers, cut into theirs: each example's noise is a
  function of its seed alone, as every draw here.
  """
  sizes = list(sizes)
  noise = normal(seeds, [sum(r * r for r in sizes)], 0)
  pieces = tf.split(noise, [r * r for r in sizes], axis=1)
  return [tf.reshape(piece, [-1, r, r, 1])
          for piece, r in zip(pieces, sizes)]
