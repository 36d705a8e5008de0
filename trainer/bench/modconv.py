"""Times the two ways of computing StyleGAN2's modulated convolution.

    python -m trainer.bench.modconv --dtype=float32

For each shape (batch, resolution, channels) one ModulatedConv2D runs a
training pass (forward and gradient with respect to its input, kernel and
w) and an inference pass in each `modconv` mode ("scaled": activations
scaled around a shared kernel; "grouped": one grouped convolution with a
kernel per example). The modes are timed in alternation, so that a machine
shared with other work slows both alike. Prints one line per shape and
mode: milliseconds per pass (the median of the trials) and the ratio
grouped / scaled.
"""

import statistics
import time

from absl import app
from absl import flags
import tensorflow as tf

from trainer.models import example_draws
from trainer.models import stylegan2_layers

_DTYPE = flags.DEFINE_enum("dtype", "float32",
                           ["float32", "bfloat16", "float16"],
                           "Compute dtype of the convolution.")
_SHAPES = flags.DEFINE_list(
    "shapes", ["32x8x256", "32x32x128", "32x64x64", "4x64x64", "1x64x64"],
    "BATCHxRESOLUTIONxCHANNELS, each timed.")
_TRIALS = flags.DEFINE_integer("trials", 7, "Timed trials per mode.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Passes per trial.")

_MODES = ("scaled", "grouped")


def _passes(mode: str, batch: int, resolution: int, channels: int,
            dtype: str):
  """(training pass, inference pass) of one modulated 3x3 convolution."""
  layer = stylegan2_layers.ModulatedConv2D(
      channels, in_channels=channels, w_dim=channels, resolution=resolution,
      modconv=mode, dtype=dtype if dtype == "float32" else f"mixed_{dtype}")
  layer.build()
  x = tf.random.stateless_normal([batch, resolution, resolution, channels],
                                 [0, 1])
  w = tf.random.stateless_normal([batch, channels], [0, 2])
  seeds = tf.range(batch, dtype=tf.int32)

  @tf.function(jit_compile=False)
  def train(x, w):
    with tf.GradientTape() as tape:
      tape.watch([x, w])
      noise, = example_draws.draw_noise(seeds, [resolution])
      y = layer(x, w, noise_mode="random", noise=noise)
      loss = tf.reduce_sum(tf.cast(y, tf.float32))
    return tape.gradient(loss, [x, w, layer.kernel])

  @tf.function(jit_compile=False)
  def infer(x, w):
    return layer(x, w, noise_mode="const")

  return (lambda: train(x, w)), (lambda: infer(x, w))


def _seconds(run) -> float:
  start = time.perf_counter()
  for _ in range(_REPEATS.value):
    result = run()
  # Wait for the last pass's values.
  tf.nest.map_structure(lambda t: t.numpy(), result)
  return (time.perf_counter() - start) / _REPEATS.value


def main(argv):
  del argv
  print(f"dtype {_DTYPE.value}; median of {_TRIALS.value} trials of "
        f"{_REPEATS.value} passes; ms per pass")
  for spec in _SHAPES.value:
    batch, resolution, channels = (int(v) for v in spec.split("x"))
    passes = {mode: _passes(mode, batch, resolution, channels, _DTYPE.value)
              for mode in _MODES}
    for kind, index in (("train", 0), ("infer", 1)):
      times = {mode: [] for mode in _MODES}
      for mode in _MODES:
        _seconds(passes[mode][index])  # traces and warms up
      for _ in range(_TRIALS.value):
        for mode in _MODES:
          times[mode].append(_seconds(passes[mode][index]))
      ms = {mode: 1000 * statistics.median(times[mode]) for mode in _MODES}
      print(f"{spec:>10} {kind}: scaled {ms['scaled']:8.2f}  grouped "
            f"{ms['grouped']:8.2f}  grouped/scaled "
            f"{ms['grouped'] / ms['scaled']:.2f}", flush=True)


if __name__ == "__main__":
  app.run(main)
