"""The packed format: a dataset prepared once, read by index from ArrayRecord.

A packed dataset is a directory (local or gs://) holding

  dataset.json                 what it holds (count, shape, classes, ...)
  shard-00000.array_record     serialized tf.train.Examples, one per image:
  shard-00001.array_record     "image" (its bytes in the dataset's encoding,
  ...                          lossless: PNG or raw pixels), "label" (int64)

`create` writes one from any source the trainer reads (sources.SOURCES),
cropped and resized with a named filter; `packed:<dir>` reads it back by
index (ArrayRecord's random access), so the trainer's order, resume and
sharding guarantees hold without the data fitting in memory.

`create` writes into `<dest>.creating` and renames it to `<dest>` at the end:
a directory without dataset.json is never a packed dataset. Each shard is
written whole and then marked done (`<shard>.done.json`), so a `create` that
is started again goes on from the shards already done.
"""

import concurrent.futures
import dataclasses
import hashlib
import io
import json
import math
import os
import tempfile
import threading
import time
from typing import Callable, Iterator

from absl import logging
from array_record.python import array_record_module
import numpy as np
from PIL import Image
import tensorflow as tf

from trainer.data import pipeline
from trainer.data import sources
from trainer.errors import BadImage
from trainer.errors import UserError
from trainer import files
from trainer.registry import Registry
from trainer import summaries

FORMAT = "trainer.packed/1"
METADATA = "dataset.json"
_SETTINGS = "settings.json"  # in <dest>.creating only: what it is creating
_DONE = ".done.json"
_CREATING = ".creating"
# group_size:1, so that reading one record decodes one record (ArrayRecord
# groups records into compressed chunks; random access reads whole chunks).
_WRITER_OPTIONS = "group_size:1"
# Images read and converted at a time (fewer if they would take more than
# _CHUNK_BYTES): bounds the memory of `create`, whatever the dataset's size.
_CHUNK = 64
_CHUNK_BYTES = 32 << 20
# Records read at a time when only their labels are wanted (keep_classes).
_LABEL_CHUNK = 4096

RESIZE_FILTERS: Registry = Registry("resize filter", "--resize_filter")
for _name, _filter in (("box", Image.Resampling.BOX),
                       ("bilinear", Image.Resampling.BILINEAR),
                       ("bicubic", Image.Resampling.BICUBIC),
                       ("lanczos", Image.Resampling.LANCZOS)):
  RESIZE_FILTERS.register(_name)(_filter)

CROPS: Registry = Registry("crop", "--crop")


@dataclasses.dataclass(frozen=True)
class Encoding:
  """How an image is stored in its record.

  Attributes:
    encode: uint8 [H, W, C] -> bytes.
    decode: (string [n], shape (H, W, C)) -> uint8 [n, H, W, C].
  """
  encode: Callable[[np.ndarray], bytes]
  decode: Callable[[tf.Tensor, tuple], tf.Tensor]


ENCODINGS: Registry = Registry("encoding", "--encoding")


def _pil(image: np.ndarray) -> Image.Image:
  """uint8 [H, W, 1 or 3] as a PIL image (mode L or RGB)."""
  return Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)


