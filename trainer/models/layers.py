"""Layers the networks share: faster Keras layers, spectral normalization.

Dropout and BatchNormalization are subclasses with the same arguments and
variables as the Keras layer, so checkpoints carry over, and compute the same
function: batch norm trains through TensorFlow's fused kernel, and dropout
draws two decisions per 32-bit random number. SpectralNormalization wraps a
weight layer to divide its weight by its largest singular value (Miyato et
al., 2018). `tracked` makes the sublayers a layer keeps in a list visible to
TensorFlow's checkpoints.
"""

import keras
import tensorflow as tf

# Random bits per dropout decision: the keep probability is a multiple of
# 2**-16, within 1e-5 of the one asked for.
_BITS = 16


def tracked(owner: keras.layers.Layer,
            layers: list[keras.layers.Layer]) -> list[keras.layers.Layer]:
  """Makes each of `layers` an attribute of `owner`, named by its name.

  Keras 3 keeps a list attribute in its own list type, which
  `tf.train.Checkpoint` does not follow: the variables of layers held only in
  a list are missing from the checkpoint (found on G_ema, whose variables no
  optimizer holds). An attribute per layer is followed. Returns `layers`.

  Raises:
    ValueError: two layers share a name, or a name is already an attribute.
  """
  for layer in layers:
    if hasattr(owner, layer.name):
      raise ValueError(f"{owner.name} already has an attribute {layer.name}; "
                       "give its sublayers distinct names")
    setattr(owner, layer.name, layer)
  return layers


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


# Weight layers SpectralNormalization can wrap: (type, the attribute holding
# the weight, the weight's axis that indexes the outputs). A transposed
# convolution's kernel is [kh, kw, out, in]; the others keep their outputs
# last: Dense [in, out], Conv2D [kh, kw, in, out], Embedding [classes, out].
_WEIGHT_LAYERS = ((keras.layers.Conv2DTranspose, "kernel", 2),
                  (keras.layers.Conv2D, "kernel", -1),
                  (keras.layers.Dense, "kernel", -1),
                  (keras.layers.Embedding, "embeddings", -1))


def _weight_spec(layer: keras.layers.Layer) -> tuple[str, int]:
  """(attribute of the weight, output axis) of a layer that can be wrapped."""
  for layer_type, attribute, axis in _WEIGHT_LAYERS:
    if isinstance(layer, layer_type):
      return attribute, axis
  names = ", ".join(layer_type.__name__ for layer_type, _, _ in _WEIGHT_LAYERS)
  raise TypeError(f"SpectralNormalization wraps {names}; got "
                  f"{type(layer).__name__}")


def _unit_normal(shape, dtype=None) -> tf.Tensor:
  """A random direction: a normal draw scaled to norm 1.

  The draw's seed comes from Keras' global seed, as the kernels' do, so
  `keras.utils.set_random_seed` makes it reproducible.
  """
  u = keras.initializers.RandomNormal()(shape, dtype)
  return u / tf.norm(u)


