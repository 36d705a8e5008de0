"""Layers the networks share: Keras' own, with faster kernels on a CPU.

Each is a subclass with the same arguments and variables as the Keras layer,
so checkpoints carry over, and computes the same function. What makes them
faster is measured in BENCHMARKS.md ("The faster layers").
"""

import keras
import tensorflow as tf

# Random bits per dropout decision: the keep probability is a multiple of
# 2**-16, within 1e-5 of the one asked for.
_BITS = 16


class Dropout(keras.layers.Dropout):
  """Keras' dropout with half the random numbers.

  Keras draws one uniform float per element. Here each 32-bit draw of the
  counter-based generator decides two elements, 16 bits each, and the kept
  values are scaled by the exact inverse of the keep probability, so the
  layer stays unbiased. On a CPU the random numbers are most of dropout's
  cost. Same arguments as `keras.layers.Dropout` without `noise_shape`.
  """

  def __init__(self, rate: float, **kwargs):
    if kwargs.get("noise_shape") is not None:
      raise ValueError("this Dropout draws a mask of the input's shape; it "
                       "takes no noise_shape")
    super().__init__(rate, **kwargs)
    levels = 2**_BITS
    # Elements whose 16 bits are below the threshold are dropped; at least
    # one level in 2**16 is kept.
    self._threshold = min(round(rate * levels), levels - 1)
    self._scale = levels / (levels - self._threshold)

  def call(self, inputs, training=False):
    if not training or not self._threshold:
      return inputs
    size = tf.size(inputs)
    bits = tf.random.stateless_uniform(
        [(size + 1) // 2], self.seed_generator.next(), minval=None,
        maxval=None, dtype=tf.uint32)  # [ceil(N / 2)]
    halves = tf.reshape(tf.bitcast(bits, tf.uint16), [-1])[:size]  # [N]
    keep = tf.reshape(halves, tf.shape(inputs)) >= tf.constant(
        self._threshold, tf.uint16)
    # One select and one product: the backward pass is one product too.
    mask = tf.where(keep, tf.constant(self._scale, inputs.dtype),
                    tf.constant(0, inputs.dtype))
    return inputs * mask


class BatchNormalization(keras.layers.BatchNormalization):
  """Keras' batch norm, trained through TensorFlow's fused kernel.

  Keras 3 normalises with separate moment, cast and arithmetic ops. In
  training, with channels last, this layer makes one fused op of it (oneDNN's
  on a CPU) for the forward pass and one for the gradient, and updates the
  moving statistics as Keras does, with the batch's biased variance. Where
  the fused op cannot stand in, Keras' own code runs: at inference, with a
  mask, renorm or another axis, and for synchronized batch norm over more
  than one replica, whose moments are summed across replicas.
  """

  def call(self, inputs, training=None, mask=None):
    if not (training and self.trainable and self._fusable(inputs, mask)):
      return super().call(inputs, training=training, mask=mask)
    channels = inputs.shape[-1]
    x = inputs  # [B, H, W, C], or [B, C] seen as [B, 1, 1, C]
    if len(inputs.shape) == 2:
      x = tf.reshape(inputs, [-1, 1, 1, channels])
    gamma = self.gamma if self.scale else tf.ones([channels])
    beta = self.beta if self.center else tf.zeros([channels])
    y, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, epsilon=self.epsilon, is_training=True)
    # The kernel returns the variance with Bessel's correction; Keras keeps
    # the moving average of the biased one.
    count = tf.cast(tf.size(x) // channels, tf.float32)
    variance = unbiased * (count - 1.0) / count
    momentum = self.momentum
    self.moving_mean.assign(self.moving_mean * momentum + mean *
                            (1.0 - momentum))
    self.moving_variance.assign(self.moving_variance * momentum + variance *
                                (1.0 - momentum))
    return tf.cast(tf.reshape(y, tf.shape(inputs)), self.compute_dtype)

  def _fusable(self, inputs, mask) -> bool:
    rank = len(inputs.shape)
    if mask is not None or self.renorm or rank not in (2, 4):
      return False
    if self.axis not in (-1, rank - 1):
      return False
    if not self.synchronized:
      return True
    context = tf.distribute.get_replica_context()
    return context is not None and context.num_replicas_in_sync == 1
