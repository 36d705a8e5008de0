"""Image utilities for trainer.apply: files, grids, masks, quality, baselines.

Inpainting, super-resolution and sampling share these; none of them knows
about models. Conventions, for every function here:

  * images are float32 [B, H, W, C] in [-1, 1], C = 1 (grayscale) or 3 (RGB);
  * "uint8 images" are [B, H, W, C] or [H, W, C] in [0, 255];
  * a mask is float32 [B, H, W, 1] (or [H, W, 1]) with 1 = known pixel and
    0 = hole, the missing pixel to fill. Mask PNG files use the opposite, more
    common convention (LaMa's, for example): white marks the hole.
"""

import io
import os

import numpy as np
from PIL import Image
import tensorflow as tf

from trainer import files
from trainer.errors import UserError
from trainer.registry import Registry

# The uint8 value of 0.0, the middle of [-1, 1]: grid gaps and missing tiles.
_GRAY = 128
# ITU-R BT.601 luma weights, as in tf.image.rgb_to_grayscale and PIL's "L".
_LUMA = np.array([0.299, 0.587, 0.114])
_CHANNEL_NAMES = {1: "grayscale", 2: "grayscale and alpha", 3: "RGB",
                  4: "RGBA"}
# Mask PNG pixels brighter than this (white) mark the hole.
_HOLE_THRESHOLD = 127
# [-1, 1] spans 2: the peak of PSNR.
_DATA_RANGE = 2.0
# SSIM as in Wang et al. 2004 and tf.image.ssim: an 11x11 Gaussian window,
# on images mapped to [0, 1] (so the data range L in C1, C2 is 1).
_SSIM_SIZE = 11
_SSIM_RADIUS = _SSIM_SIZE // 2
_SSIM_SIGMA = 1.5
_SSIM_C1 = 0.01**2  # (K1 L)^2
_SSIM_C2 = 0.03**2  # (K2 L)^2
_BOXES_PER_IMAGE = 3
# The files of a folder that read_images takes.
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def to_uint8(images: np.ndarray) -> np.ndarray:
  """[-1, 1] floats -> uint8 [0, 255], rounded to nearest, clipped.

  0.0 maps to 128 (127.5 rounds half to even), the mid-gray of grids.
  """
  scaled = (np.asarray(images, np.float64) + 1.0) * 127.5
  return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def from_uint8(images: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1], as x / 127.5 - 1."""
  return np.asarray(images, np.float32) / np.float32(127.5) - np.float32(1.0)


def _as_uint8(images: np.ndarray) -> np.ndarray:
  """uint8 images as they are; [-1, 1] floats through to_uint8."""
  images = np.asarray(images)
  return images if images.dtype == np.uint8 else to_uint8(images)


def _decode(path: str) -> np.ndarray:
  """The image file at `path` (any tf.io.gfile path) as uint8 [H, W, C].

  C is 1 to 4: grayscale, grayscale and alpha, RGB or RGBA.

  Raises:
    UserError: there is no such file, or it is not a decodable image.
  """
  if tf.io.gfile.isdir(path):
    raise UserError(f"{path} is a folder, and this reads one image file (a "
                    "PNG, JPEG, GIF or BMP); give one of its images")
  if not tf.io.gfile.exists(path):
    raise UserError(f"{path} does not exist")
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  try:
    return tf.io.decode_image(data, expand_animations=False).numpy()
  except tf.errors.InvalidArgumentError as e:
    raise UserError(f"{path} is not an image that can be decoded (PNG, JPEG, "
                    "GIF or BMP)") from e


def _with_channels(image: np.ndarray, channels: int) -> np.ndarray:
  """uint8 [H, W, C], C in 1..4 -> float64 [H, W, channels] in [0, 255].

  Alpha is dropped, not composited: the models know no transparency. RGB ->
  grayscale is the luminance; grayscale -> RGB repeats the one channel.
  """
  colour = image[..., :3] if image.shape[-1] >= 3 else image[..., :1]
  colour = colour.astype(np.float64)
  if colour.shape[-1] == channels:
    return colour
  if channels == 1:
    return colour @ _LUMA[:, None]  # [H, W, 1]
  return np.repeat(colour, 3, axis=-1)  # [H, W, 3]


def _describe_channels(count: int) -> str:
  return f"{count} channel{'s' if count > 1 else ''} ({_CHANNEL_NAMES[count]})"


def image_size(path: str) -> tuple[int, int]:
  """(height, width) of an image file.

  Raises:
    UserError: a missing file, or one that is not an image.
  """
  return _decode(path).shape[:2]


def read_image(path: str, *, image_size: int, channels: int,
               resize: bool) -> np.ndarray:
  """Reads a PNG or JPEG (GIF, BMP) file for a model of the given image shape.

  Args:
    path: any tf.io.gfile path (local, gs://).
    image_size: the model's image height and width.
    channels: the model's channels, 1 (grayscale) or 3 (RGB).
    resize: whether to make the image fit: RGB(A) <-> grayscale as needed
      (alpha dropped, gray = BT.601 luminance), then a bicubic, antialiased
      resize to image_size x image_size. A non-square image is stretched.
      An image that already fits is returned as it is.

  Returns:
    uint8 [image_size, image_size, channels].

  Raises:
    UserError: a missing file, one that is not an image, or (without resize)
      one of another size or channel count.
    ValueError: channels is neither 1 nor 3.
  """
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3, got {channels}")
  image = _decode(path)  # [h, w, c]
  height, width, have = image.shape
  fits = (height, width) == (image_size, image_size)
  if not resize:
    if not fits:
      raise UserError(
          f"{path} is {width}x{height} but the model takes "
          f"{image_size}x{image_size} images; pass --resize to resize it")
    if have != channels:
      raise UserError(
          f"{path} has {_describe_channels(have)} but the model takes "
          f"{channels} ({_CHANNEL_NAMES[channels]}); pass --resize to "
          "convert it")
    return image
  converted = _with_channels(image, channels)  # [h, w, channels]
  if not fits:
    converted = tf.image.resize(converted, [image_size, image_size],
                                method="bicubic", antialias=True).numpy()
  return np.clip(np.round(converted), 0, 255).astype(np.uint8)


def read_images(path: str, *, flag: str, image_size: int, channels: int,
                resize: bool) -> tuple[np.ndarray, list[str]]:
  """The images of a folder (its PNG and JPEG files, by name) or one file.

  Args:
    path: a folder or an image file, any tf.io.gfile path.
    flag: the flag that gave it, for the messages (e.g. "--positive").
    image_size, channels, resize: as read_image.

  Returns:
    uint8 [N, image_size, image_size, channels] and the N files' paths.

  Raises:
    UserError: a missing path, a folder that cannot be listed or has no
      image file, or an image that read_image refuses.
  """
  paths = [path]
  if tf.io.gfile.isdir(path):
    try:
      names = tf.io.gfile.listdir(path)
    except tf.errors.OpError as e:
      raise UserError(f"{flag}={path}: the folder cannot be read "
                      f"({e.message})") from None
    paths = [os.path.join(path, name) for name in sorted(names)
             if name.lower().endswith(_IMAGE_SUFFIXES)]
    if not paths:
      raise UserError(f"{flag}={path} has no PNG or JPEG image")
  images = [read_image(p, image_size=image_size, channels=channels,
                       resize=resize) for p in paths]
  return np.stack(images), paths


def write_png(path: str, image: np.ndarray) -> None:
  """Writes one image as a PNG, atomically.

  Args:
    path: any tf.io.gfile path (local, gs://).
    image: [H, W, C], [-1, 1] floats or uint8; C = 1 is written as grayscale.
  """
  image = _as_uint8(image)
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise ValueError(f"write_png takes one [H, W, C] image with C in 1..4, "
                     f"got shape {image.shape}")
  files.write_atomically(path, tf.io.encode_png(image).numpy())


def grid(images: np.ndarray, columns: int, *, border: int = 1) -> np.ndarray:
  """Tiles images in rows of `columns`, `border` gray pixels between them.

  Args:
    images: [N, H, W, C], [-1, 1] floats or uint8.
    columns: tiles per row; the last row is filled up with gray tiles.
    border: the width of the mid-gray gap between neighbouring tiles (none
      around the outside).

  Returns:
    uint8 [R * (H + border) - border, columns * (W + border) - border, C],
    with R = ceil(N / columns) rows.
  """
  tiles = _as_uint8(images)  # [N, H, W, C]
  if tiles.ndim != 4 or not len(tiles):
    raise ValueError(f"grid takes a non-empty [N, H, W, C] batch, got shape "
                     f"{tiles.shape}")
  if columns < 1 or border < 0:
    raise ValueError(f"need columns >= 1 and border >= 0, got {columns} and "
                     f"{border}")
  count, height, width, channels = tiles.shape
  rows = -(-count // columns)
  step_y, step_x = height + border, width + border
  picture = np.full((rows * step_y - border, columns * step_x - border,
                     channels), _GRAY, np.uint8)
  for index, tile in enumerate(tiles):
    row, column = divmod(index, columns)
    picture[row * step_y:row * step_y + height,
            column * step_x:column * step_x + width] = tile
  return picture


def write_gif(path: str, frames: np.ndarray, *, frame_ms: int = 80,
              scale: int = 1) -> None:
  """Writes frames as an animated GIF that loops forever, atomically.

  GIF stores durations in hundredths of a second, so frame_ms is rounded to
  10 ms; a palette of 256 colours may quantize RGB frames (grayscale is
  exact). Pillow merges consecutive identical frames into one longer frame,
  which plays the same.

  Args:
    path: any tf.io.gfile path (local, gs://).
    frames: [T, H, W, C], [-1, 1] floats or uint8, C = 1 or 3.
    frame_ms: how long each frame shows.
    scale: each pixel becomes scale x scale pixels (nearest neighbour), as
      small images are hard to see at their size.
  """
  frames = _as_uint8(frames)  # [T, H, W, C]
  if frames.ndim != 4 or not len(frames) or frames.shape[-1] not in (1, 3):
    raise ValueError(f"write_gif takes non-empty [T, H, W, C] frames with C "
                     f"1 or 3, got shape {frames.shape}")
  if scale < 1:
    raise ValueError(f"scale must be >= 1, got {scale}")
  frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
  if frames.shape[-1] == 1:
    frames = frames[..., 0]  # [T, H, W]: PIL's "L" mode
  pictures = [Image.fromarray(np.ascontiguousarray(frame)) for frame in frames]
  buffer = io.BytesIO()
  pictures[0].save(buffer, format="GIF", save_all=True,
                   append_images=pictures[1:], duration=frame_ms, loop=0)
  files.write_atomically(path, buffer.getvalue())


# Masks.

# (count, size, seed) -> float32 [count, size, size, 1], 1 = known, 0 = hole.
MASKS: Registry = Registry("mask", "--mask")


def _mask_from_holes(holes: np.ndarray) -> np.ndarray:
  """bool [N, S, S], True = hole -> float32 mask [N, S, S, 1]."""
  return (~holes)[..., None].astype(np.float32)


@MASKS.register("center")
def _center(count: int, size: int, seed: int) -> np.ndarray:
  """A centred square hole of side size // 2: rows and columns 7..20 of 28."""
  del seed  # every image has the same hole
  side = size // 2
  start = (size - side) // 2
  holes = np.zeros((count, size, size), bool)
  holes[:, start:start + side, start:start + side] = True
  return _mask_from_holes(holes)


@MASKS.register("left_half")
def _left_half(count: int, size: int, seed: int) -> np.ndarray:
  """The left size // 2 columns are the hole."""
  del seed  # every image has the same hole
  holes = np.zeros((count, size, size), bool)
  holes[:, :, :size // 2] = True
  return _mask_from_holes(holes)


@MASKS.register("random_boxes")
def _random_boxes(count: int, size: int, seed: int) -> np.ndarray:
  """Per image, the union of 3 random rectangular holes; the seed fixes them.

  Each box's height and width are drawn independently from [size // 8,
  size // 3] (at least 1), its corner uniformly from where the box fits.
  """
  rng = np.random.default_rng(seed)
  low = max(1, size // 8)
  high = max(low, size // 3)
  sides = rng.integers(low, high + 1, size=(count, _BOXES_PER_IMAGE, 2))
  corners = rng.integers(0, size - sides + 1)  # [N, boxes, (top, left)]
  holes = np.zeros((count, size, size), bool)
  for image, image_sides, image_corners in zip(holes, sides, corners):
    for (height, width), (top, left) in zip(image_sides, image_corners):
      image[top:top + height, left:left + width] = True
  return _mask_from_holes(holes)


def _read_mask_png(path: str, *, size: int, resize: bool) -> np.ndarray:
  """A mask file (white = hole) as float32 [size, size, 1], 1 = known."""
  holes = _with_channels(_decode(path), 1) > _HOLE_THRESHOLD  # [h, w, 1]
  height, width = holes.shape[:2]
  if (height, width) != (size, size):
    if not resize:
      raise UserError(
          f"mask {path} is {width}x{height} but the images are {size}x{size}; "
          "pass --resize to resize it (nearest neighbour)")
    # Nearest neighbour keeps the mask binary.
    holes = tf.image.resize(holes.astype(np.float32), [size, size],
                            method="nearest").numpy() > 0.5
  return (~holes).astype(np.float32)


def _check_mask(mask: np.ndarray, name: str, hint: str = "") -> None:
  """UserError unless each mask of [N, S, S, 1] has a hole and a known pixel.

  Args:
    mask: [N, S, S, 1], 1 = known, 0 = hole.
    name: the mask as the message names it.
    hint: appended to the message, e.g. how a file marks holes.
  """
  holes = (mask < 0.5).reshape(len(mask), -1)  # [N, S * S]
  if not holes.any(axis=1).all():
    raise UserError(f"{name} has no hole, so there is nothing to fill{hint}")
  if holes.all(axis=1).any():
    raise UserError(f"{name} has no known pixel, so there is nothing to fill "
                    f"the hole from{hint}")


def load_mask(spec: str, *, count: int, size: int, seed: int,
              resize: bool) -> np.ndarray:
  """The masks that a --mask setting names.

  Args:
    spec: a built-in mask's name (MASKS), or the path of a PNG (any
      tf.io.gfile path) whose white pixels (luminance > 127) mark the hole,
      the convention of LaMa and most inpainting data. A name wins over a
      file of that name; pass ./center for the file.
    count: how many masks; a PNG's one mask is repeated.
    size: the images' height and width.
    seed: fixes the random built-in masks.
    resize: whether a PNG of another size is resized (nearest neighbour).

  Returns:
    float32 [count, size, size, 1], 1 = known, 0 = hole.

  Raises:
    UserError: spec is neither a name nor a file, the file is not an image or
      (without resize) of another size, or a mask has no hole or no known
      pixel.
  """
  if spec in MASKS:
    mask = MASKS.get(spec)(count, size, seed)
    _check_mask(mask, f"mask {spec!r} at size {size}")
    return mask
  if not tf.io.gfile.exists(spec) or tf.io.gfile.isdir(spec):
    raise UserError(
        f"mask {spec!r} is neither a built-in mask ({', '.join(MASKS)}) nor "
        "an existing file; a PNG path is also accepted, white pixels marking "
        "the hole")
  mask = _read_mask_png(spec, size=size, resize=resize)  # [size, size, 1]
  mask = np.repeat(mask[None], count, axis=0)
  _check_mask(mask, f"mask {spec}", " (white pixels, > 127, mark the hole)")
  return mask


# Quality numbers.


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Two batches as float64 [B, H, W, C] of one shape; ValueError if not."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim != 4:
    raise ValueError(f"need two [B, H, W, C] batches of one shape, got "
                     f"{a.shape} and {b.shape}")
  return a, b


def _region_mean(values: np.ndarray,
                 region: np.ndarray | None) -> np.ndarray:
  """Per image, the mean of values [B, H, W, C] over counted pixels.

  Args:
    values: [B, H, W, C].
    region: [B, H, W, 1] or [H, W, 1], 1 where counted, 0 elsewhere; None
      counts every pixel.

  Returns:
    float64 [B]: the mean over the counted pixels and all channels.
  """
  if region is None:
    return values.mean(axis=(1, 2, 3))
  weights = np.broadcast_to(np.asarray(region, np.float64),
                            values.shape[:3] + (1,))  # [B, H, W, 1]
  counted = weights.sum(axis=(1, 2, 3)) * values.shape[-1]  # [B]
  if (counted <= 0).any():
    raise ValueError(f"region counts no pixel of image(s) "
                     f"{np.flatnonzero(counted <= 0).tolist()}")
  return (values * weights).sum(axis=(1, 2, 3)) / counted


def psnr(a: np.ndarray, b: np.ndarray,
         region: np.ndarray | None = None) -> np.ndarray:
  """Peak signal-to-noise ratio in dB, per image.

  The peak is the data range 2 of [-1, 1]: the same as PSNR of both images
  mapped to [0, 1] with peak 1.

  Args:
    a: [B, H, W, C] in [-1, 1].
    b: like a.
    region: [B, H, W, 1], 1 where counted (e.g. 1 - mask: the hole), 0
      elsewhere; None counts all pixels. The squared error is averaged over
      the counted pixels and all channels.

  Returns:
    float64 [B], 10 log10(4 / mse). Identical images (mse 0) give +inf,
    which callers must handle (e.g. leave out of a mean, or report it).
  """
  a, b = _pair(a, b)
  mse = _region_mean(np.square(a - b), region)
  with np.errstate(divide="ignore"):
    return 10.0 * np.log10(_DATA_RANGE**2 / mse)


def _gaussian_blur(x: np.ndarray) -> np.ndarray:
  """The 11x11 SSIM window over the valid positions.

  [B, H, W, C] -> [B, H - 10, W - 10, C]. The 2-D Gaussian is the outer
  product of two 1-D ones, so two 1-D passes give it.
  """
  offsets = np.arange(_SSIM_SIZE) - _SSIM_RADIUS
  window = np.exp(-0.5 * (offsets / _SSIM_SIGMA)**2)
  window /= window.sum()
  for axis in (1, 2):
    x = np.lib.stride_tricks.sliding_window_view(x, _SSIM_SIZE,
                                                 axis=axis) @ window
  return x


def _ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Per-pixel SSIM [B, H, W, C], the window centred on each pixel.

  a and b are in [0, 1].

  Both images are extended by reflection (without repeating the edge), so
  that every pixel has a window; pixels whose window fits inside the image
  do not see the extension.
  """
  padding = [(0, 0), (_SSIM_RADIUS, _SSIM_RADIUS),
             (_SSIM_RADIUS, _SSIM_RADIUS), (0, 0)]
  a = np.pad(a, padding, mode="reflect")
  b = np.pad(b, padding, mode="reflect")
  mean_a, mean_b = _gaussian_blur(a), _gaussian_blur(b)
  variance_a = _gaussian_blur(a * a) - mean_a**2
  variance_b = _gaussian_blur(b * b) - mean_b**2
  covariance = _gaussian_blur(a * b) - mean_a * mean_b
  luminance = ((2.0 * mean_a * mean_b + _SSIM_C1) /
               (mean_a**2 + mean_b**2 + _SSIM_C1))
  structure = ((2.0 * covariance + _SSIM_C2) /
               (variance_a + variance_b + _SSIM_C2))
  return luminance * structure


def ssim(a: np.ndarray, b: np.ndarray,
         region: np.ndarray | None = None) -> np.ndarray:
  """Structural similarity (Wang et al. 2004), per image.

  An 11x11 Gaussian window with sigma 1.5, K1 = 0.01 and K2 = 0.03, on the
  images mapped to [0, 1] (data range 1): the same number as on uint8 images
  with data range 255, the one usually reported. Not on [-1, 1] as they are
  (tf.image.ssim(a, b, max_val=2.0)): the luminance term assumes nonnegative
  intensities, and with signed ones it turns negative where two local means
  differ in sign, so that an image and its negative score high (about 0.7
  for MNIST-like images). The contrast-structure term is the same either way.

  Without a region, the per-pixel map is averaged where the window fits inside
  the image ("valid"), which is tf.image.ssim((a + 1) / 2, (b + 1) / 2,
  max_val=1.0).

  With a region, the map is the window centred on each pixel, the images
  extended by reflection at the borders, and averaged over the region's
  pixels. Reflection rather than counting only the pixels whose window fits:
  holes often touch the border (left_half, random boxes, user masks), and
  counting only fitting windows would leave out part of such a hole, or all
  of a small one near an edge. For the centre hole, 14x14 in 28x28, every
  hole pixel's window fits, so the two choices agree there. Because of the
  border pixels, a region of all ones does not give the region=None value.

  Args:
    a: [B, H, W, C] in [-1, 1], H and W at least 11.
    b: like a.
    region: [B, H, W, 1], 1 where counted (e.g. 1 - mask: the hole), 0
      elsewhere; None for the whole image as above.

  Returns:
    float64 [B], 1 for identical images.
  """
  a, b = _pair(a, b)
  a, b = (a + 1.0) / 2.0, (b + 1.0) / 2.0  # [0, 1], see above
  if min(a.shape[1:3]) < _SSIM_SIZE:
    raise ValueError(f"ssim needs images of at least {_SSIM_SIZE}x"
                     f"{_SSIM_SIZE} pixels (its window), got {a.shape}")
  similarity = _ssim_map(a, b)  # [B, H, W, C]
  if region is None:
    similarity = similarity[:, _SSIM_RADIUS:-_SSIM_RADIUS,
                            _SSIM_RADIUS:-_SSIM_RADIUS]
  return _region_mean(similarity, region)


# Operators and baselines.


def downsample(images: tf.Tensor, factor: int) -> tf.Tensor:
  """Area averaging: each factor x factor block becomes its mean.

  TensorFlow ops, so that it is differentiable and works in a tf.function:
  inversion optimizes a generator's output through it.

  Args:
    images: [B, H, W, C] float, H and W known statically.
    factor: the downsampling factor; must divide H and W.

  Returns:
    [B, H / factor, W / factor, C].

  Raises:
    UserError: factor does not divide the image size; the message lists the
      factors that do.
  """
  images = tf.convert_to_tensor(images)  # [B, H, W, C]
  height, width = images.shape[1], images.shape[2]
  if height is None or width is None:
    raise ValueError(f"downsample needs a static image size, got shape "
                     f"{images.shape}")
  if factor < 1 or height % factor or width % factor:
    valid = [f for f in range(2, min(height, width) + 1)
             if height % f == 0 and width % f == 0]
    raise UserError(
        f"factor {factor} does not divide the {width}x{height} image size; "
        f"valid factors: {', '.join(map(str, valid)) or 'none'}")
  return tf.nn.avg_pool2d(images, ksize=factor, strides=factor,
                          padding="VALID")  # [B, H / f, W / f, C]


def bicubic_upsample(low: np.ndarray, factor: int) -> np.ndarray:
  """The bicubic baseline of super-resolution.

  Args:
    low: [B, h, w, C] in [-1, 1].
    factor: the upsampling factor, at least 1.

  Returns:
    float32 [B, h * factor, w * factor, C], clipped to [-1, 1] (bicubic
    overshoots at edges).
  """
  if factor < 1:
    raise ValueError(f"factor must be >= 1, got {factor}")
  low = np.asarray(low, np.float32)
  size = [low.shape[1] * factor, low.shape[2] * factor]
  high = tf.image.resize(low, size, method="bicubic", antialias=False)
  return np.clip(high.numpy(), -1.0, 1.0)


def _known(mask: np.ndarray, images: np.ndarray) -> np.ndarray:
  """The mask as bool [B, H, W, 1], True = known, for images [B, H, W, C]."""
  return np.broadcast_to(np.asarray(mask) > 0.5, images.shape[:-1] + (1,))


def apply_mask(images: np.ndarray, mask: np.ndarray,
               fill: float = 0.0) -> np.ndarray:
  """The "masked" picture: known pixels kept, holes set to `fill`.

  The tool shows holes as mid-gray, fill 0.0, but any value in [-1, 1] works
  (-1 black, 1 white).

  Args:
    images: [B, H, W, C] in [-1, 1].
    mask: [B, H, W, 1] or [H, W, 1], 1 = known, 0 = hole.
    fill: the value of hole pixels.

  Returns:
    float32 [B, H, W, C].
  """
  images = np.asarray(images, np.float32)
  return np.where(_known(mask, images), images,
                  np.float32(fill)).astype(np.float32)


def mean_fill(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """The simplest inpainting: holes take the mean of the known pixels.

  Args:
    images: [B, H, W, C] in [-1, 1].
    mask: [B, H, W, 1] or [H, W, 1], 1 = known, 0 = hole; each image needs a
      known pixel.

  Returns:
    float32 [B, H, W, C]: each image's holes are the mean of its known
    pixels, per channel.
  """
  images = np.asarray(images, np.float64)
  known = _known(mask, images)  # [B, H, W, 1]
  counts = known.sum(axis=(1, 2))  # [B, 1]
  if (counts == 0).any():
    raise ValueError("mean_fill needs a known pixel in every image")
  means = np.where(known, images, 0.0).sum(axis=(1, 2)) / counts  # [B, C]
  return np.where(known, images, means[:, None, None, :]).astype(np.float32)


def diffusion_fill(images: np.ndarray, mask: np.ndarray,
                   iterations: int = 2000) -> np.ndarray:
  """Harmonic inpainting: holes solve Laplace's equation.

  The known pixels are the boundary values: Jacobi iterations replace each
  hole pixel by the mean of its 4 neighbours, with the known pixels fixed and
  the image border replicated (no flow across it). Starts from mean_fill.
  Smooth but blurry: the baseline that any learned inpainting must beat.

  Args:
    images: [B, H, W, C] in [-1, 1].
    mask: [B, H, W, 1] or [H, W, 1], 1 = known, 0 = hole.
    iterations: Jacobi steps; the error of a 14x14 hole shrinks by about 2%
      per step, so the default converges it to float precision.

  Returns:
    float32 [B, H, W, C]; the known pixels are those of `images`, exactly.
  """
  known = _known(mask, np.asarray(images))  # [B, H, W, 1]
  images = np.asarray(images, np.float64)
  filled = mean_fill(images, mask).astype(np.float64)
  for _ in range(iterations):
    padded = np.pad(filled, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge")
    neighbours = (padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] +
                  padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]) / 4.0
    filled = np.where(known, images, neighbours)
  return filled.astype(np.float32)
