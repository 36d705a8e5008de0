"""Image sources, looked up by the prefix of `data.source`.

A source is read by index: `read(indices)` returns the images and labels at
those indices. The input pipeline decides the order (a seeded permutation per
epoch), so that a resumed run can start exactly where the last one stopped.
"""

import dataclasses
import gzip
import importlib.resources
import os
import re
import socket
import threading
import time
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
  # The name of each label, where the source has them.
  class_names: tuple[str, ...] = ()
  # How many bad images were skipped so far (data.on_bad_image=skip).
  skipped: Callable[[], int] = lambda: 0
  # The random-access reader that `read` reads through, where there is one
  # (a tfds data source, a packed dataset's ArrayRecord files).
  reader: object = None
  # Every example's label, int [num_examples], where the source can list
  # them without decoding its images (keep_classes reads them once).
  labels: Callable[[], np.ndarray] | None = None


# data.on_bad_image: stop at an image that cannot be decoded, or skip it.
ON_BAD_IMAGE = ("stop", "skip")


@dataclasses.dataclass(frozen=True)
class Request:
  """What the model needs from a source."""
  split: str
  image_size: int
  channels: int
  resize: bool
  tfds_data_dir: str = ""
  tfds_download: bool = True
  # What a source whose images are decoded when read (folder:) does with
  # one that cannot be: one of ON_BAD_IMAGE.
  on_bad_image: str = "stop"
  # The config section that names the source and split (data, or eval for
  # the evaluation's real images): messages name its flags.
  section: str = "data"
  # What wraps this source in the config's spec ("stacked_mnist:" for its
  # digits): the source a message suggests instead is wrapped alike.
  wrapper: str = ""


def load(spec: str, request: Request) -> Source:
  """Opens `spec` ("kind:argument") and checks it against the model."""
  source = open_source(spec, request)
  _check_shape(spec, source, request)
  return source


def open_source(spec: str, request: Request) -> Source:
  """Opens `spec` ("kind:argument") without checking it against the model.

  A request with image_size 0 (and no resize) reads images at their own
  size; a source whose images vary in size has None for them in its
  image_shape and reads one index at a time.
  """
  kind, sep, argument = spec.partition(":")
  if not sep or not argument:
    raise UserError(
        f"data.source={spec!r} is not of the form <kind>:<argument>; kinds: "
        f"{', '.join(SOURCES.names())} (e.g. embedded:mnist, tfds:mnist, "
        "idx:/data/mnist, folder:/data/faces, packed:/data/faces64)")
  return SOURCES.get(kind)(argument, request)


def check_classes(source: Source, num_classes: int) -> None:
  """Raises UserError if a class-conditional model cannot use the labels."""
  if num_classes and source.num_classes != num_classes:
    raise UserError(
        f"model.num_classes={num_classes} but {source.description} has "
        f"{source.num_classes} classes; set model.num_classes="
        f"{source.num_classes}, or 0 for a model without labels")


def parse_classes(text: str, field: str = "data.classes") -> tuple[int, ...]:
  """The sorted classes of `field` ("0,1,2"); () for "" (all).

  Raises:
    UserError: an entry is not an integer.
  """
  entries = [e.strip() for e in str(text).split(",") if e.strip()]
  bad = [e for e in entries if not re.fullmatch(r"\d+", e)]
  if bad:
    raise UserError(f"{field}={text!r}: {bad[0]!r} is not a class "
                    "number; write comma-separated integers such as 0,1,2")
  return tuple(sorted({int(e) for e in entries}))


