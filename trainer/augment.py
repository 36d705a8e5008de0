"""Differentiable augmentation of the images D sees, by name.

Two pipelines, each a set of groups that `augment.groups` can narrow:

- `diffaugment` (Zhao et al. 2020, "Differentiable Augmentation for
  Data-Efficient GAN Training"): `color`, `translation` and `cutout`, applied
  to every image, on the [-1, 1] scale as the paper's TensorFlow code does.
- `ada` (Karras et al. 2020, "Training Generative Adversarial Networks with
  Limited Data"): the 'bgc' pipeline of stylegan2-ada with the paper's
  strengths. Each transform is applied to each image with probability p. The
  geometric ones are composed into one 3x3 matrix per image and the image is
  resampled once, bilinearly, with reflection outside the image; the colour
  ones are composed into one 4x4 matrix on RGB in homogeneous coordinates
  (luma axis (1, 1, 1) / sqrt(3)). A grey value goes through the mean of the
  matrix's RGB rows, as in the paper, so that brightness, contrast and
  lumaflip act on it; hue and saturation are identities on grey. Images
  whose matrix is the identity are passed through by a select, untouched:
  at p = 0 the output is the input, bit for bit.

Choices that differ from stylegan2-ada's code:
- No antialiasing: stylegan2-ada upsamples 2x with a wavelet filter before
  resampling and filters on the way down; here the image is sampled directly
  at the output pixels. This is a quality detail: rotations and shrinking
  alias a little more.
- Reflection continues indefinitely (mirror about the edge pixels' centres,
  edges not repeated), where stylegan2-ada pads by a margin and samples zeros
  beyond it, so every output value is a convex combination of input values.

The random numbers of a call come from `Draws`: drawn for the global batch
from a stateless seed and then cut to this replica's rows; with elementwise
maths per example, 1 or N replicas augment a global batch to the same bits.
Everything is differentiable with respect to the images (gathers and
selects, whose gradients are exact), has static shapes and no control flow
on tensor values. Nothing is clipped.
"""

import abc
import functools
import math
from typing import Callable, ClassVar, Iterable

import numpy as np
import tensorflow as tf

from trainer.errors import UserError
from trainer.registry import Registry

AUGMENTATIONS: Registry = Registry("augmentation", "augment.name")

DIFFAUGMENT_GROUPS = ("color", "translation", "cutout")
ADA_GROUPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
              "brightness", "contrast", "lumaflip", "hue", "saturation")


_Elementwise = Callable[[tf.Tensor], tf.Tensor]


class Draws:
  """Per-example random numbers of one augmentation call, replica-invariant.

  Each call draws `[global_batch, *shape]` numbers from its own sub-seed (the
  seed folded with a counter) and returns this replica's rows of them, so
  what an example gets depends only on the seed, the call's place in the
  sequence and the example's place in the global batch.

  A call's `transform` is applied to the whole global draw, before the rows
  are taken. It is for elementwise maths whose rounding depends on the size
  of the tensor: TensorFlow's exp, pow, sin and cos on a CPU vectorise all
  but a tail of it, and the two paths round differently, so on a replica's
  rows they could differ from one replica's whole batch in the last bit.

  Args:
    seed: stateless seed, int32 or int64 [2].
    global_batch: examples over all replicas.
    rows: this replica's rows of a [global_batch, ...] tensor; the identity
      for one replica.
  """

  def __init__(self, seed: tf.Tensor, global_batch: int,
               rows: Callable[[tf.Tensor], tf.Tensor] = lambda t: t):
    self._seed = seed
    self._global_batch = global_batch
    self._rows = rows
    self._count = 0

  def uniform(self, shape: tuple[int, ...] = (),
              transform: _Elementwise | None = None) -> tf.Tensor:
    """Uniform in [0, 1), [b, *shape] float32, then `transform`ed."""
    return self._take(tf.random.stateless_uniform(
        [self._global_batch, *shape], self._next_seed()), transform)

  def normal(self, shape: tuple[int, ...] = (),
             transform: _Elementwise | None = None) -> tf.Tensor:
    """Standard normal, [b, *shape] float32, then `transform`ed."""
    return self._take(tf.random.stateless_normal(
        [self._global_batch, *shape], self._next_seed()), transform)

  def integers(self, low: int, high: int,
               shape: tuple[int, ...] = ()) -> tf.Tensor:
    """Uniform integers in [low, high], both included, [b, *shape] int32."""
    count = high - low + 1
    # The minimum guards against u * count rounding up to count.
    index = tf.minimum(tf.floor(self.uniform(shape) * count), count - 1)
    return tf.cast(index, tf.int32) + low

  def _take(self, draw: tf.Tensor,
            transform: _Elementwise | None) -> tf.Tensor:
    return self._rows(draw if transform is None else transform(draw))

  def _next_seed(self) -> tf.Tensor:
    seed = tf.random.experimental.stateless_fold_in(self._seed, self._count)
    self._count += 1
    return seed


