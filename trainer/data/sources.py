"""Image sources, looked up by the prefix of `data.source`.

A source is read by index: `read(indices)` returns the images and labels at
those indices. The input pipeline decides the order (a seeded permutation per
epoch), so that a resumed run can start exactly where the last one stopped.
"""

import dataclasses
import gzip
import os
import re
import socket
import urllib.parse
import zlib
from typing import Callable

import numpy as np
import tensorflow as tf

from trainer.errors import UserError
from trainer.registry import Registry

# A read function: indices [n] int64 -> {"image": uint8 [n, H, W, C],
# "label": int32 [n]}.
ReadFn = Callable[[tf.Tensor], dict[str, tf.Tensor]]

SOURCES: Registry = Registry("data source", "data.source")

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Datasets larger than this are not loaded into memory whole.
_MAX_IN_MEMORY_BYTES = 8 << 30


@dataclasses.dataclass(frozen=True)
class Source:
  """A finite, indexable set of images with integer labels."""
  description: str
  num_examples: int
  image_shape: tuple[int, int, int]  # [H, W, C] as read, after any resize
  num_classes: int
  read: ReadFn


@dataclasses.dataclass(frozen=True)
class Request:
  """What the model needs from a source."""
  split: str
  image_size: int
  channels: int
  resize: bool
  tfds_data_dir: str = ""
  tfds_download: bool = True


def load(spec: str, request: Request) -> Source:
  """Opens `spec` ("kind:argument") and checks it against the model."""
  source = _open(spec, request)
  _check_shape(spec, source, request)
  return source


def _open(spec: str, request: Request) -> Source:
  """Opens `spec` ("kind:argument") without checking it against the model."""
  kind, sep, argument = spec.partition(":")
  if not sep or not argument:
    raise UserError(
        f"data.source={spec!r} is not of the form <kind>:<argument>; kinds: "
        f"{', '.join(SOURCES.names())} (e.g. tfds:mnist, idx:/data/mnist, "
        "folder:/data/faces)")
  return SOURCES.get(kind)(argument, request)


def check_classes(source: Source, num_classes: int) -> None:
  """Raises UserError if a class-conditional model cannot use the labels."""
  if num_classes and source.num_classes != num_classes:
    raise UserError(
        f"model.num_classes={num_classes} but {source.description} has "
        f"{source.num_classes} classes; set model.num_classes="
        f"{source.num_classes}, or 0 for a model without labels")


def _check_shape(spec: str, source: Source, request: Request) -> None:
  height, width, channels = source.image_shape
  size = request.image_size
  if (height, width) != (size, size):
    raise UserError(
        f"{spec} has {height}x{width} images but the model makes {size}x{size}"
        f"; set model.image_size={height} (square images only) or "
        "data.resize=True")
  if channels != request.channels:
    raise UserError(
        f"{spec} has {channels}-channel images but the model makes "
        f"{request.channels}; set model.channels={channels}")


# ---------------------------------------------------------------- splits ---

_SLICE = re.compile(r"^(?P<name>[\w-]+)(\[(?P<start>-?\d*%?):(?P<end>-?\d*%?)\])?$")


def _parse_split(split: str) -> tuple[str, str, str]:
  match = _SLICE.match(split)
  if not match:
    raise UserError(
        f"data.split={split!r} is not valid; use a name with an optional "
        "slice: train, test, train[:9000], test[90%:]")
  return match["name"], match["start"] or "", match["end"] or ""


def _slice_bound(bound: str, n: int, default: int) -> int:
  if not bound:
    return default
  if bound.endswith("%"):
    return int(round(n * int(bound[:-1]) / 100))
  return int(bound)


def _apply_slice(split: str, n: int) -> slice:
  _, start, end = _parse_split(split)
  return slice(_slice_bound(start, n, 0), _slice_bound(end, n, n))


# ------------------------------------------------------------- in memory ---

