"""The measured matrix-multiply peak: the yardstick of a step's FLOPs."""

import os
import time

import tensorflow as tf

# Large enough for the matmul kernels to run at full speed, small enough for
# a trial to take a few seconds on 2 CPU cores.
_SIZE = 2048
_MATMULS_PER_CALL = 8
_TRIALS = 3


def matmul_peak(dtype: str) -> float:
  """FLOP/s of square matrix products in `dtype`, best of a few trials.

  One chain of products per core runs in one compiled loop on the default
  device, so the peak is the machine's whatever the thread settings: with
  TensorFlow's default threads each product is shared by all cores, with
  one thread per op (runtime.intra_op_threads=1) the chains run side by
  side.
  """
  # The cores this process may use (Linux); elsewhere all of the machine's.
  cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
           else os.cpu_count() or 1)
  n, chains = _SIZE, cores
  a = tf.cast(tf.random.stateless_normal([n, n], [0, 1]), dtype)

  @tf.function
  def products(a):
    totals = [tf.zeros([n, n], dtype)] * chains
    for _ in tf.range(_MATMULS_PER_CALL):
      # Each product depends on the last of its chain, so none can be
      # skipped.
      totals = [tf.linalg.matmul(a, a + total * 0) for total in totals]
    return tf.add_n(totals)

  products(a).numpy()  # compile
  best = 0.0
  for _ in range(_TRIALS):
    start = time.perf_counter()
    products(a).numpy()
    seconds = time.perf_counter() - start
    best = max(best, chains * _MATMULS_PER_CALL * 2 * n**3 / seconds)
  return best
