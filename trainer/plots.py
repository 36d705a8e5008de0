"""Pictures of the discriminator's judgement of real and generated images.

D's probabilities on the two sets show what its mean alone hides: whether it
separates them cleanly (two peaks at 0 and 1, a D that wins), is fooled by
part of the generated images only, or cannot tell them apart at all.

Figures are drawn with the Agg canvas directly, not pyplot: no global figure
state, and no display needed.
"""

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

_BINS = np.linspace(0.0, 1.0, 26)  # 25 bins over [0, 1]
_SIZE_INCHES = (9.0, 4.0)
_DPI = 100  # with _SIZE_INCHES, 900x400 pixels
_ALPHA = 0.5  # the two histograms overlap


def _checked(name: str, values: np.ndarray) -> np.ndarray:
  """`values` as a 1-D float array of probabilities; ValueError if not."""
  values = np.asarray(values, dtype=np.float64)
  if values.ndim != 1:
    raise ValueError(f"{name} must be a 1-D array of D's probabilities, got "
                     f"shape {values.shape}")
  if values.size == 0:
    raise ValueError(f"{name} is empty: need at least one D probability")
  # Written so that NaN, which fails every comparison, is out of range too.
  outside = ~((values >= 0.0) & (values <= 1.0))
  if outside.any():
    raise ValueError(
        f"{name} must hold probabilities in [0, 1]; {int(outside.sum())} of "
        f"{values.size} values are not (e.g. {values[outside][0]})")
  return values


def _histograms(axes, sets: dict[str, np.ndarray]) -> None:
  """Left panel: the distribution of D(x) per set, on common bins."""
  for name, values in sets.items():
    axes.hist(values, bins=_BINS, density=True, alpha=_ALPHA,
              label=f"{name}: n={values.size}, mean={values.mean():.3f}")
  axes.set_xlim(0.0, 1.0)
  axes.set_xlabel("D(x)")
  axes.set_ylabel("density")
  axes.set_title("D(x) histogram")
  axes.legend(loc="best")


def _sorted_curves(axes, sets: dict[str, np.ndarray]) -> None:
  """Right panel: each set's D(x), highest first, against its rank fraction.

  Sets of different sizes compare on one axis, and the area under a curve is
  the set's mean D(x). Each value is a step of width 1/n, so that a single
  value still shows as a line.
  """
  for name, values in sets.items():
    descending = np.sort(values)[::-1]
    ranks = np.linspace(0.0, 1.0, values.size + 1)  # step edges
    # Unclipped and over the frame: a certain D draws its line at 0 or 1.
    axes.step(ranks, np.append(descending, descending[-1]), where="post",
              label=name, clip_on=False, zorder=3)
  axes.set_xlim(0.0, 1.0)
  axes.set_ylim(0.0, 1.0)
  axes.set_xlabel("rank fraction")
  axes.set_ylabel("D(x), sorted")
  axes.set_title("sorted D(x)")
  axes.legend(loc="best")


def discriminator_png(real: np.ndarray, fake: np.ndarray, *,
                      step: int) -> bytes:
  """Draws D's probabilities on real and generated images as a PNG.

  Args:
    real: D's probabilities on real images, float [n_real] in [0, 1].
    fake: D's probabilities on generated images, float [n_fake] in [0, 1].
    step: the training step, shown in the title.

  Returns:
    A 900x400 PNG: histograms on the left, sorted probabilities on the right.

  Raises:
    ValueError: an input is empty, not 1-D, or has values outside [0, 1]
      (NaN included).
  """
  sets = {"real": _checked("real", real), "generated": _checked("fake", fake)}
  figure = Figure(figsize=_SIZE_INCHES, dpi=_DPI)
  canvas = FigureCanvasAgg(figure)
  left, right = figure.subplots(1, 2)
  _histograms(left, sets)
  _sorted_curves(right, sets)
  figure.suptitle(f"Discriminator on real and generated images, step {step}")
  figure.tight_layout()
  buffer = io.BytesIO()
  canvas.print_png(buffer)
  return buffer.getvalue()
