r"""How well an edit moves one attribute of digits and keeps the rest.

    python -m trainer.apply edit --workdir=runs/dcgan_short --num=500 \
        --direction=<dir>/directions.npy --output_dir=/tmp/ink_edit
    python -m trainer.bench.edit_quality --edit=/tmp/ink_edit/edit.npz \
        --measure=ink --other=slant

reads the images of an `edit` (edit.npz: [N, T, H, W, C] over T
strengths) and prints one JSON line:

  monotonic: the share of the N images whose --measure (trainer/apply/
    measures.py) rises at every step of the strengths (falls, for a
    direction whose mean effect is a fall);
  mean: the measure's mean at each strength;
  correlation: of the measure with the strength, over all images and
    strengths (how well an unsupervised direction lines up with it);
  class_kept: per strength, the share whose class, by the project's MNIST
    classifier, is their class at strength 0;
  reach: the strongest negative and positive strengths up to which the
    class stays for at least --keep of them (how far the edit can go);
  other: with --other, that measure's mean change from strength 0 at each
    strength, and its spread over the images at strength 0, the band a
    conditional direction should keep it in.
"""

import json
import sys

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from trainer.apply import measures
from trainer.errors import UserError

_EDIT = flags.DEFINE_string("edit", None, "edit.npz of trainer.apply edit.")
_MEASURE = flags.DEFINE_string(
    "measure", "ink", "The measure the edit should move: "
    f"{', '.join(measures.MEASURES.names())}.")
_OTHER = flags.DEFINE_string(
    "other", "", "A measure the edit should keep; empty: none.")
_KEEP = flags.DEFINE_float(
    "keep", 0.9, "reach: the share of images that must keep their class.")


def _load(path: str) -> tuple[np.ndarray, np.ndarray]:
  """edit.npz's images [N, T, H, W, C] and strengths [T]."""
  if not tf.io.gfile.exists(path):
    raise UserError(f"--edit={path} does not exist; give the edit.npz that "
                    "python -m trainer.apply edit writes")
  try:
    with np.load(path) as data:
      images, strengths = data["images"], data["strengths"]
  except (OSError, ValueError, KeyError) as e:
    raise UserError(f"--edit={path} is not an edit.npz with images and "
                    f"strengths ({e})") from None
  if images.ndim != 5 or images.shape[1] != len(strengths):
    raise UserError(f"--edit={path} holds images of shape {images.shape}; "
                    "an edit's are [N, strengths, H, W, C]")
  return images.astype(np.float32), strengths


def _reach(strengths: np.ndarray, kept: np.ndarray, keep: float
           ) -> list[float]:
  """The strongest negative and positive strengths up to which (from 0
  outwards) at least `keep` of the images keep their class."""
  zero = int(np.argmin(np.abs(strengths)))
  ends = []
  for order in (range(zero, -1, -1), range(zero, len(strengths))):
    reached = float(strengths[zero])
    for t in order:
      if kept[t] < keep:
        break
      reached = float(strengths[t])
    ends.append(reached)
  return ends


def quality(images: np.ndarray, strengths: np.ndarray, measure: str,
            other: str = "", keep: float = 0.9) -> dict:
  """The figures the module docstring lists, for an edit's images."""
  values = measures.measured(measure, images)  # [N, T]
  steps = np.diff(values, axis=1)
  rising = np.mean(values[:, -1] - values[:, 0]) >= 0
  monotonic = np.all(steps >= 0 if rising else steps <= 0, axis=1)
  classes = measures.digits(images)
  zero = int(np.argmin(np.abs(strengths)))
  kept = np.mean(classes == classes[:, zero:zero + 1], axis=0)  # [T]
  result = {
      "measure": measure, "images": int(len(images)),
      "strengths": strengths.tolist(), "direction_raises": bool(rising),
      "monotonic": float(np.mean(monotonic)),
      "mean": np.mean(values, axis=0).tolist(),
      "correlation": float(np.corrcoef(
          np.broadcast_to(strengths, values.shape).ravel(),
          values.ravel())[0, 1]),
      "class_kept": kept.tolist(), "reach": _reach(strengths, kept, keep),
  }
  if other:
    others = measures.measured(other, images)
    result["other"] = {
        "measure": other,
        "mean_change": np.mean(others - others[:, zero:zero + 1],
                               axis=0).tolist(),
        "spread_at_0": float(np.std(others[:, zero]))}
  return result


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    if not _EDIT.value:
      raise UserError("--edit is required: the edit.npz that python -m "
                      "trainer.apply edit writes")
    valid = measures.MEASURES.names()
    for flag, name in (("measure", _MEASURE.value), ("other", _OTHER.value)):
      if name and name not in valid:
        raise UserError(f"--{flag}={name} is not a measure; valid: "
                        f"{', '.join(valid)}")
    images, strengths = _load(_EDIT.value)
    result = quality(images, strengths, _MEASURE.value, _OTHER.value,
                     _KEEP.value)
  except UserError as e:
    sys.exit(f"error: {e}")
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
