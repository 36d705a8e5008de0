"""Tests for trainer.data.packed: `create`, `inspect` and the packed: source."""

import json
import pathlib

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from trainer.data import packed
from trainer.data import sources
from trainer.errors import UserError


def _save_png(path: pathlib.Path, image: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path)


def _noise(seed: int, shape: tuple[int, ...]) -> np.ndarray:
  """Random uint8 pixels: any change of a value shows."""
  return np.random.default_rng(seed).integers(0, 256, shape, np.uint8)


def _read_all(source: sources.Source) -> dict[str, np.ndarray]:
  data = source.read(tf.range(source.num_examples, dtype=tf.int64))
  return {k: v.numpy() for k, v in data.items()}


def _native(spec: str, split: str = "train", channels: int = 3
            ) -> sources.Source:
  """A source as `create` reads it: every image at its own size."""
  return sources.open_source(spec, sources.Request(
      split=split, image_size=0, channels=channels, resize=False))


def _open(directory: pathlib.Path, size: int, channels: int = 3,
          split: str = "train") -> sources.Source:
  return sources.load(f"packed:{directory}", sources.Request(
      split=split, image_size=size, channels=channels, resize=False))


def _create(source: str, dest: pathlib.Path, **settings) -> dict:
  settings = {"split": "train", "shard_size": 4, **settings}
  return packed.create(packed.Settings(source=source, **settings), str(dest),
                       workers=2)


@pytest.fixture
def classes_dir(tmp_path) -> pathlib.Path:
  """Ten 8x8 RGB noise PNGs in class folders made out of order."""
  for i in range(10):
    _save_png(tmp_path / "photos" / ("zebra", "ant")[i % 2] / f"{i}.png",
              _noise(i, (8, 8, 3)))
  return tmp_path / "photos"


@pytest.mark.parametrize("encoding", packed.ENCODINGS.names())
def test_create_reads_back_the_folder_pixels_labels_and_classes(
    classes_dir, tmp_path, encoding):
  metadata = _create(f"folder:{classes_dir}", tmp_path / "packed",
                     encoding=encoding)
  assert metadata["settings"]["encoding"] == encoding
  expected = _read_all(_native(f"folder:{classes_dir}"))
  source = _open(tmp_path / "packed", 8)
  assert (source.num_examples, source.image_shape) == (10, (8, 8, 3))
  assert (source.num_classes, source.class_names) == (2, ("ant", "zebra"))
  read = _read_all(source)
  np.testing.assert_array_equal(read["image"], expected["image"])
  np.testing.assert_array_equal(read["label"], expected["label"])
  assert set(read["label"]) == {0, 1}
  assert [s["count"] for s in metadata["shards"]] == [4, 4, 2]
  assert metadata["count"] == 10 and metadata["shape"] == [8, 8, 3]
  assert not (tmp_path / "packed.creating").exists()


def test_create_reads_back_real_mnist_digits_and_slices(mnist_dir, tmp_path):
  spec = f"idx:{mnist_dir}"
  _create(spec, tmp_path / "digits", split="test[:30]", shard_size=8)
  source = _open(tmp_path / "digits", 28, channels=1, split="x[10:20]")
  expected = _read_all(_native(spec, split="test[10:20]"))
  read = _read_all(source)
  np.testing.assert_array_equal(read["image"], expected["image"])
  np.testing.assert_array_equal(read["label"], expected["label"])
  assert source.num_classes == 10


@pytest.mark.parametrize("resize_filter", ["box", "bilinear", "bicubic",
                                           "lanczos"])
def test_resize_equals_the_filter_applied_directly(tmp_path, resize_filter):
  # 12x16 images, cropped to their central 12x12 and resized to 8x8.
  originals = [_noise(i, (12, 16, 3)) for i in range(3)]
  for i, image in enumerate(originals):
    _save_png(tmp_path / "wide" / f"{i}.png", image)
  _create(f"folder:{tmp_path / 'wide'}", tmp_path / "packed", resolution=8,
          crop="center", resize_filter=resize_filter)
  resample = getattr(Image.Resampling, resize_filter.upper())
  expected = [np.asarray(Image.fromarray(image[:, 2:14]).resize(
      (8, 8), resample=resample)) for image in originals]
  np.testing.assert_array_equal(_read_all(_open(tmp_path / "packed", 8))[
      "image"], np.stack(expected))


def test_the_content_hash_follows_the_pixels(classes_dir, tmp_path):
  first = _create(f"folder:{classes_dir}", tmp_path / "a")
  again = _create(f"folder:{classes_dir}", tmp_path / "b", shard_size=4)
  _save_png(classes_dir / "ant" / "1.png", _noise(99, (8, 8, 3)))
  changed = _create(f"folder:{classes_dir}", tmp_path / "c")
  assert first["sha256"] == again["sha256"] != changed["sha256"]


def test_inspect_gives_the_metadata_and_a_grid_of_the_first_images(
    classes_dir, tmp_path):
  metadata = _create(f"folder:{classes_dir}", tmp_path / "packed")
  grid_path = tmp_path / "grid.png"
  assert packed.inspect(str(tmp_path / "packed"), str(grid_path),
                        count=4) == metadata
  grid = np.asarray(Image.open(grid_path))  # 2x2 tiles of 8x8
  first = _read_all(_native(f"folder:{classes_dir}"))["image"]
  np.testing.assert_array_equal(grid[:8, 8:], first[1])


