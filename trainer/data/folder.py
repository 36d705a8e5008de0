"""The folder: source, PNG and JPEG files read by index.

The files are listed when the source opens and decoded when they are read,
in tf.numpy_function; a file that cannot be decoded is a BadImage
(trainer/errors.py), which data.on_bad_image stops on or skips.
"""

import os

from absl import logging
import numpy as np
import tensorflow as tf

from trainer.data import sources
from trainer.errors import BadImage
from trainer.errors import UserError

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _list_images(directory: str) -> tuple[list[str], list[int], list[str]]:
  """Image paths, their labels (class subfolder index) and the class names.

  Images at the top level are one class without a name.
  """
  gfile = tf.io.gfile
  entries = sorted(e.rstrip("/") for e in gfile.listdir(directory))
  top = [os.path.join(directory, e) for e in entries
         if e.lower().endswith(_IMAGE_SUFFIXES)]
  classes = [e for e in entries if gfile.isdir(os.path.join(directory, e))]
  nested = []
  for label, cls in enumerate(classes):
    found = [(os.path.join(root, f), label)
             for root, _, files in sorted(gfile.walk(os.path.join(directory,
                                                                  cls)))
             for f in sorted(files) if f.lower().endswith(_IMAGE_SUFFIXES)]
    if top and found:
      raise UserError(f"folder:{directory} has images both at its top level "
                      "and in subfolders; put all images in class subfolders, "
                      "or none")
    if not found and not top:
      raise UserError(
          f"folder:{directory}: class subfolder {cls!r} holds no PNG or JPEG "
          "images, so its label would have no examples; remove it or fill it "
          f"(classes: {', '.join(classes)})")
    nested += found
  if top:
    return top, [0] * len(top), []
  if not nested:
    raise UserError(f"folder:{directory} holds no PNG or JPEG images")
  return [p for p, _ in nested], [l for _, l in nested], classes


def _first_size(path: str) -> tuple[int, int]:
  """(H, W) of an image, from its header only."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with tf.io.gfile.GFile(path, "rb") as f, Image.open(f) as image:
      width, height = image.size
  except (OSError, SyntaxError, tf.errors.OpError) as e:
    raise UserError(f"cannot read image {path}: {e}") from None
  return height, width


def _decode_file(path: str, channels: int, index: int) -> np.ndarray:
  """Decodes the image file of source index `index` to uint8 [H, W, channels].

  Raises:
    BadImage: the file is missing, truncated or not an image.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with tf.io.gfile.GFile(path, "rb") as f, Image.open(f) as image:
      # Grey <-> RGB as libpng and libjpeg convert (ITU-R BT.601 luma).
      pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"))
  except (OSError, SyntaxError, ValueError, tf.errors.OpError) as e:
    raise BadImage(path, str(e) or type(e).__name__, index) from None
  return pixels.reshape(pixels.shape[:2] + (channels,))


@sources.SOURCES.register("folder")
def _folder(directory: str,
            request: sources.Request) -> sources.Source:
  """PNG/JPEG files; class subfolders, if any, give the labels.

  The files are listed at start, not decoded: the image size is the first
  image's (or the model's, with data.resize). Images are decoded to the
  model's channel count (grey becomes RGB and back) when they are read; one
  that cannot be decoded, or whose size differs without data.resize, is a
  BadImage: it stops the read, or with request.on_bad_image="skip" it is
  replaced by the next good image (in index order, so every run reads the
  same) and counted in `Source.skipped`.
  If `<directory>/<split>` exists it is read, else the whole directory.
  A request with image_size 0 reads every image at its own size (one index
  per read; the packing tool's use).
  """
  if not tf.io.gfile.isdir(directory):
    raise UserError(f"folder:{directory}: no such directory")
  name, _, _ = sources.parse_split(request.split)
  if tf.io.gfile.isdir(os.path.join(directory, name)):
    directory = os.path.join(directory, name)
  paths, labels, class_names = _list_images(directory)
  part = sources.apply_slice(request.split, len(paths))
  paths, labels = paths[part], labels[part]
  if not paths:
    raise UserError(f"folder:{directory} split {request.split!r} is empty")
  channels = request.channels
  native = request.image_size == 0
  if native:
    size = (None, None)
  elif request.resize:
    size = (request.image_size, request.image_size)
  else:
    size = _first_size(paths[0])
  skipped: dict[str, str] = {}

  def decode_checked(index: int) -> np.ndarray:
    image = _decode_file(paths[index], channels, index)
    if not (native or request.resize) and image.shape[:2] != size:
      raise BadImage(paths[index], (
          f"it is {image.shape[0]}x{image.shape[1]}, the first image "
          f"{paths[0]} is {size[0]}x{size[1]}; set data.resize=True to "
          "resize them all"), index)
    return image

  def decode(index: np.int64) -> tuple[np.ndarray, np.int32]:
    for offset in range(len(paths)):
      at = (int(index) + offset) % len(paths)
      try:
        return decode_checked(at), np.int32(labels[at])
      except BadImage as e:
        if request.on_bad_image != "skip":
          raise
        if e.path not in skipped:
          skipped[e.path] = e.reason
          logging.warning("Skipping %s (data.on_bad_image=skip); %d bad "
                          "image(s) skipped so far", e, len(skipped))
    raise UserError(f"folder:{directory}: no image can be decoded")

  def read_one(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    image, label = tf.numpy_function(decode, [index], [tf.uint8, tf.int32],
                                     stateful=False)
    image = tf.ensure_shape(image, (None, None, channels))
    if request.resize:
      image = sources.resize_uint8(image, request.image_size)
    return tf.ensure_shape(image, size + (channels,)), label

  # A graph also when called eagerly, so that a BadImage always reaches the
  # caller as an OpError (BadImage.found_in).
  @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
  def read(indices: tf.Tensor) -> dict[str, tf.Tensor]:
    images, read_labels = tf.map_fn(
        read_one, indices, fn_output_signature=(
            tf.TensorSpec(size + (channels,), tf.uint8),
            tf.TensorSpec([], tf.int32)))
    return {"image": images, "label": tf.ensure_shape(read_labels, [None])}

  return sources.Source(
      f"folder:{directory}", len(paths), size + (channels,),
      max(len(class_names), 1), read, class_names=tuple(class_names),
      skipped=lambda: len(skipped), labels=lambda: np.asarray(labels))