def _png_bytes(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  _pil(image).save(buffer, format="PNG")
  return buffer.getvalue()


def _decode_pngs(data: tf.Tensor, shape: tuple) -> tf.Tensor:
  return tf.map_fn(
      lambda png: tf.ensure_shape(tf.io.decode_png(png, shape[2]), shape),
      data, fn_output_signature=tf.TensorSpec(shape, tf.uint8))


def _decode_raw(data: tf.Tensor, shape: tuple) -> tf.Tensor:
  # One op for the batch: every record holds H * W * C bytes.
  return tf.reshape(tf.io.decode_raw(data, tf.uint8), [-1, *shape])


# PNG: compact (MNIST digits about 4x smaller than their pixels), decoded
# per image. Raw: the pixels as they are, several times larger on disk and
# read without decoding (docs/data.md).
ENCODINGS.register("png")(Encoding(_png_bytes, _decode_pngs))
ENCODINGS.register("raw")(Encoding(lambda image: image.tobytes(), _decode_raw))


@CROPS.register("none")
def _no_crop(image: np.ndarray) -> np.ndarray:
  return image


@CROPS.register("center")
def _center_crop(image: np.ndarray) -> np.ndarray:
  """The largest centered square of an image [H, W, C]."""
  height, width = image.shape[:2]
  side = min(height, width)
  top, left = (height - side) // 2, (width - side) // 2
  return image[top:top + side, left:left + side]


@dataclasses.dataclass(frozen=True)
class Settings:
  """What `create` makes: the dataset's content depends on these only."""
  source: str
  split: str
  resolution: int = 0  # 0: the source's size
  crop: str = "none"
  resize_filter: str = "box"
  encoding: str = "png"
  channels: int = 3  # of folder images (other sources keep theirs)
  shard_size: int = 1024  # images per shard
  tfds_data_dir: str = ""


def _shard_name(index: int) -> str:
  return f"shard-{index:05d}.array_record"


# ------------------------------------------------------------------ read ---


def read_metadata(directory: str) -> dict:
  """dataset.json of a packed dataset, checked.

  Raises:
    UserError: it is missing (e.g. an unfinished `create`) or damaged.
  """
  path = os.path.join(directory, METADATA)
  if not tf.io.gfile.exists(path):
    creating = directory.rstrip("/") + _CREATING
    hint = (f"; {creating} is an unfinished `python -m trainer.data "
            "create`: run the same command again to complete it"
            if tf.io.gfile.exists(creating) else
            "; make one with `python -m trainer.data create`")
    raise UserError(f"packed:{directory} is not a packed dataset (no "
                    f"{METADATA}){hint}")
  try:
    with tf.io.gfile.GFile(path) as f:
      metadata = json.load(f)
    count, shape = int(metadata["count"]), tuple(metadata["shape"])
    shards = [(str(s["name"]), int(s["count"])) for s in metadata["shards"]]
    # Datasets made before --encoding existed hold PNGs.
    encoding = metadata["settings"].get("encoding", "png")
    problem = (f"its format is {metadata['format']!r}, not {FORMAT!r}"
               if metadata["format"] != FORMAT else
               "its shard counts do not add up to its count"
               if sum(n for _, n in shards) != count else
               f"its shape {shape} is not [H, W, 1 or 3]"
               if len(shape) != 3 or shape[2] not in (1, 3) else
               f"its encoding {encoding!r} is not one of "
               f"{', '.join(ENCODINGS.names())}"
               if encoding not in ENCODINGS.names() else "")
  except (ValueError, KeyError, TypeError) as e:
    problem = f"it cannot be parsed ({type(e).__name__}: {e})"
  if problem:
    raise UserError(f"{path} is damaged: {problem}; make the dataset again "
                    "with `python -m trainer.data create`")
  return metadata


def _open_shard(path: str, directory: str, count: int
                ) -> array_record_module.ArrayRecordReader:
  """A reader of one shard, which must hold `count` records.

  ArrayRecord keeps a shard's index at its end, so a truncated or damaged
  shard fails here rather than mid-read.
  """
  try:
    # No read-ahead: records are read at random.
    reader = array_record_module.ArrayRecordReader(
        path, "readahead_buffer_size:0", file_reader_buffer_size=32768)
    found = reader.num_records()
  except (RuntimeError, ValueError, OSError) as e:
    reason = str(e).strip().splitlines()[0][:200]
    raise UserError(f"shard {path} of packed:{directory} is missing or "
                    f"damaged ({reason}); make the dataset again with "
                    "`python -m trainer.data create`") from None
  if found != count:
    raise UserError(f"shard {path} of packed:{directory} holds {found} "
                    f"images, {METADATA} says {count}; make the dataset again "
                    "with `python -m trainer.data create`")
  return reader


class ShardReader:
  """Random access to the records of a packed dataset, by global index.

  Every shard is checked when it is constructed (its index, its count); a
  shard is then opened again when it is first read, so that a process holds
  open only the shards it reads.
  """

  def __init__(self, directory: str, shards: list[dict]):
    self._directory = directory
    self._paths = [os.path.join(directory, s["name"]) for s in shards]
    counts = [int(s["count"]) for s in shards]
    for path, count in zip(self._paths, counts):
      _open_shard(path, directory, count).close()
    self._counts = counts
    self._starts = np.cumsum([0] + counts)  # [shards + 1]
    self._readers = [None] * len(shards)
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return int(self._starts[-1])

  def _reader(self, shard: int) -> array_record_module.ArrayRecordReader:
    with self._lock:
      if self._readers[shard] is None:
        self._readers[shard] = _open_shard(self._paths[shard],
                                           self._directory,
                                           self._counts[shard])
      return self._readers[shard]

  def read(self, indices: np.ndarray) -> np.ndarray:
    """The records at int `indices` [n], as bytes objects [n]."""
    shards = np.searchsorted(self._starts, indices, side="right") - 1
    records = np.empty(len(indices), dtype=object)
    for shard in np.unique(shards):
      at = np.flatnonzero(shards == shard)
      positions = (indices[at] - self._starts[shard]).tolist()
      records[at] = self._reader(int(shard)).read(positions)
    return records


@sources.SOURCES.register("packed")
def _packed(directory: str, request: sources.Request) -> sources.Source:
  """A packed dataset (`python -m trainer.data create`), read by index.

  It is one split: data.split's name is not used, its slice is
  (test[:1000] reads the first 1000 images).
  """
  directory = directory.rstrip("/")
  metadata = read_metadata(directory)
  reader = ShardReader(directory, metadata["shards"])
  part = range(metadata["count"])[sources.apply_slice(request.split,
                                                      metadata["count"])]
  first, count = part.start, len(part)
  if not count:
    raise UserError(f"packed:{directory} split {request.split!r} is empty")
  shape = tuple(metadata["shape"])
  encoding = ENCODINGS.get(metadata["settings"].get("encoding", "png"))
  features = {"image": tf.io.FixedLenFeature([], tf.string),
              "label": tf.io.FixedLenFeature([], tf.int64)}

  def read(indices: tf.Tensor) -> dict[str, tf.Tensor]:
    records = tf.numpy_function(lambda i: reader.read(i + first), [indices],
                                tf.string, stateful=False)
    example = tf.io.parse_example(tf.ensure_shape(records, [None]), features)
    images = encoding.decode(example["image"], shape)  # [n, H, W, C]
    if request.resize and shape[:2] != (request.image_size,) * 2:
      images = sources.resize_uint8(images, request.image_size)
    return {"image": images,  # [n, H, W, C]
            "label": tf.cast(example["label"], tf.int32)}

  def labels() -> np.ndarray:
    # The labels are not stored apart: this reads every record of the split
    # once (its size in bytes), parsing the labels only, not the images.
    logging.info("Reading the labels of the %d images of packed:%s", count,
                 directory)
    label = {"label": features["label"]}
    return np.concatenate([
        tf.io.parse_example(reader.read(np.arange(start, min(
            start + _LABEL_CHUNK, first + count))), label)["label"].numpy()
        for start in range(first, first + count, _LABEL_CHUNK)])

  size = ((request.image_size,) * 2 if request.resize and request.image_size
          else shape[:2])
  return sources.Source(
      f"packed:{directory}", count, (*size, shape[2]),
      int(metadata["num_classes"]), read,
      class_names=tuple(metadata["class_names"]), reader=reader,
      labels=labels)


# ----------------------------------------------------------------- create ---


def _check_settings(settings: Settings) -> None:
  RESIZE_FILTERS.get(settings.resize_filter)
  ENCODINGS.get(settings.encoding)
  CROPS.get(settings.crop)
  for name, value, minimum in (("resolution", settings.resolution, 0),
                               ("shard_size", settings.shard_size, 1)):
    if value < minimum:
      raise UserError(f"--{name}={value} is out of range; it must be >= "
                      f"{minimum}")
  if settings.channels not in (1, 3):
    raise UserError(f"--channels={settings.channels} is not valid; valid: 1, 3")


def _check_destination(dest: str, overwrite: bool) -> None:
  if (tf.io.gfile.exists(dest) and not overwrite and
      (not tf.io.gfile.isdir(dest) or tf.io.gfile.listdir(dest))):
    raise UserError(f"--dest={dest} exists and is not empty; choose another "
                    "destination, or pass --overwrite to replace it (it is "
                    "replaced only once the new dataset is complete)")


class _Converter:
  """Crops and resizes source images to the packed shape, as PNG records."""

  def __init__(self, settings: Settings, shape: tuple, description: str):
    self._settings = settings
    self._first = shape  # [H, W, C] of the images, or Nones until one is met
    self._description = description
    self._crop = CROPS.get(settings.crop)
    self._filter = RESIZE_FILTERS.get(settings.resize_filter)
    self._encode = ENCODINGS.get(settings.encoding).encode

  def check(self, shape: tuple, what: str) -> None:
    """Raises UserError if an image of `shape` cannot be packed."""
    height, width = shape[:2]
    if None in self._first:
      self._first = tuple(shape)
    if height != width and self._settings.crop == "none":
      raise UserError(
          f"{what} is {height}x{width}, not square; pass --crop=center (valid "
          f"crops: {', '.join(CROPS.names())})")
    if not self._settings.resolution and tuple(shape) != tuple(self._first):
      raise UserError(
          f"{self._description} holds images of mixed sizes ({what} is "
          f"{height}x{width}, the first is {self._first[0]}x"
          f"{self._first[1]}); pass --resolution to resize them all to one")

  @property
  def shape(self) -> tuple[int, int, int]:
    """[H, W, C] of the packed images (once an image was checked)."""
    height, width, channels = self._first
    side = self._settings.resolution or min(height, width)
    return side, side, channels

  def image(self, image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [R, R, C], cropped then resized."""
    image = self._crop(image)
    size = self._settings.resolution
    if not size or image.shape[:2] == (size, size):
      return image
    resized = np.asarray(_pil(image).resize((size, size),
                                            resample=self._filter))
    return resized.reshape(size, size, image.shape[2])

  def record(self, image: np.ndarray, label: int) -> bytes:
    """A serialized tf.train.Example: the encoded "image" and "label"."""
    feature = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "image": feature(bytes_list=tf.train.BytesList(
            value=[self._encode(self.image(image))])),
        "label": feature(int64_list=tf.train.Int64List(value=[label])),
    })).SerializeToString()


def _chunks(source: sources.Source, start: int, end: int
            ) -> Iterator[dict[str, np.ndarray]]:
  """The source's examples start..end-1, a chunk at a time, read ahead in
  parallel (images of a size that varies, one at a time)."""
  chunk = (1 if None in source.image_shape else
           max(1, min(_CHUNK, _CHUNK_BYTES // math.prod(source.image_shape))))
  indices = tf.data.Dataset.range(start, end).batch(chunk)
  examples = indices.map(source.read, num_parallel_calls=tf.data.AUTOTUNE,
                         deterministic=True).prefetch(2)
  try:
    yield from examples.as_numpy_iterator()
  except tf.errors.OpError as e:
    bad = BadImage.found_in(e)
    if bad is None:
      raise
    raise UserError(f"cannot read image {bad.path}: {bad.reason}") from None


class _Progress:
  """Logs images done, images/sec and the time left (summaries.Progress,
  counting images as steps), at most every 5 seconds."""

  def __init__(self, total: int, done: int):
    self._total, self._done = total, done
    self._rates = summaries.Progress(total_steps=total, examples_per_step=1,
                                     start_step=done)
    self._last = time.monotonic()

  def add(self, count: int) -> None:
    self._done += count
    if time.monotonic() - self._last < 5 and self._done < self._total:
      return
    self._last = time.monotonic()
    rates = self._rates.update(self._done)
    logging.info("%d/%d images | %.1f images/sec | time left %s", self._done,
                 self._total, rates["perf/examples_per_sec"],
                 summaries.format_duration(rates["progress/seconds_left"]))


def _write_shard(path: str, records: Iterator[bytes]) -> dict:
  """Writes an ArrayRecord shard whole; returns its count and sha256 (over
  the records).

  ArrayRecord writes local files: a remote shard is written locally first.
  """
  local = "://" not in path
  with tempfile.TemporaryDirectory() as staging:
    target = path + ".partial" if local else os.path.join(staging, "shard")
    writer = array_record_module.ArrayRecordWriter(target, _WRITER_OPTIONS)
    digest, count = hashlib.sha256(), 0
    for record in records:
      writer.write(record)
      digest.update(len(record).to_bytes(8, "little") + record)
      count += 1
    writer.close()
    if local:
      tf.io.gfile.rename(target, path, overwrite=True)
    else:
      tf.io.gfile.copy(target, path, overwrite=True)
  return {"count": count, "sha256": digest.hexdigest()}


def _prepare_temp(temp: str, settings: Settings, overwrite: bool) -> bool:
  """Creates `temp` (returns True), or keeps it if it is this create's,
  interrupted (returns False)."""
  wanted = json.dumps(dataclasses.asdict(settings), sort_keys=True)
  settings_path = os.path.join(temp, _SETTINGS)
  if tf.io.gfile.exists(temp):
    found = (tf.io.gfile.GFile(settings_path).read()
             if tf.io.gfile.exists(settings_path) else "")
    if found == wanted:
      logging.info("Going on with the interrupted create in %s", temp)
      return False
    if not overwrite:
      raise UserError(
          f"{temp} holds an unfinished create with other settings "
          f"({found or 'none'}); run that command again to complete it, delete the "
          "directory, or pass --overwrite to start over")
    tf.io.gfile.rmtree(temp)
  tf.io.gfile.makedirs(temp)
  files.write_atomically(settings_path, wanted)
  return True


def _done_shard(temp: str, name: str) -> dict | None:
  """The count and hash of a shard a previous run completed, or None."""
  marker = os.path.join(temp, name + _DONE)
  if not (tf.io.gfile.exists(marker) and
          tf.io.gfile.exists(os.path.join(temp, name))):
    return None
  with tf.io.gfile.GFile(marker) as f:
    return json.load(f)


def _move_into_place(temp: str, dest: str) -> None:
  """Renames `temp` to `dest`, replacing it (file by file where the
  filesystem cannot rename a directory, dataset.json last)."""
  if tf.io.gfile.exists(dest):
    tf.io.gfile.rmtree(dest)
  try:
    tf.io.gfile.rename(temp, dest)
    return
  except (tf.errors.UnimplementedError, tf.errors.FailedPreconditionError):
    pass
  tf.io.gfile.makedirs(dest)
  names = sorted(tf.io.gfile.listdir(temp), key=lambda n: n == METADATA)
  for name in names:
    tf.io.gfile.rename(os.path.join(temp, name), os.path.join(dest, name))
  tf.io.gfile.rmtree(temp)


def create(settings: Settings, dest: str, *, overwrite: bool = False,
           workers: int = 0) -> dict:
  """Packs `settings.source` into a new packed dataset at `dest`.

  Args:
    settings: the source and how to convert it.
    dest: the dataset's directory (local or gs://); it must not exist or be
      empty, unless `overwrite`.
    overwrite: replace `dest` (once the new dataset is complete), and start
      over an unfinished create of other settings.
    workers: threads that crop, resize and encode (0: one per CPU core).

  Returns:
    The dataset's metadata (dataset.json).

  Raises:
    UserError: bad settings or source; `dest` is then left as it was.
  """
  _check_settings(settings)
  dest = dest.rstrip("/")
  _check_destination(dest, overwrite)
  source = sources.open_source(settings.source, sources.Request(
      split=settings.split, image_size=0, channels=settings.channels,
      resize=False, tfds_data_dir=settings.tfds_data_dir))
  converter = _Converter(settings, source.image_shape, source.description)
  if None not in source.image_shape:
    converter.check(source.image_shape, f"{source.description}'s images")
  temp = dest + _CREATING
  fresh = _prepare_temp(temp, settings, overwrite)
  try:
    metadata = _write_shards(settings, source, converter, temp, workers)
  except UserError:
    if fresh:  # Bad input leaves nothing behind (an interruption does).
      tf.io.gfile.rmtree(temp)
    raise
  _move_into_place(temp, dest)
  logging.info("Wrote %d images to %s", metadata["count"], dest)
  return metadata


def _write_shards(settings: Settings, source: sources.Source,
                  converter: _Converter, temp: str, workers: int) -> dict:
  """Writes the shards not done yet, then dataset.json; returns it."""
  total = source.num_examples
  names = [_shard_name(i) for i in range(math.ceil(total / settings.shard_size))]
  done = {name: _done_shard(temp, name) for name in names}
  progress = _Progress(total, sum(d["count"] for d in done.values() if d))
  with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count()) as pool:
    for index, name in enumerate(names):
      if done[name]:
        continue
      start = index * settings.shard_size

      def records(start=start) -> Iterator[bytes]:
        index = start
        for chunk in _chunks(source, start,
                             min(start + settings.shard_size, total)):
          for image in chunk["image"]:
            converter.check(image.shape,
                            f"{source.description}'s image {index}")
            index += 1
          yield from pool.map(converter.record, chunk["image"],
                              chunk["label"].tolist())
          progress.add(len(chunk["label"]))

      done[name] = {**_write_shard(os.path.join(temp, name), records()),
                    "shape": list(converter.shape)}
      files.write_atomically(os.path.join(temp, name + _DONE),
                             json.dumps(done[name]))
  metadata = _metadata(settings, source, names, done)
  files.write_atomically(os.path.join(temp, METADATA),
                         json.dumps(metadata, indent=2))
  for name in names:
    tf.io.gfile.remove(os.path.join(temp, name + _DONE))
  tf.io.gfile.remove(os.path.join(temp, _SETTINGS))
  return metadata


def _metadata(settings: Settings, source: sources.Source, names: list[str],
              done: dict) -> dict:
  """dataset.json's content."""
  shapes = {tuple(done[n].pop("shape")) for n in names}
  if len(shapes) != 1:  # Only if the source changed between runs.
    raise UserError(f"the shards hold images of shapes {sorted(shapes)}; the "
                    "source changed since the create began: start over with "
                    "--overwrite")
  content = hashlib.sha256("".join(done[n]["sha256"] for n in names).encode())
  return {
      "format": FORMAT,
      "count": source.num_examples,
      "shape": list(shapes.pop()),
      "num_classes": source.num_classes,
      "class_names": list(source.class_names),
      "labels": source.num_classes > 1,
      "source": source.description,
      "settings": dataclasses.asdict(settings),
      "sha256": content.hexdigest(),
      "shards": [{"name": n, **done[n]} for n in names],
  }


# ---------------------------------------------------------------- inspect ---


def inspect(directory: str, grid_path: str, count: int = 64) -> dict:
  """The metadata of a packed dataset; writes its first images as a grid PNG.

  Reading the first images also checks that the shards can be read.
  """
  directory = directory.rstrip("/")
  metadata = read_metadata(directory)
  source = _packed(directory, sources.Request(
      split="all", image_size=0, channels=metadata["shape"][2], resize=False))
  first = pipeline.first_examples(source, min(count, source.num_examples))
  grid = summaries.image_grid(first["image"])[0]  # [H', W', C]
  files.write_atomically(grid_path, tf.io.encode_png(grid).numpy())
  return metadata