def keep_classes(source: Source, classes: str,
                 field: str = "data.classes") -> Source:
  """`source` with only the examples whose label is in `classes` (of `field`).

  The labels are listed once (Source.labels) into a table of the kept
  examples' indices; `read` maps its indices through it. The classes keep
  their numbers: the model still sees labels in 0..num_classes-1.

  Raises:
    UserError: the source has no labels or cannot list them without decoding
      every image, a class is not one of the source's, or none is left.
  """
  wanted = parse_classes(classes, field)
  if not wanted:
    return source
  if source.num_classes <= 1 and not source.class_names:
    raise UserError(f"{field}={classes!r} but {source.description} has "
                    f"no labels; set {field}=\"\"")
  outside = [c for c in wanted if c >= source.num_classes]
  if outside:
    raise UserError(f"{field}={classes!r}: class {outside[0]} is not one "
                    f"of the {source.num_classes} classes (0.."
                    f"{source.num_classes - 1}) of {source.description}")
  if source.labels is None:
    raise UserError(
        f"{field}={classes!r}: {source.description} cannot list its "
        "labels without decoding every image; pack it first (python -m "
        "trainer.data create) and train on packed:<dir>")
  kept = np.flatnonzero(np.isin(source.labels(), wanted))  # [K]
  if not len(kept):
    raise UserError(f"{field}={classes!r}: {source.description} has no "
                    "example of these classes")
  table = tf.constant(kept, tf.int64)
  names = ",".join(map(str, wanted))

  def read(indices: tf.Tensor) -> dict[str, tf.Tensor]:
    return source.read(tf.gather(table, indices))

  return dataclasses.replace(
      source, description=f"{source.description} classes {names}",
      num_examples=len(kept), read=read,
      labels=lambda: source.labels()[kept])


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


def parse_split(split: str) -> tuple[str, str, str]:
  """The name and the slice's start and end ("" if absent) of a split."""
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


def apply_slice(split: str, n: int) -> slice:
  _, start, end = parse_split(split)
  return slice(_slice_bound(start, n, 0), _slice_bound(end, n, n))


# ------------------------------------------------------------- in memory ---