class Augmentation(abc.ABC):
  """A pipeline of augmentation groups; call it on one replica's images.

  Args:
    groups: the groups to use, each at most once, from `valid_groups`; None
      for all of them. They are applied in the pipeline's own order, whatever
      the order given.

  Raises:
    UserError: for an unknown group, a group named twice, or no group.
  """

  name: ClassVar[str]  # the registry name
  valid_groups: ClassVar[tuple[str, ...]]  # in the order they are applied
  uses_p: ClassVar[bool]  # whether p matters (else always applied)

  def __init__(self, groups: Iterable[str] | None = None):
    given = list(self.valid_groups if groups is None else groups)
    valid = ", ".join(sorted(self.valid_groups))
    where = f"of augmentation {self.name!r} in augment.groups"
    for group in given:
      if group not in self.valid_groups:
        raise UserError(f"unknown group {group!r} {where}; valid: {valid}")
      if given.count(group) > 1:
        raise UserError(f"group {group!r} is named twice {where}; name each "
                        f"at most once from: {valid}")
    if not given:
      raise UserError(f"no group {where}; give a comma-separated subset of: "
                      f"{valid}, or '' for all of them")
    self.groups = tuple(g for g in self.valid_groups if g in given)

  @abc.abstractmethod
  def __call__(self, images: tf.Tensor, p: tf.Tensor,
               draws: Draws) -> tf.Tensor:
    """Augmented images, of the shape and dtype of `images`.

    Args:
      images: [b, H, W, C] in [-1, 1], C 1 (grey) or 3 (RGB), static H, W, C.
      p: scalar probability of each transform (if `uses_p`).
      draws: this call's random numbers, for this replica's b rows.
    """

  def _check_channels(self, images: tf.Tensor) -> int:
    channels = images.shape[-1]
    if images.shape.rank != 4 or channels not in (1, 3):
      raise UserError(
          f"augmentation {self.name!r} takes images [B, H, W, C] with C 1 "
          f"(grey) or 3 (RGB); got shape {images.shape}")
    return channels


def _register(cls: type[Augmentation]) -> type[Augmentation]:
  return AUGMENTATIONS.register(cls.name)(cls)


def build(name: str, groups: str) -> Augmentation | None:
  """The augmentation `name` with comma-separated `groups` ("" for all).

  Returns None for the empty name, which means no augmentation.

  Raises:
    UserError: for an unknown name, an unknown or repeated group, or a list
      of groups that names none ("," say).
  """
  if not name:
    return None
  cls = AUGMENTATIONS.get(name)
  if not groups.strip():
    return cls()
  return cls([g.strip() for g in groups.split(",") if g.strip()])


def _per_image(values: tf.Tensor) -> tf.Tensor:
  """[b] -> [b, 1, 1, 1], to broadcast over an image's pixels."""
  return values[:, None, None, None]


# ----------------------------------------------------------------------------
# diffaugment


def _diff_color(x: tf.Tensor, draws: Draws) -> tf.Tensor:
  """Brightness, saturation (RGB only) and contrast, as the paper's code."""
  x = x + _per_image(draws.uniform() - 0.5)
  if x.shape[-1] > 1:  # grey has no saturation
    mean = tf.reduce_mean(x, axis=3, keepdims=True)  # [b, H, W, 1]
    x = mean + (x - mean) * _per_image(2.0 * draws.uniform())
  mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)  # [b, 1, 1, 1]
  return mean + (x - mean) * _per_image(draws.uniform() + 0.5)