# -------------------------------------------------------------- bad input ---


def _tree(root: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(root)): p.read_bytes()
          for p in sorted(root.rglob("*")) if p.is_file()}


def _mixed_sizes(root):
  _save_png(root / "src" / "a.png", _noise(0, (8, 8, 3)))
  _save_png(root / "src" / "b.png", _noise(1, (10, 10, 3)))
  return {}


def _not_square(root):
  _save_png(root / "src" / "a.png", _noise(0, (8, 10, 3)))
  return {"resolution": 8}


def _top_and_classes(root):
  _save_png(root / "src" / "a.png", _noise(0, (8, 8, 3)))
  _save_png(root / "src" / "cls" / "b.png", _noise(1, (8, 8, 3)))
  return {}


def _empty_class(root):
  _save_png(root / "src" / "cat" / "a.png", _noise(0, (8, 8, 3)))
  (root / "src" / "dog").mkdir()
  return {}


def _dest_not_empty(root):
  _save_png(root / "src" / "a.png", _noise(0, (8, 8, 3)))
  (root / "dest").mkdir()
  (root / "dest" / "precious.txt").write_text("keep me")
  return {}


def _unknown_filter(root):
  _save_png(root / "src" / "a.png", _noise(0, (8, 8, 3)))
  return {"resize_filter": "nearest"}


def _unknown_crop(root):
  _save_png(root / "src" / "a.png", _noise(0, (8, 8, 3)))
  return {"crop": "random"}


def _unknown_encoding(root):
  _save_png(root / "src" / "a.png", _noise(0, (8, 8, 3)))
  return {"encoding": "jpeg"}


@pytest.mark.parametrize("make, message", [
    (_mixed_sizes, r"mixed sizes .*10x10.*--resolution"),
    (_not_square, r"8x10, not square; pass --crop=center"),
    (_top_and_classes, r"both at its top level and in subfolders"),
    (_empty_class, r"class subfolder 'dog' holds no PNG or JPEG"),
    (_dest_not_empty, r"exists and is not empty.*--overwrite"),
    (_unknown_filter, r"unknown resize filter 'nearest'.*bicubic, bilinear, "
                      r"box, lanczos"),
    (_unknown_crop, r"unknown crop 'random'.*center, none"),
    (_unknown_encoding, r"unknown encoding 'jpeg'.*png, raw"),
])
def test_bad_input_is_one_message_and_writes_nothing(tmp_path, make,
                                                     message):
  settings = make(tmp_path)
  before = _tree(tmp_path)
  with pytest.raises(UserError, match=message) as error:
    _create(f"folder:{tmp_path / 'src'}", tmp_path / "dest", **settings)
  assert "\n" not in str(error.value)
  assert _tree(tmp_path) == before
  assert not (tmp_path / "dest.creating").exists()


def _truncate_shard(directory: pathlib.Path) -> str:
  shard = directory / "shard-00001.array_record"
  shard.write_bytes(shard.read_bytes()[:-40])
  return shard.name


def _garble_metadata(directory: pathlib.Path) -> str:
  (directory / packed.METADATA).write_text('{"format": "trainer.packed/1", ')
  return packed.METADATA


def _miscount_metadata(directory: pathlib.Path) -> str:
  path = directory / packed.METADATA
  metadata = json.loads(path.read_text())
  metadata["count"] += 1
  path.write_text(json.dumps(metadata))
  return packed.METADATA


def _unknown_encoding_in_metadata(directory: pathlib.Path) -> str:
  path = directory / packed.METADATA
  metadata = json.loads(path.read_text())
  metadata["settings"]["encoding"] = "webp"
  path.write_text(json.dumps(metadata))
  return packed.METADATA


@pytest.mark.parametrize("damage", [_truncate_shard, _garble_metadata,
                                    _miscount_metadata,
                                    _unknown_encoding_in_metadata])
def test_a_damaged_dataset_is_refused_at_start_naming_the_file(
    classes_dir, tmp_path, damage):
  _create(f"folder:{classes_dir}", tmp_path / "packed")
  name = damage(tmp_path / "packed")
  with pytest.raises(UserError, match=f"{name}.*damaged") as error:
    _open(tmp_path / "packed", 8)
  assert "\n" not in str(error.value)


def test_a_shape_other_than_the_models_is_refused_as_for_other_sources(
    classes_dir, tmp_path):
  _create(f"folder:{classes_dir}", tmp_path / "packed")
  with pytest.raises(UserError, match=r"has 8x8 images but the model makes "
                     r"16x16; set model.image_size=8 .* or data.resize=True"):
    _open(tmp_path / "packed", 16)
  with pytest.raises(UserError, match="3-channel images but the model makes 1"):
    _open(tmp_path / "packed", 8, channels=1)
  resized = sources.load(f"packed:{tmp_path / 'packed'}", sources.Request(
      split="train", image_size=16, channels=3, resize=True))
  assert _read_all(resized)["image"].shape == (10, 16, 16, 3)


def test_a_directory_without_metadata_is_not_a_packed_dataset(tmp_path):
  with pytest.raises(UserError, match="is not a packed dataset"):
    _open(tmp_path, 8)
