r"""Prepares packed datasets: `python -m trainer.data create|inspect`.

    python -m trainer.data create --source=folder:/photos \
        --dest=/data/faces64 --resolution=64 --crop=center --resize_filter=box
    python -m trainer.data inspect /data/faces64 [--grid=faces64.png]

then train on `--config.data.source=packed:/data/faces64`. `inspect` prints
the metadata and writes a grid of the first images, by default into the
system's temporary directory (the dataset and the current directory stay as
they are), and says where. See docs/data.md and trainer/data/packed.py.
"""

import json
import os
import tempfile

from trainer import cli  # pylint: disable=g-bad-import-order  (sets TF's log level first)
from absl import app
from absl import flags

from trainer.data import packed

_SOURCE = flags.DEFINE_string(
    "source", None, "create: what to pack, as the config's data.source "
    "(folder:<dir>, idx:<dir>, tfds:<name>, stacked_mnist:<digits>, "
    "packed:<dir>).")
_SPLIT = flags.DEFINE_string(
    "split", "train", "create: the split to pack, as the config's data.split.")
_DEST = flags.DEFINE_string(
    "dest", None, "create: the new dataset's directory (local or gs://).")
_RESOLUTION = flags.DEFINE_integer(
    "resolution", 0, "create: resize to this many pixels square (0: keep the "
    "source's size, which must be square and the same for all images).")
_CROP = flags.DEFINE_string(
    "crop", "none", "create: crop before resizing: "
    f"{', '.join(packed.CROPS.names())}.")
_RESIZE_FILTER = flags.DEFINE_string(
    "resize_filter", "box", "create: the resize filter (it changes FIDs): "
    f"{', '.join(packed.RESIZE_FILTERS.names())}.")
_ENCODING = flags.DEFINE_string(
    "encoding", "png", "create: how images are stored: "
    f"{', '.join(packed.ENCODINGS.names())} (png: compact, decoded when "
    "read; raw: the pixels, larger on disk, read without decoding).")
_CHANNELS = flags.DEFINE_integer(
    "channels", 3, "create: channels of folder images, 1 (grey) or 3 (RGB); "
    "other sources keep theirs.")
_SHARD_SIZE = flags.DEFINE_integer(
    "shard_size", packed.Settings.shard_size, "create: images per shard; an "
    "interrupted create goes on from its last complete shard.")
_TFDS_DATA_DIR = flags.DEFINE_string(
    "tfds_data_dir", "", "create: where TFDS finds prepared datasets, as the "
    "config's data.tfds_data_dir.")
_WORKERS = flags.DEFINE_integer(
    "workers", 0, "create: threads that crop, resize and encode (0: one per "
    "CPU core).")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "create: replace a non-empty --dest (once the new "
    "dataset is complete).")
_GRID = flags.DEFINE_string(
    "grid", "", "inspect: where to write the grid PNG of the first images "
    "(default <dataset name>_first.png in the system's temporary directory, "
    "$TMPDIR or /tmp).")

_COMMANDS = ("create", "inspect")


def main(argv) -> None:
  with cli.errors_as_messages():
    command, *args = argv[1:] or [""]
    if command not in _COMMANDS:
      raise app.UsageError(f"the command is one of {', '.join(_COMMANDS)}")
    if command == "create":
      if args or not _SOURCE.value or not _DEST.value:
        raise app.UsageError("create takes --source and --dest, and no "
                             "arguments")
      metadata = packed.create(packed.Settings(
          source=_SOURCE.value, split=_SPLIT.value,
          resolution=_RESOLUTION.value, crop=_CROP.value,
          resize_filter=_RESIZE_FILTER.value, encoding=_ENCODING.value,
          channels=_CHANNELS.value,
          shard_size=_SHARD_SIZE.value, tfds_data_dir=_TFDS_DATA_DIR.value),
          _DEST.value, overwrite=_OVERWRITE.value, workers=_WORKERS.value)
    else:
      if len(args) != 1:
        raise app.UsageError("inspect takes one argument: the dataset's "
                             "directory")
      directory = args[0].rstrip("/")
      grid = _GRID.value or os.path.join(
          tempfile.gettempdir(), f"{os.path.basename(directory)}_first.png")
      metadata = packed.inspect(directory, grid)
      print(f"grid of the first images: {grid}")
    print(json.dumps(metadata, indent=2))


if __name__ == "__main__":
  app.run(main)
