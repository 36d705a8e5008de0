"""The measured matrix-multiply peak: the yardstick of a step's FLOPs."""

import os
import time

import tensorflow as tf

# Large enough for the matmul kernels to run at full speed, small enough for
# one product to take well under a second on 2 CPU cores.
_SIZE = 2048
_TRIALS = 5
# Each trial runs about this long by default, whatever the dtype's speed: a
# fixed number of products is slow where a CPU emulates bfloat16, and too
# short to time on a fast accelerator.
TRIAL_SECONDS = 1.0


def matmul_peak(dtype: str, trial_seconds: float = TRIAL_SECONDS) -> float:
  """FLOP/s of square matrix products in `dtype`, best of a few trials.

  One chain of products per core runs in one compiled loop on the default
  device, so the peak is the machine's whatever the thread settings: with
  TensorFlow's default threads each product is shared by all cores, with
  one thread per op (runtime.intra_op_threads=1) the chains run side by
  side. A first timed call of one product per chain sets the chains' length
  so that each trial takes about `trial_seconds` (at least one product per
  chain).
  """
  # The cores this process may use (Linux); elsewhere all of the machine's.
  cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
           else os.cpu_count() or 1)
  n, chains = _SIZE, cores
  a = tf.cast(tf.random.stateless_normal([n, n], [0, 1]), dtype)

  @tf.function
  def products(a, length):
    totals = [tf.zeros([n, n], dtype)] * chains
    for _ in tf.range(length):
      # Each product depends on the last of its chain, so none can be
      # skipped.
      totals = [tf.linalg.matmul(a, a + total * 0) for total in totals]
    return tf.add_n(totals)

  def seconds(length: int) -> float:
    start = time.perf_counter()
    products(a, tf.constant(length)).numpy()
    return time.perf_counter() - start

  seconds(1)  # compiles
  length = max(1, round(trial_seconds / seconds(1)))
  fastest = min(seconds(length) for _ in range(_TRIALS))
  return chains * length * 2 * n**3 / fastest
