"""The measured matrix-multiply peak: the yardstick of a step's FLOPs."""

import time

import tensorflow as tf

# Large enough for the matmul kernels to run at full speed, small enough to
# take a second on 2 CPU cores.
_SIZE = 2048
_MATMULS_PER_CALL = 8
_TRIALS = 3


def matmul_peak(dtype: str) -> float:
  """FLOP/s of square matrix products in `dtype`, best of a few trials.

  The products run back to back in one compiled loop on the default device,
  with as many threads as TensorFlow gives the training step.
  """
  n = _SIZE
  a = tf.cast(tf.random.stateless_normal([n, n], [0, 1]), dtype)

  @tf.function
  def products(a):
    total = tf.zeros([n, n], dtype)
    for _ in tf.range(_MATMULS_PER_CALL):
      # Each product depends on the last, so none can be skipped.
      total = tf.linalg.matmul(a, a + total * 0)
    return total

  products(a).numpy()  # compile
  best = 0.0
  for _ in range(_TRIALS):
    start = time.perf_counter()
    products(a).numpy()
    seconds = time.perf_counter() - start
    best = max(best, _MATMULS_PER_CALL * 2 * n**3 / seconds)
  return best
