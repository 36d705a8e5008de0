"""Edits: latents moved along a direction of trainer/apply/directions.py.

An edit moves a latent to latent + s * scale * direction for each
strength s, where scale is the spread of one coordinate of the latent: 1
for z, for w the root mean square of w - w_avg (inversion.w_scale). A
strength then means about the same in both spaces: 3 is three times a
typical coordinate's deviation. In w only the ws of --layers move. Edited
images are drawn with G's fixed noise (LatentSplit.render), so that a row
differs by the edit alone, and strength 0 is the unedited image.
"""

import numpy as np

from trainer.apply import directions as directions_lib
from trainer.apply import inversion as inversion_lib
from trainer import distribute
from trainer.errors import UserError


def strengths_of(values: list[str]) -> tuple[float, float]:
  """--strengths=first,last as two numbers.

  Raises:
    UserError: not two numbers.
  """
  try:
    first, last = (float(v) for v in values)
  except ValueError:
    raise UserError(f"--strengths={','.join(values)} is not two numbers, "
                    "the first and the last strength (e.g. -3,3)") from None
  return first, last


def latent_scale(request: directions_lib.Request) -> float:
  """How far strength 1 moves: the spread of one coordinate of w (from
  inversion.SCALE_SAMPLES sampled w), or 1 for z."""
  if not request.split.has_mapping:
    return 1.0
  count = inversion_lib.SCALE_SAMPLES
  z = np.random.default_rng(request.seed).standard_normal(
      (count, request.run.config.model.latent_dim)).astype(np.float32)
  return inversion_lib.w_scale(request.strategy, request.split, z,
                               request.labels_for(count))


def edited(latents: np.ndarray, direction: np.ndarray,
           strengths: np.ndarray, layers: range,
           scale: float) -> np.ndarray:
  """latents moved along direction by each strength times scale.

  Args:
    latents: z [N, D], or ws [N, num_ws, D] of which only ws[layers] move.
    direction: [D], unit.
    strengths: [T].
    layers: the ws that move.
    scale: how far strength 1 moves (latent_scale).

  Returns:
    [N, T, ...] float32; strength 0 leaves the latent as it is, exactly.
  """
  step = (scale * direction).astype(np.float32)  # [D]
  if latents.ndim == 3:
    moves = np.zeros((latents.shape[1], 1), np.float32)
    moves[layers.start:layers.stop] = 1.0
    step = moves * step  # [num_ws, D]
  strengths = np.asarray(strengths, np.float32).reshape(
      (1, -1) + (1,) * (latents.ndim - 1))
  return latents[:, None] + strengths * step


def render_edits(request: directions_lib.Request, latents: np.ndarray,
                 direction: np.ndarray, strengths: np.ndarray, scale: float,
                 labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
  """The edited latents [N, T, ...] of latents [N, ...] (z or ws) and
  their images [N, T, H, W, C], with G's fixed noise."""
  moved = edited(latents, direction, strengths, request.layers, scale)
  steps, split = len(strengths), request.split
  images = distribute.map_rows(
      request.strategy, lambda x, labels=None: split.render(
          x, split.space, labels), moved.reshape((-1,) + moved.shape[2:]),
      None if labels is None else np.repeat(labels, steps))
  return moved, images.reshape(moved.shape[:2] + images.shape[1:])