def _diff_translation(x: tf.Tensor, draws: Draws) -> tf.Tensor:
  """Integer shift by up to 1/8 of each size, zeros shifted in."""
  for axis in (1, 2):
    size = x.shape[axis]
    limit = int(size * 0.125 + 0.5)
    shift = draws.integers(-limit, limit)  # [b]
    source = tf.range(size)[None, :] + shift[:, None]  # [b, size]
    inside = (source >= 0) & (source < size)
    moved = tf.gather(x, tf.clip_by_value(source, 0, size - 1), axis=axis,
                      batch_dims=1)  # [b, H, W, C]
    inside = tf.reshape(inside, [-1] + [size if a == axis else 1
                                        for a in (1, 2, 3)])
    x = tf.where(inside, moved, 0.0)
  return x


def _diff_cutout(x: tf.Tensor, draws: Draws) -> tf.Tensor:
  """Zeroes a square of half the size; its centre is anywhere in the image."""
  height, width = x.shape[1], x.shape[2]
  outside = []
  for size in (height, width):
    side = int(size * 0.5 + 0.5)
    # An even side has no centre pixel: one more position keeps the
    # square's overhang the same on both edges.
    start = draws.integers(0, size - side % 2) - side // 2  # [b]
    pixels = tf.range(size)[None, :] - start[:, None]  # [b, size]
    outside.append((pixels < 0) | (pixels >= side))
  keep = outside[0][:, :, None] | outside[1][:, None, :]  # [b, H, W]
  return tf.where(keep[..., None], x, 0.0)


_DIFF_STEPS: dict[str, Callable[[tf.Tensor, Draws], tf.Tensor]] = {
    "color": _diff_color, "translation": _diff_translation,
    "cutout": _diff_cutout}


@_register
class DiffAugment(Augmentation):
  """DiffAugment's colour, translation and cutout on every image."""

  name = "diffaugment"
  valid_groups = DIFFAUGMENT_GROUPS
  uses_p = False

  def __call__(self, images: tf.Tensor, p: tf.Tensor,
               draws: Draws) -> tf.Tensor:
    del p  # always applied
    self._check_channels(images)
    x = tf.cast(images, tf.float32)  # [b, H, W, C]
    for group in self.groups:
      x = _DIFF_STEPS[group](x, draws)
    return tf.cast(x, images.dtype)


# ----------------------------------------------------------------------------
# ada

# The paper's strengths (stylegan2-ada's defaults).
_XINT_MAX = 0.125  # of the size
_SCALE_STD = 0.2  # log2
_ROTATE_MAX = 1.0  # of a full circle
_ANISO_STD = 0.2  # log2
_XFRAC_STD = 0.125  # of the size
_BRIGHTNESS_STD = 0.2
_CONTRAST_STD = 0.5  # log2
_HUE_MAX = 1.0  # of a full circle
_SATURATION_STD = 1.0  # log2


def _pick(draws: Draws, p: tf.Tensor, value: tf.Tensor,
          identity: float | list[float]) -> tf.Tensor:
  """`value` [b, ...] for examples chosen with probability p, else identity.

  `identity` is a scalar or a row [n] for values [b, n].
  """
  chosen = draws.uniform() < p  # [b]
  chosen = tf.reshape(chosen, [-1] + [1] * (value.shape.rank - 1))
  return tf.where(chosen, value, tf.cast(identity, value.dtype))


def _log2_normal(draws: Draws, std: float) -> tf.Tensor:
  """2**(std * n) and its inverse, n standard normal: [b, 2]."""
  return draws.normal(
      transform=lambda n: 2.0**(tf.stack([n, -n], axis=-1) * std))


def _turn(draws: Draws, max_turns: float) -> tf.Tensor:
  """cos and sin of an angle uniform within +-max_turns of a circle: [b, 2]."""

  def cos_sin(u):
    theta = (2.0 * u - 1.0) * math.pi * max_turns
    return tf.stack([tf.cos(theta), tf.sin(theta)], axis=-1)

  return draws.uniform(transform=cos_sin)


def _affine(a, b, c, d, tx, ty) -> tf.Tensor:
  """[[a, b, tx], [c, d, ty], [0, 0, 1]] from [b] tensors -> [b, 3, 3]."""
  zero, one = tf.zeros_like(a), tf.ones_like(a)
  return tf.stack([tf.stack([a, b, tx], -1), tf.stack([c, d, ty], -1),
                   tf.stack([zero, zero, one], -1)], -2)