def resize_uint8(images: tf.Tensor, size: int) -> tf.Tensor:
  """Resizes [..., H, W, C] uint8 images to size x size, antialiased."""
  resized = tf.image.resize(tf.cast(images, tf.float32), [size, size],
                            antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def in_memory(description: str, images: np.ndarray, labels: np.ndarray,
              num_classes: int, request: Request) -> Source:
  """A source over arrays: images uint8 [N, H, W, C], labels int [N]."""
  images = images[apply_slice(request.split, len(images))]
  labels = labels[apply_slice(request.split, len(labels))]
  if len(images) == 0:
    raise UserError(f"{description} split {request.split!r} has no images")
  if request.resize and images.shape[1:3] != (request.image_size,) * 2:
    images = resize_uint8(images, request.image_size).numpy()
  images_t = tf.constant(images)
  labels_t = tf.constant(labels.astype(np.int32))

  def read(indices: tf.Tensor) -> dict[str, tf.Tensor]:
    return {"image": tf.gather(images_t, indices),
            "label": tf.gather(labels_t, indices)}

  return Source(description, len(images), tuple(images.shape[1:]),
                num_classes, read, labels=lambda: labels)


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
  return _read_idx_dir(directory, request, f"idx:{directory}")


def _read_idx_dir(directory: str, request: Request,
                  description: str) -> Source:
  """The split `request.split` of the IDX files in `directory`."""
  name, _, _ = parse_split(request.split)
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
  return in_memory(description, images[..., None], labels, num_classes,
                   request)


# Datasets that ship inside the package (trainer/data/assets/<name>/, with
# their license), so that training needs no download: name -> the splits
# that are there.
EMBEDDED = {"mnist": ("test",)}


def embedded_dir(name: str) -> str:
  """The directory of embedded dataset `name`'s files."""
  return str(importlib.resources.files("trainer.data") / "assets" / name)


@SOURCES.register("embedded")
def _embedded(name: str, request: Request) -> Source:
  """A dataset shipped with the package: embedded:mnist, MNIST's test split.

  Its 10,000 real digits are there from a checkout and from an installed
  wheel alike; tfds:mnist reads the full 60,000 training images.
  """
  if name not in EMBEDDED:
    raise UserError(f"embedded:{name} is not shipped with the package; "
                    f"embedded datasets: {', '.join(sorted(EMBEDDED))}")
  split, _, _ = parse_split(request.split)
  if split not in EMBEDDED[name]:
    raise UserError(
        f"{request.section}.split={request.split!r}: embedded:{name} holds "
        f"only the split(s) {', '.join(EMBEDDED[name])} (slices such as "
        f"'{EMBEDDED[name][0]}[:1000]' work); tfds:{name} has the others")
  return _read_idx_dir(embedded_dir(name), request, f"embedded:{name}")


# ------------------------------------------------------------------ TFDS ---

def _offline_hint(name: str, request: Request) -> str:
  """What to use instead of tfds:<name> without internet, as flags.

  A dataset that ships with the package comes first, with the split to
  read where the request's split is not one it holds.
  """
  flag = f"--config.{request.section}"
  others = (f"{flag}.source=idx:<dir>, folder:<dir> or packed:<dir>; or "
            f"prepare tfds:{name} on a machine with internet and copy it "
            "into --config.data.tfds_data_dir")
  if name not in EMBEDDED:
    return f"Offline, use {others}."
  shipped = EMBEDDED[name][0]
  embedded = f"{flag}.source={request.wrapper}embedded:{name}"
  split = _SLICE.match(request.split)
  if not split or split["name"] not in EMBEDDED[name]:
    embedded += f" {flag}.split={shipped}"
  return (f"Offline, use the {shipped} split of {name} that ships with the "
          f"package: {embedded}; or {others}.")


# How long the download hosts may take to answer, name lookup included.
_HOST_CHECK_SECONDS = 10.0


def _connect_within(host: str, seconds: float) -> None:
  """Opens and closes a TCP connection to host:443 within `seconds`.

  socket.create_connection's timeout does not bound the name lookup, which
  waits for the name server's timeouts and retries (the options of
  /etc/resolv.conf, once per search domain): a name server that does not
  answer could hold the check for minutes. The lookup runs in a daemon
  thread here, and one deadline covers it and the connection.

  Raises:
    OSError: no answer within `seconds`, or the lookup or connection failed.
  """
  deadline = time.monotonic() + seconds
  found = {}

  def look_up():
    try:
      found["addresses"] = socket.getaddrinfo(host, 443,
                                              type=socket.SOCK_STREAM)
    except OSError as e:
      found["error"] = e

  lookup = threading.Thread(target=look_up, daemon=True)
  lookup.start()
  lookup.join(seconds)
  if lookup.is_alive():
    raise OSError(f"the name server did not resolve it within {seconds:g} s")
  if "error" in found:
    raise found["error"]
  error = OSError("no address")
  for family, kind, protocol, _, address in found["addresses"]:
    left = deadline - time.monotonic()
    if left <= 0:
      raise OSError(f"no connection within {seconds:g} s")
    try:
      with socket.socket(family, kind, protocol) as connection:
        connection.settimeout(left)
        connection.connect(address)
      return
    except OSError as e:
      error = e
  raise error


def _check_download_hosts(name: str, request: Request, where: str, urls,
                          seconds: float = _HOST_CHECK_SECONDS) -> None:
  """Fails fast where a download host is unreachable.

  TFDS retries a failed connection ten times with growing waits (minutes
  offline) before it gives up. Each host gets `seconds`, its name lookup
  included.
  """
  hosts = sorted({urllib.parse.urlsplit(url).hostname for url in urls} - {None})
  for host in hosts:
    try:
      _connect_within(host, seconds)
    except OSError as e:
      raise UserError(
          f"tfds:{name} is not prepared in {where} and cannot be downloaded: "
          f"{host} is unreachable ({e}). {_offline_hint(name, request)}"
      ) from None


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
                      "data.tfds_download=False. "
                      f"{_offline_hint(name, request)}")
    _check_download_hosts(name, request, where, builder.url_infos or {})
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      # Network and download failures surface as many different types.
      reason = str(e).strip().splitlines()[0][:300] if str(e) else type(e)
      raise UserError(
          f"tfds:{name} is not prepared in {where} and could not be "
          f"downloaded ({reason}). {_offline_hint(name, request)}") from None
  info = builder.info
  if "image" not in info.features:
    raise UserError(f"tfds:{name} has no 'image' feature; it has: "
                    f"{', '.join(info.features)}")
  label = info.features["label"] if "label" in info.features else None
  if label is not None and hasattr(label, "num_classes"):
    num_classes, class_names = label.num_classes, tuple(label.names)
  else:
    label, num_classes, class_names = None, 1, ()
  if info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
    return _tfds_by_index(name, builder, label is not None, num_classes,
                          class_names, request)
  if info.dataset_size and info.dataset_size > _MAX_IN_MEMORY_BYTES:
    raise UserError(
        f"tfds:{name} is {info.dataset_size} bytes, prepared as "
        f"{info.file_format.value} only, and datasets over "
        f"{_MAX_IN_MEMORY_BYTES} bytes are not loaded in memory; prepare it "
        "as ArrayRecord, which is read by index: tfds.builder("
        f"{name!r}, data_dir=..., file_format='array_record')"
        ".download_and_prepare() (or `tfds build --file_format=array_record "
        f"{name}`)")
  try:
    data = tfds.as_numpy(builder.as_dataset(split=request.split,
                                            batch_size=-1))
  except (ValueError, KeyError) as e:
    raise UserError(f"tfds:{name} has no split {request.split!r} ({e}); "
                    f"splits: {', '.join(info.splits)}") from None
  images = data["image"]
  labels = (data["label"] if label is not None
            else np.zeros(len(images), np.int32))
  whole = dataclasses.replace(request, split="all")
  return dataclasses.replace(
      in_memory(f"tfds:{name}", images, labels, num_classes, whole),
      class_names=class_names)


