"""TensorBoard summaries, image grids and the progress line."""

import math
import time

import numpy as np
import tensorflow as tf


def image_grid(images: np.ndarray) -> np.ndarray:
  """Tiles images [K, H, W, C] in [-1, 1] into one uint8 [1, R*H, R*W, C]."""
  count, height, width, channels = images.shape
  cols = math.ceil(math.sqrt(count))
  rows = math.ceil(count / cols)
  grid = np.zeros((rows * height, cols * width, channels), np.uint8)
  pixels = np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
  for k in range(count):
    r, c = divmod(k, cols)
    grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = pixels[k]
  return grid[None]


class Writer:
  """Writes summaries on the chief; elsewhere it writes nothing."""

  def __init__(self, logdir: str | None):
    self._writer = (tf.summary.create_file_writer(logdir) if logdir
                    else tf.summary.create_noop_writer())

  def scalars(self, step: int, values: dict[str, float]) -> None:
    with self._writer.as_default(step=step):
      for name, value in values.items():
        tf.summary.scalar(name, value)

  def images(self, step: int, name: str, images: np.ndarray) -> None:
    with self._writer.as_default(step=step):
      tf.summary.image(name, image_grid(images))

  def png(self, step: int, name: str, png: bytes) -> None:
    """Writes an encoded PNG (e.g. a matplotlib figure) as an image."""
    with self._writer.as_default(step=step):
      tf.summary.image(name, tf.image.decode_png(png, channels=3)[None])

  def histograms(self, step: int, values: dict[str, np.ndarray]) -> None:
    with self._writer.as_default(step=step):
      for name, value in values.items():
        tf.summary.histogram(name, value, buckets=20)

  def text(self, step: int, name: str, markdown: str) -> None:
    with self._writer.as_default(step=step):
      tf.summary.text(name, markdown)

  def flush(self) -> None:
    self._writer.flush()


class Progress:
  """Examples/sec and time left, from the steps run since the last report."""

  def __init__(self, *, total_steps: int, examples_per_step: int,
               start_step: int):
    self._total = total_steps
    self._examples_per_step = examples_per_step
    self._last_step = start_step
    self._last_time = time.monotonic()
    self._steps_per_sec = None

  def update(self, step: int) -> dict[str, float]:
    """Returns rates over the steps since the previous update."""
    now = time.monotonic()
    elapsed = max(now - self._last_time, 1e-9)
    steps_per_sec = (step - self._last_step) / elapsed
    self._last_step, self._last_time = step, now
    self._steps_per_sec = steps_per_sec
    return {
        "perf/steps_per_sec": steps_per_sec,
        "perf/examples_per_sec": steps_per_sec * self._examples_per_step,
        "progress/seconds_left": self.seconds_left(step),
        "progress/fraction_done": step / self._total,
    }

  def restart(self, step: int) -> None:
    """Starts the next rate window at `step`, now.

    Time spent meanwhile (an evaluation) then does not count against the
    training rate.
    """
    self._last_step, self._last_time = step, time.monotonic()

  def seconds_left(self, step: int) -> float:
    if not self._steps_per_sec:
      return float("nan")
    return (self._total - step) / self._steps_per_sec


def format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