class SpectralNormalization(keras.layers.Wrapper):
  """A weight layer that computes with W / sigma(W) (Miyato et al., 2018).

  sigma(W) is the largest singular value of the weight seen as a matrix
  M [n, out] (the output axis last). It is estimated from a unit vector u
  [out], the variable `spectral_u`, as sigma = |M u| with u held fixed, so
  the gradient flows through sigma as in the paper: d sigma / dM = v u^T for
  v = M u / |M u|, and the gradient of W / sigma(W) has no component along
  W. Each training call first does one power iteration, u <- M^T v / |M^T v|,
  stores it and computes with the new u: over training u follows W for three
  matrix-vector products per call. Inference calls use the stored u without
  updating it, i.e. the weight of the last training call. (The paper takes
  sigma = v^T M u with the v of the previous u; |M u| is never smaller, has
  the same gradient and needs no stored v.)

  The wrapper runs in float32 without autocasting, so sigma comes from the
  float32 W and u whatever the wrapped layer's policy; the wrapped layer
  casts W / sigma to its compute dtype and its output keeps that dtype. u is
  created without aggregation: under a MirroredStrategy each replica writes
  its own copy, and the copies stay equal because every replica computes the
  same u from the same mirrored W and u (tested). ONLY_FIRST_REPLICA would
  do the same through a merge_call, a synchronisation of the replicas at
  every call of every normalized layer. u is a non-trainable variable of the
  model, so checkpoints hold it.

  Why not keras.layers.SpectralNormalization (Keras 3.15): each training
  call assigns W / sigma to the kernel in place, and the gradient reaches
  the kernel as if sigma were a constant (there is no d sigma / dW); under
  mixed_bfloat16 or mixed_float16 its power iteration runs in the compute
  dtype and the float32 kernel is overwritten with values rounded to it;
  for Conv2DTranspose it takes the input channels as the output axis. It
  does work under MirroredStrategy (its aggregation NONE writes each
  replica's own copy) and its u is checkpointed.

  Wraps Dense, Conv2D, Conv2DTranspose and Embedding; `layer` is the wrapped
  layer (its variables are checkpointed under `layer/`).
  """

  def __init__(self, layer: keras.layers.Layer, **kwargs):
    self._weight_attribute, self._output_axis = _weight_spec(layer)
    # float32 and no autocasting: see the class docstring. A dtype argument
    # would contradict it (get_config leaves it out).
    super().__init__(layer, dtype="float32", autocast=False, **kwargs)

  def build(self, input_shape=None):
    super().build(input_shape)
    weight = self._weight()
    self.spectral_u = self.add_weight(
        name="spectral_u", shape=(weight.shape[self._output_axis],),
        initializer=_unit_normal, trainable=False,
        aggregation="none")

  def call(self, inputs, training=None):
    weight = self._weight()
    w = tf.convert_to_tensor(weight)  # float32, the layer's own shape
    u = tf.convert_to_tensor(self.spectral_u)  # [out]
    if training:
      matrix = self._matrix(w)  # [n, out]
      v = tf.math.l2_normalize(tf.linalg.matvec(matrix, u))  # [n]
      u = tf.stop_gradient(tf.math.l2_normalize(
          tf.linalg.matvec(matrix, v, transpose_a=True)))  # [out]
      self.spectral_u.assign(u)
    # The wrapped layer reads its weight as W / sigma: same ops, same dtype
    # handling as without the wrapper.
    with keras.StatelessScope(state_mapping=[(weight, self._divide(w, u))]):
      return self.layer(inputs)

  def normalized_weight(self) -> tf.Tensor:
    """W / sigma(W) with the stored u: the weight of an inference call."""
    return self._divide(tf.convert_to_tensor(self._weight()),
                        tf.convert_to_tensor(self.spectral_u))

  def compute_output_shape(self, input_shape):
    return self.layer.compute_output_shape(input_shape)

  def compute_output_spec(self, inputs, training=None):
    del training  # the wrapped layer's output does not depend on it
    # The wrapped layer's: its dtype is the wrapped layer's compute dtype,
    # not this wrapper's float32.
    return self.layer.compute_output_spec(inputs)

  def get_config(self) -> dict:
    config = super().get_config()
    del config["dtype"]  # always float32
    return config

  def _weight(self) -> keras.Variable:
    weight = getattr(self.layer, self._weight_attribute)
    if not isinstance(weight, keras.Variable):
      # LoRA or quantization make the attribute a computed tensor.
      raise ValueError(
          f"{self.layer.name}.{self._weight_attribute} is not a variable "
          "(LoRA or quantization?); SpectralNormalization needs the plain "
          "weight")
    return weight

  def _matrix(self, w: tf.Tensor) -> tf.Tensor:
    """The weight as a matrix [n, out]: other axes flattened into rows."""
    w = keras.ops.moveaxis(w, self._output_axis, -1)
    return tf.reshape(w, [-1, w.shape[-1]])

  def _divide(self, w: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """W / |M u|: W over its largest singular value, as estimated from u."""
    return w / tf.norm(tf.linalg.matvec(self._matrix(w), u))