def _tfds_by_index(name: str, builder, has_labels: bool, num_classes: int,
                   class_names: tuple[str, ...], request: Request) -> Source:
  """A TFDS split prepared as ArrayRecord, read by index (tfds data source).

  Only the examples asked for are read and decoded; nothing is loaded at
  start.
  """
  try:
    data_source = builder.as_data_source(split=request.split)
  except (ValueError, KeyError) as e:
    raise UserError(f"tfds:{name} has no split {request.split!r} ({e}); "
                    f"splits: {', '.join(builder.info.splits)}") from None
  if not len(data_source):
    raise UserError(f"tfds:{name} split {request.split!r} has no images")
  shape = builder.info.features["image"].shape
  if None in shape:  # Sizes vary: the first example says the size to expect.
    shape = data_source[0]["image"].shape

  def gather(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    examples = data_source.__getitems__(indices.tolist())
    labels = [e["label"] if has_labels else 0 for e in examples]
    return (np.stack([e["image"] for e in examples]),
            np.asarray(labels, np.int32))

  def read(indices: tf.Tensor) -> dict[str, tf.Tensor]:
    images, labels = tf.numpy_function(gather, [indices],
                                       [tf.uint8, tf.int32], stateful=False)
    images = tf.ensure_shape(images, (None, *shape))  # [n, H, W, C]
    if request.resize and shape[:2] != (request.image_size,) * 2:
      images = resize_uint8(images, request.image_size)
    return {"image": images, "label": tf.ensure_shape(labels, [None])}

  size = ((request.image_size,) * 2 if request.resize and request.image_size
          else tuple(shape[:2]))
  return Source(f"tfds:{name}", len(data_source), (*size, shape[2]),
                num_classes, read, class_names=class_names,
                reader=data_source)


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
    digits = open_source(spec, dataclasses.replace(
        request, channels=1, wrapper=f"stacked_mnist:{request.wrapper}"))
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


# The sources kept in modules of their own register themselves on import.
# They build on this module, complete by here; importing them at its end
# registers every source wherever a spec can be opened.
# pylint: disable=g-import-not-at-top,wrong-import-position,cyclic-import
from trainer.data import folder  # pylint: disable=unused-import
from trainer.data import packed  # pylint: disable=unused-import
