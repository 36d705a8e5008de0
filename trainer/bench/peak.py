"""The measured matrix-multiply peak: the yardstick of a step's FLOPs."""

import math
import os
import time

import tensorflow as tf

# Large enough for the matmul kernels to run at full speed, small enough for
# one product to take well under a second on 2 CPU cores.
_SIZE = 2048
# Timed trials per dtype; the peak is the fastest.
TRIALS = 5
# Each trial runs about this long by default, whatever the dtype's speed: a
# fixed number of products is slow where a CPU emulates bfloat16, and too
# short to time on a fast accelerator.
TRIAL_SECONDS = 1.0


class MatmulPeak:
  """FLOP/s of square matrix products in one dtype, best of its trials.

  One chain of products per core runs in one compiled loop on the default
  device, so the peak is the machine's whatever the thread settings: with
  TensorFlow's default threads each product is shared by all cores, with
  one thread per op (runtime.intra_op_threads=1) the chains run side by
  side. Building the meter compiles the loop and times one product per
  chain, which sets the chains' length so that each `trial` takes about
  `trial_seconds` (at least one product per chain).

  Trials can be spread over a run (the benchmark runs them between its
  timed rounds): the best of them is then the machine's peak at the time
  it was least shared, and a step timed in between cannot seem to beat it
  because something else used the machine while the peak was measured.
  """

  def __init__(self, dtype: str, trial_seconds: float = TRIAL_SECONDS):
    # The cores this process may use (Linux); elsewhere all of the machine's.
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    n, chains = _SIZE, cores
    self._a = tf.cast(tf.random.stateless_normal([n, n], [0, 1]), dtype)

    @tf.function
    def products(a, length):
      totals = [tf.zeros([n, n], dtype)] * chains
      for _ in tf.range(length):
        # Each product depends on the last of its chain, so none can be
        # skipped.
        totals = [tf.linalg.matmul(a, a + total * 0) for total in totals]
      return tf.add_n(totals)

    self._products = products
    self._seconds(1)  # compiles
    self._length = max(1, round(trial_seconds / self._seconds(1)))
    self._flops = chains * self._length * 2 * n**3
    self._fastest = math.inf
    self.trials = 0

  def _seconds(self, length: int) -> float:
    start = time.perf_counter()
    self._products(self._a, tf.constant(length)).numpy()
    return time.perf_counter() - start

  def trial(self) -> None:
    """Times one more trial."""
    self._fastest = min(self._fastest, self._seconds(self._length))
    self.trials += 1

  @property
  def flops_per_sec(self) -> float:
    """The best trial's FLOP/s; call `trial` at least once first."""
    if not self.trials:
      raise RuntimeError("MatmulPeak.flops_per_sec before any trial")
    return self._flops / self._fastest


def matmul_peak(dtype: str, trial_seconds: float = TRIAL_SECONDS) -> float:
  """FLOP/s of square matrix products in `dtype`: TRIALS trials in a row."""
  meter = MatmulPeak(dtype, trial_seconds)
  for _ in range(TRIALS):
    meter.trial()
  return meter.flops_per_sec