def _resize_uint8(images: tf.Tensor, size: int) -> tf.Tensor:
  """Resizes [..., H, W, C] uint8 images to size x size, antialiased."""
  resized = tf.image.resize(tf.cast(images, tf.float32), [size, size],
                            antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def in_memory(description: str, images: np.ndarray, labels: np.ndarray,
              num_classes: int, request: Request) -> Source:
  """A source over arrays: images uint8 [N, H, W, C], labels int [N]."""
  images = images[_apply_slice(request.split, len(images))]
  labels = labels[_apply_slice(request.split, len(labels))]
  if len(images) == 0:
    raise UserError(f"{description} split {request.split!r} has no images")
  if request.resize and images.shape[1:3] != (request.image_size,) * 2:
    images = _resize_uint8(images, request.image_size).numpy()
  images_t = tf.constant(images)
  labels_t = tf.constant(labels.astype(np.int32))

  def read(indices: tf.Tensor) -> dict[str, tf.Tensor]:
    return {"image": tf.gather(images_t, indices),
            "label": tf.gather(labels_t, indices)}

  return Source(description, len(images), tuple(images.shape[1:]),
                num_classes, read)


# ------------------------------------------------------------------- IDX ---

_IDX_PREFIX = {"train": "train", "test": "t10k"}
_IDX_DTYPE = {0x08: np.uint8}


def _find_idx(directory: str, prefix: str, kind: str) -> str | None:
  for separator in ("-", "."):
    for suffix in ("", ".gz"):
      name = f"{prefix}-{kind}{separator}idx{3 if kind == 'images' else 1}-ubyte"
      path = os.path.join(directory, name + suffix)
      if os.path.exists(path):
        return path
  return None


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (optionally gzipped) as a numpy array."""
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (EOFError, zlib.error, gzip.BadGzipFile) as e:
    raise UserError(f"{path} is truncated or corrupt ({e})") from None
  except OSError as e:
    raise UserError(f"cannot read IDX file {path}: {e}") from None
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPE:
    raise UserError(f"{path} is not an IDX file of unsigned bytes "
                    "(bad magic number)")
  ndim = data[3]
  header = 4 + 4 * ndim
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big")
                for i in range(ndim))
  expected = header + int(np.prod(shape))
  if len(data) != expected:
    raise UserError(f"{path} is truncated or corrupt: its header announces "
                    f"shape {shape} ({expected} bytes), the file has "
                    f"{len(data)} bytes")
  return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


@SOURCES.register("idx")
def _idx(directory: str, request: Request) -> Source:
  """MNIST-style IDX files: <prefix>-images-idx3-ubyte[.gz] and labels."""
  if not os.path.isdir(directory):
    raise UserError(f"idx:{directory}: no such directory")
  name, _, _ = _parse_split(request.split)
  if name not in _IDX_PREFIX:
    raise UserError(f"data.split={request.split!r}: IDX data has the splits "
                    f"{', '.join(_IDX_PREFIX)}")
  prefix = _IDX_PREFIX[name]
  images_path = _find_idx(directory, prefix, "images")
  if images_path is None:
    present = [s for s, p in _IDX_PREFIX.items()
               if _find_idx(directory, p, "images")]
    raise UserError(
        f"idx:{directory} has no {prefix}-images-idx3-ubyte[.gz] for split "
        f"{name!r}; splits present: {', '.join(present) or 'none'}")
  images = read_idx(images_path)
  if images.ndim != 3:
    raise UserError(f"{images_path} holds shape {images.shape}, expected "
                    "[N, H, W] images")
  labels_path = _find_idx(directory, prefix, "labels")
  if labels_path is None:
    labels, num_classes = np.zeros(len(images), np.int32), 1
  else:
    labels = read_idx(labels_path)
    if labels.shape != (len(images),):
      raise UserError(f"{labels_path} holds {labels.shape} labels for "
                      f"{len(images)} images in {images_path}")
    num_classes = int(labels.max()) + 1
  return in_memory(f"idx:{directory}", images[..., None], labels, num_classes,
                   request)


# ------------------------------------------------------------------ TFDS ---

_OFFLINE_HINT = ("Offline, prepare the dataset elsewhere and copy it into "
                 "data.tfds_data_dir, or use idx:<dir> or folder:<dir>.")


def _check_download_hosts(name: str, where: str, urls) -> None:
  """Fails fast where a download host is unreachable.

  TFDS retries a failed connection ten times with growing waits (minutes
  offline) before it gives up.
  """
  hosts = sorted({urllib.parse.urlsplit(url).hostname for url in urls} - {None})
  for host in hosts:
    try:
      socket.create_connection((host, 443), timeout=10).close()
    except OSError as e:
      raise UserError(
          f"tfds:{name} is not prepared in {where} and cannot be downloaded: "
          f"{host} is unreachable ({e}). {_OFFLINE_HINT}") from None


@SOURCES.register("tfds")
def _tfds(name: str, request: Request) -> Source:
  """A tensorflow-datasets dataset with an image feature (and a label)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  data_dir = request.tfds_data_dir or None
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise UserError(
        f"tfds:{name} is not a known TFDS dataset and there is no prepared "
        f"copy in {data_dir or 'the default TFDS data dir'}; see "
        "tfds.list_builders() for the names") from None
  if not builder.is_prepared():
    where = data_dir or "the default TFDS data dir"
    if not request.tfds_download:
      raise UserError(f"tfds:{name} is not prepared in {where} and "
                      "data.tfds_download=False")
    _check_download_hosts(name, where, builder.url_infos or {})
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      # Network and download failures surface as many different types.
      reason = str(e).strip().splitlines()[0][:300] if str(e) else type(e)
      raise UserError(
          f"tfds:{name} is not prepared in {where} and could not be "
          f"downloaded ({reason}). {_OFFLINE_HINT}") from None
  info = builder.info
  if info.dataset_size and info.dataset_size > _MAX_IN_MEMORY_BYTES:
    raise UserError(f"tfds:{name} is {info.dataset_size} bytes; datasets over "
                    f"{_MAX_IN_MEMORY_BYTES} bytes are not loaded in memory")
  if "image" not in info.features:
    raise UserError(f"tfds:{name} has no 'image' feature; it has: "
                    f"{', '.join(info.features)}")
  try:
    data = tfds.as_numpy(builder.as_dataset(split=request.split,
                                            batch_size=-1))
  except (ValueError, KeyError) as e:
    raise UserError(f"tfds:{name} has no split {request.split!r} ({e}); "
                    f"splits: {', '.join(info.splits)}") from None
  images = data["image"]
  if "label" in info.features and hasattr(info.features["label"],
                                          "num_classes"):
    labels = data["label"]
    num_classes = info.features["label"].num_classes
  else:
    labels, num_classes = np.zeros(len(images), np.int32), 1
  whole = dataclasses.replace(request, split="all")
  return in_memory(f"tfds:{name}", images, labels, num_classes, whole)


# ---------------------------------------------------------------- folder ---

def _list_images(directory: str) -> tuple[list[str], list[int], int]:
  """Image paths, their labels (class subfolder index) and the class count."""
  entries = sorted(os.listdir(directory))
  top = [os.path.join(directory, e) for e in entries
         if e.lower().endswith(_IMAGE_SUFFIXES)]
  classes = [e for e in entries if os.path.isdir(os.path.join(directory, e))]
  nested = []
  for label, cls in enumerate(classes):
    for root, _, files in sorted(os.walk(os.path.join(directory, cls))):
      nested += [(os.path.join(root, f), label) for f in sorted(files)
                 if f.lower().endswith(_IMAGE_SUFFIXES)]
  if top and nested:
    raise UserError(f"folder:{directory} has images both at its top level and "
                    "in subfolders; put all images in class subfolders, or "
                    "none")
  if top:
    return top, [0] * len(top), 1
  if not nested:
    raise UserError(f"folder:{directory} holds no PNG or JPEG images")
  return [p for p, _ in nested], [l for _, l in nested], len(classes)


def _check_sizes(directory: str, paths: list[str], request: Request) -> tuple:
  """Reads every image header; returns the common (H, W) of the images."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  sizes = set()
  for path in paths:
    try:
      with Image.open(path) as image:
        width, height = image.size
        # Reads the whole file, so that a truncated or corrupt image fails
        # here, naming the file, rather than in the input pipeline mid-run.
        image.verify()
    except (OSError, SyntaxError) as e:
      raise UserError(f"cannot read image {path}: {e}") from None
    sizes.add((height, width))
    if len(sizes) > 1 and not request.resize:
      raise UserError(
          f"folder:{directory} holds images of different sizes "
          f"({' and '.join(f'{h}x{w}' for h, w in sorted(sizes))}, e.g. "
          f"{path}); set data.resize=True to resize them to "
          f"{request.image_size}x{request.image_size}")
  return sizes.pop() if len(sizes) == 1 else None


@SOURCES.register("folder")
def _folder(directory: str, request: Request) -> Source:
  """PNG/JPEG files; class subfolders, if any, give the labels.

  Images are decoded to the model's channel count (grey becomes RGB and back).
  If `<directory>/<split>` exists it is read, else the whole directory.
  """
  if not os.path.isdir(directory):
    raise UserError(f"folder:{directory}: no such directory")
  name, _, _ = _parse_split(request.split)
  if os.path.isdir(os.path.join(directory, name)):
    directory = os.path.join(directory, name)
  paths, labels, num_classes = _list_images(directory)
  part = _apply_slice(request.split, len(paths))
  paths, labels = paths[part], labels[part]
  if not paths:
    raise UserError(f"folder:{directory} split {request.split!r} is empty")
  size = _check_sizes(directory, paths, request)
  if request.resize or size is None:
    size = (request.image_size, request.image_size)
  paths_t = tf.constant(paths)
  labels_t = tf.constant(labels, tf.int32)
  channels = request.channels

  def decode(path: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels,
                               expand_animations=False)  # [H, W, C]
    if request.resize:
      image = _resize_uint8(image, request.image_size)
    return tf.ensure_shape(image, size + (channels,))

  def read(indices: tf.Tensor) -> dict[str, tf.Tensor]:
    images = tf.map_fn(decode, tf.gather(paths_t, indices),
                       fn_output_signature=tf.TensorSpec(size + (channels,),
                                                         tf.uint8))
    return {"image": images, "label": tf.gather(labels_t, indices)}

  return Source(f"folder:{directory}", len(paths), size + (channels,),
                num_classes, read)


# --------------------------------------------------------- stacked MNIST ---

# Stacked MNIST (Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN):
# 128,000 examples whatever the size of the digit split, each three digits
# drawn independently, so that every one of the 10**3 digit triples (modes)
# occurs, about as often as the frequencies of its digits predict.
STACKED_MNIST_SIZE = 128_000
STACKED_MNIST_CLASSES = 1000
# The index table depends on this seed and the digit source's size only.
_STACKED_MNIST_SEED = 0
_DIGIT_CLASSES = 10


def _digit_triples(num_digits: int) -> np.ndarray:
  """The fixed digit indices of every stacked example: int64 [N, 3] (R, G, B).

  Drawn from the raw output of a PCG64 bit generator, whose stream numpy keeps
  the same across versions and machines (Generator methods may change).
  """
  bits = np.random.PCG64(_STACKED_MNIST_SEED)
  raw = bits.random_raw((STACKED_MNIST_SIZE, 3))  # uint64
  # The modulo bias, num_digits / 2**64, is negligible.
  return (raw % np.uint64(num_digits)).astype(np.int64)


def _open_digits(spec: str, request: Request) -> Source:
  """Opens the digit source of stacked_mnist:<spec>, 1 channel, <= 10 classes."""
  try:
    digits = _open(spec, dataclasses.replace(request, channels=1))
  except UserError as e:
    raise UserError(f"stacked_mnist:{spec}: bad digit source: {e}") from None
  channels = digits.image_shape[2]
  if channels != 1:
    raise UserError(f"stacked_mnist:{spec}: the digit source has {channels}-"
                    "channel images; stacked_mnist needs grey (1-channel) "
                    "digits such as idx:<MNIST dir> or tfds:mnist")
  if digits.num_classes > _DIGIT_CLASSES:
    raise UserError(f"stacked_mnist:{spec}: the digit source has "
                    f"{digits.num_classes} classes; stacked_mnist needs at most "
                    f"{_DIGIT_CLASSES} (a label is one decimal digit of the "
                    "stacked label)")
  return digits


@SOURCES.register("stacked_mnist")
def _stacked_mnist(spec: str, request: Request) -> Source:
  """Stacked MNIST: three digits of a grey source as the R, G and B channels.

  `spec` is the digit source (stacked_mnist:idx:/data/mnist,
  stacked_mnist:tfds:mnist); the request's split, size and resize apply to it.
  Each of the STACKED_MNIST_SIZE examples is a fixed triple of its digits; the
  label is 100 * R + 10 * G + B, one of 1000 modes. Only the triples are
  stored; `read` gathers the digits.
  """
  digits = _open_digits(spec, request)
  triples = tf.constant(_digit_triples(digits.num_examples))  # [N, 3]

  def read(indices: tf.Tensor) -> dict[str, tf.Tensor]:
    picked = tf.gather(triples, indices)  # [n, 3]
    red, green, blue = (digits.read(picked[:, c]) for c in range(3))
    return {"image": tf.concat([red["image"], green["image"], blue["image"]],
                               axis=-1),  # [n, H, W, 3]
            "label": 100 * red["label"] + 10 * green["label"] + blue["label"]}

  height, width, _ = digits.image_shape
  return Source(f"stacked_mnist:{digits.description}", STACKED_MNIST_SIZE,
                (height, width, 3), STACKED_MNIST_CLASSES, read)