def _scaling(sx: tf.Tensor, sy: tf.Tensor) -> tf.Tensor:
  zero = tf.zeros_like(sx)
  return _affine(sx, zero, zero, sy, zero, zero)


def _rotation(cos: tf.Tensor, sin: tf.Tensor) -> tf.Tensor:
  zero = tf.zeros_like(cos)
  return _affine(cos, -sin, sin, cos, zero, zero)


def _translation(tx: tf.Tensor, ty: tf.Tensor) -> tf.Tensor:
  one, zero = tf.ones_like(tx), tf.zeros_like(tx)
  return _affine(one, zero, zero, one, tx, ty)


# Geometric steps: (draws, p, (height, width)) -> the inverse [b, 3, 3] of
# the step's transform, mapping output pixels to input pixels in pixel
# coordinates centred on the image. For an example not chosen it is exactly
# the identity. Their product, in this order, is the paper's.
_Step = Callable[[Draws, tf.Tensor, tuple[int, int]], tf.Tensor]


def _xflip(draws: Draws, p: tf.Tensor,
           size: tuple[int, int]) -> tf.Tensor:
  del size
  flip = _pick(draws, p, tf.cast(draws.integers(0, 1), tf.float32), 0.0)
  return _scaling(1.0 - 2.0 * flip, tf.ones_like(flip))


def _rotate90(draws: Draws, p: tf.Tensor,
              size: tuple[int, int]) -> tf.Tensor:
  del size
  quarters = _pick(draws, p, draws.integers(0, 3), 0)  # [b]
  # Exact cosines and sines, so that pixels land on pixels.
  cos = tf.gather([1.0, 0.0, -1.0, 0.0], quarters)
  sin = tf.gather([0.0, 1.0, 0.0, -1.0], quarters)
  return _rotation(cos, sin)


def _xint(draws: Draws, p: tf.Tensor,
          size: tuple[int, int]) -> tf.Tensor:
  height, width = size
  shift = _pick(draws, p, (2.0 * draws.uniform([2]) - 1.0) * _XINT_MAX, 0.0)
  shift = tf.round(shift * [width, height])  # [b, 2], whole pixels
  return _translation(-shift[:, 0], -shift[:, 1])


def _scale(draws: Draws, p: tf.Tensor,
           size: tuple[int, int]) -> tf.Tensor:
  del size
  inverse = _pick(draws, p, _log2_normal(draws, _SCALE_STD)[:, 1], 1.0)
  return _scaling(inverse, inverse)


def _rotate(draws: Draws, p: tf.Tensor,
            size: tuple[int, int]) -> tf.Tensor:
  """One of the two rotations, around `aniso`."""
  del size
  # Each with 1 - sqrt(1 - p): an image is rotated at all with probability p.
  p_each = 1.0 - tf.sqrt(tf.clip_by_value(1.0 - p, 0.0, 1.0))
  cos_sin = _pick(draws, p_each, _turn(draws, _ROTATE_MAX), [1.0, 0.0])
  return _rotation(cos_sin[:, 0], cos_sin[:, 1])


def _aniso(draws: Draws, p: tf.Tensor,
           size: tuple[int, int]) -> tf.Tensor:
  del size
  gain, inverse = tf.unstack(
      _pick(draws, p, _log2_normal(draws, _ANISO_STD), 1.0), axis=1)
  return _scaling(inverse, gain)


def _xfrac(draws: Draws, p: tf.Tensor,
           size: tuple[int, int]) -> tf.Tensor:
  height, width = size
  shift = _pick(draws, p, draws.normal([2]) * _XFRAC_STD, 0.0)
  shift = shift * [width, height]  # [b, 2], pixels
  return _translation(-shift[:, 0], -shift[:, 1])


_GEOMETRIC_STEPS: tuple[tuple[str, _Step], ...] = (
    ("xflip", _xflip), ("rotate90", _rotate90), ("xint", _xint),
    ("scale", _scale), ("rotate", _rotate), ("aniso", _aniso),
    ("rotate", _rotate), ("xfrac", _xfrac))

# Colour matrices act on homogeneous RGB columns (r, g, b, 1). NumPy, so that
# importing this module does not start TensorFlow's devices.
_LUMA = np.array([1, 1, 1, 0], np.float32) / np.sqrt(3, dtype=np.float32)
_LUMA_OUTER = np.outer(_LUMA, _LUMA)  # v v^T, v the unit luma axis
_RGB = np.diag(np.array([1, 1, 1, 0], np.float32))  # I3, in 4x4
_CHROMA = _RGB - _LUMA_OUTER  # projects off the luma axis
_LUMA_CROSS = np.array([[0, -1, 1, 0], [1, 0, -1, 0], [-1, 1, 0, 0],
                        [0, 0, 0, 0]], np.float32) / np.sqrt(
                            3, dtype=np.float32)  # w -> v x w
_OFFSET = np.zeros([4, 4], np.float32)
_OFFSET[:3, 3] = 1  # adds the same to r, g and b

# Colour steps: (draws, p) -> the step's matrix [b, 4, 4], as I + sums of
# (parameter - its identity) * a basis, so that for an example not chosen it
# is exactly the identity.
_ColourStep = Callable[[Draws, tf.Tensor], tf.Tensor]


def _identity_plus(*terms: tuple[tf.Tensor, np.ndarray]) -> tf.Tensor:
  """I4 + sum of weights [b] * basis [4, 4] -> [b, 4, 4]."""
  return sum(w[:, None, None] * basis for w, basis in terms) + np.eye(
      4, dtype=np.float32)


def _brightness(draws: Draws, p: tf.Tensor) -> tf.Tensor:
  offset = _pick(draws, p, draws.normal() * _BRIGHTNESS_STD, 0.0)
  return _identity_plus((offset, _OFFSET))


def _contrast(draws: Draws, p: tf.Tensor) -> tf.Tensor:
  gain = _pick(draws, p, _log2_normal(draws, _CONTRAST_STD)[:, 0], 1.0)
  return _identity_plus((gain - 1.0, _RGB))


def _lumaflip(draws: Draws, p: tf.Tensor) -> tf.Tensor:
  flip = _pick(draws, p, tf.cast(draws.integers(0, 1), tf.float32), 0.0)
  return _identity_plus((flip, -2.0 * _LUMA_OUTER))  # Householder reflection


def _hue(draws: Draws, p: tf.Tensor) -> tf.Tensor:
  cos, sin = tf.unstack(
      _pick(draws, p, _turn(draws, _HUE_MAX), [1.0, 0.0]), axis=1)
  # Rodrigues about v: cos I + sin [v]x + (1 - cos) v v^T.
  return _identity_plus((cos - 1.0, _CHROMA), (sin, _LUMA_CROSS))


def _saturation(draws: Draws, p: tf.Tensor) -> tf.Tensor:
  gain = _pick(draws, p, _log2_normal(draws, _SATURATION_STD)[:, 0], 1.0)
  return _identity_plus((gain - 1.0, _CHROMA))


_COLOUR_STEPS: tuple[tuple[str, _ColourStep], ...] = (
    ("brightness", _brightness), ("contrast", _contrast),
    ("lumaflip", _lumaflip), ("hue", _hue), ("saturation", _saturation))
# Identities on grey images, as in the paper: they turn and scale colours
# about the luma axis, and grey values lie on it.
_RGB_ONLY = ("hue", "saturation")


def _matmul(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """a [b, n, m] @ b [b, m, k] or [m, k], as a sum of m products.

  Elementwise products and sums round the same whatever the batch size, so
  1 and N replicas get the same bits; a matmul kernel chooses its blocking,
  and with it its rounding, by the shapes it is given.
  """
  return tf.add_n([a[..., :, k:k + 1] * b[..., k:k + 1, :]
                   for k in range(a.shape[-1])])


def _where_moved(matrix: tf.Tensor, changed: tf.Tensor,
                 x: tf.Tensor) -> tf.Tensor:
  """`changed` for images whose matrix [b, n, n] is not the identity, else x.

  An image that no transform chose keeps its values exactly (p = 0 is the
  identity, bit for bit), whatever rounding the resampling or recolouring
  would bring.
  """
  eye = np.eye(matrix.shape[-1], dtype=np.float32)
  moved = tf.reduce_any(tf.not_equal(matrix, eye), axis=[1, 2])  # [b]
  return tf.where(_per_image(moved), changed, x)


def _resample(x: tf.Tensor, inverse: tf.Tensor) -> tf.Tensor:
  """x [b, H, W, C] at inverse [b, 3, 3] @ each output pixel, bilinearly.

  Outside the image, samples come from its mirror images about the edge
  pixels. Gathers, so that the gradient with respect to x is exact.
  """
  height, width, channels = x.shape[1:]
  centre = np.array([(width - 1) / 2, (height - 1) / 2], np.float32)
  ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  grid = np.stack([xs.ravel() - centre[0], ys.ravel() - centre[1],
                   np.ones(height * width)]).astype(np.float32)  # [3, H*W]
  source = _matmul(inverse[:, :2, :], grid) + centre[:, None]  # [b, 2, H*W]
  low = tf.floor(source)  # (x, y)
  fx, fy = tf.unstack((source - low)[..., None], axis=1)  # [b, H*W, 1] each
  low = tf.cast(low, tf.int32)
  flat = tf.reshape(x, [-1, height * width, channels])

  def tap(dx: int, dy: int) -> tf.Tensor:
    column = _reflect(low[:, 0] + dx, width)  # [b, H*W]
    row = _reflect(low[:, 1] + dy, height)
    return tf.gather(flat, row * width + column, batch_dims=1)  # [b, H*W, C]

  top = tap(0, 0) * (1.0 - fx) + tap(1, 0) * fx
  bottom = tap(0, 1) * (1.0 - fx) + tap(1, 1) * fx
  out = top * (1.0 - fy) + bottom * fy  # [b, H*W, C]
  return tf.reshape(out, [-1, height, width, channels])


def _reflect(index: tf.Tensor, size: int) -> tf.Tensor:
  """Integer indices folded into [0, size) by mirroring about the edges."""
  period = max(2 * (size - 1), 1)
  folded = tf.math.floormod(index, period)
  return tf.minimum(folded, period - folded)


def _recolour(x: tf.Tensor, matrix: tf.Tensor) -> tf.Tensor:
  """x [b, H, W, C] through matrix [b, 4, 4] in homogeneous RGB.

  A grey value takes the mean of the matrix's RGB rows, as in the paper.
  """
  linear, offset = matrix[:, :3, :3], matrix[:, :3, 3]  # [b, 3, 3], [b, 3]
  if x.shape[-1] == 3:
    # Column j of the matrix times channel j, summed as in `_matmul`.
    return tf.add_n([x[..., j:j + 1] * linear[:, None, None, :, j]
                     for j in range(3)]) + offset[:, None, None, :]
  # Row sums first: each row of the identity sums to exactly 1.
  gain = tf.reduce_mean(tf.reduce_sum(linear, axis=2), axis=1)  # [b]
  return x * _per_image(gain) + _per_image(tf.reduce_mean(offset, axis=1))


@_register
class Ada(Augmentation):
  """ADA's geometric and colour transforms, each with probability p."""

  name = "ada"
  valid_groups = ADA_GROUPS
  uses_p = True

  def __call__(self, images: tf.Tensor, p: tf.Tensor,
               draws: Draws) -> tf.Tensor:
    channels = self._check_channels(images)
    p = tf.cast(p, tf.float32)
    x = tf.cast(images, tf.float32)  # [b, H, W, C]
    size = (x.shape[1], x.shape[2])
    geometric = [step(draws, p, size) for group, step in _GEOMETRIC_STEPS
                 if group in self.groups]
    if geometric:
      inverse = functools.reduce(_matmul, geometric)  # [b, 3, 3]
      x = _where_moved(inverse, _resample(x, inverse), x)
    colour = [step(draws, p) for group, step in _COLOUR_STEPS
              if group in self.groups
              and (channels == 3 or group not in _RGB_ONLY)]
    if colour:
      # Each step acts on the result of the ones before: M_n ... M_2 M_1.
      matrix = functools.reduce(lambda done, step: _matmul(step, done),
                                colour)
      x = _where_moved(matrix, _recolour(x, matrix), x)
    return tf.cast(x, images.dtype)
