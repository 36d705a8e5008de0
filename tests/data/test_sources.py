"""Tests for trainer.data.sources: embedded:, idx:, tfds: and the specs."""

import gzip
import hashlib
import os
import pathlib
import shutil
import struct
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.conftest import run_command
from tests.data import read_all
from trainer.data import sources
from trainer.errors import UserError

MNIST_TEST_SIZE = 10_000
# Real MNIST digits put into the local TFDS dataset, per split.
TFDS_SPLITS = {"train": 200, "test": 100}


def _request(**overrides) -> sources.Request:
  """A Request for 28x28 grey images of the test split, changed by overrides."""
  fields = dict(split="test", image_size=28, channels=1, resize=False)
  fields.update(overrides)
  return sources.Request(**fields)


def _decode_idx_gz(path: pathlib.Path) -> np.ndarray:
  """Decodes a gzipped IDX file of unsigned bytes, independently of sources."""
  with gzip.open(path, "rb") as f:
    data = f.read()
  (magic,) = struct.unpack(">I", data[:4])
  assert magic >> 8 == 0x08, f"{path} is not an IDX file of unsigned bytes"
  ndim = magic & 0xFF
  shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@pytest.fixture(scope="module")
def mnist_test(mnist_dir: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """The real MNIST test split: images uint8 [N, 28, 28, 1], labels [N]."""
  images = _decode_idx_gz(mnist_dir / "t10k-images-idx3-ubyte.gz")
  labels = _decode_idx_gz(mnist_dir / "t10k-labels-idx1-ubyte.gz")
  return images[..., None], labels


# ------------------------------------------------------------------- idx ---


def test_idx_test_split_describes_real_mnist(mnist_dir):
  source = sources.load(f"idx:{mnist_dir}", _request())
  assert source.num_examples == MNIST_TEST_SIZE
  assert source.image_shape == (28, 28, 1)
  assert source.num_classes == 10


def test_idx_read_returns_the_images_and_labels_at_the_indices(
    mnist_dir, mnist_test):
  images, labels = mnist_test
  source = sources.load(f"idx:{mnist_dir}", _request())
  indices = [0, 1, 2, MNIST_TEST_SIZE - 1]
  data = source.read(tf.constant(indices, tf.int64))
  assert data["image"].dtype == tf.uint8
  np.testing.assert_array_equal(data["image"].numpy(), images[indices])
  np.testing.assert_array_equal(data["label"].numpy(), labels[indices])


@pytest.mark.parametrize("split, start, end", [
    ("test[:9000]", 0, 9000),
    ("test[9000:]", 9000, MNIST_TEST_SIZE),
    ("test[90%:]", 9000, MNIST_TEST_SIZE),
    ("test[:10%]", 0, 1000),
    ("test[1000:3000]", 1000, 3000),
])
def test_idx_split_slices_select_that_range_in_order(
    mnist_dir, mnist_test, split, start, end):
  images, labels = mnist_test
  source = sources.load(f"idx:{mnist_dir}", _request(split=split))
  assert source.num_examples == end - start
  read_images, read_labels = read_all(source)
  np.testing.assert_array_equal(read_images, images[start:end])
  np.testing.assert_array_equal(read_labels, labels[start:end])


def test_idx_missing_split_names_the_file_and_the_present_splits(mnist_dir):
  with pytest.raises(UserError) as error:
    sources.load(f"idx:{mnist_dir}", _request(split="train"))
  message = str(error.value)
  assert "train-images-idx3-ubyte" in message
  assert "splits present: test" in message


def _real_images_gz(mnist_dir: pathlib.Path) -> bytes:
  return (mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()


def _truncated_raw(mnist_dir: pathlib.Path) -> bytes:
  return gzip.decompress(_real_images_gz(mnist_dir))[:5000]


def _truncated_gz(mnist_dir: pathlib.Path) -> bytes:
  data = _real_images_gz(mnist_dir)
  return data[:len(data) // 2]


def _corrupt_gz_body(mnist_dir: pathlib.Path) -> bytes:
  data = _real_images_gz(mnist_dir)
  # Inverting deflate data after the gzip header makes it undecodable.
  return data[:1000] + bytes(b ^ 0xFF for b in data[1000:1100]) + data[1100:]


def _bad_magic(mnist_dir: pathlib.Path) -> bytes:
  data = gzip.decompress(_real_images_gz(mnist_dir))
  return b"\x08\x03\x00\x00" + data[4:]


@pytest.mark.parametrize("file_name, make_bytes, expected", [
    ("t10k-images-idx3-ubyte", _truncated_raw, "truncated or corrupt"),
    ("t10k-images-idx3-ubyte.gz", _truncated_gz, "truncated or corrupt"),
    ("t10k-images-idx3-ubyte.gz", _corrupt_gz_body, "truncated or corrupt"),
    ("t10k-images-idx3-ubyte", _bad_magic, "bad magic number"),
], ids=["truncated_raw", "truncated_gz", "corrupt_gz_body", "bad_magic"])
def test_idx_broken_file_is_a_user_error_naming_it(
    mnist_dir, tmp_path, file_name, make_bytes, expected):
  (tmp_path / file_name).write_bytes(make_bytes(mnist_dir))
  with pytest.raises(UserError) as error:
    sources.load(f"idx:{tmp_path}", _request())
  assert file_name in str(error.value)
  assert expected in str(error.value)


# -------------------------------------------------------------- embedded ---

# The SHA-256 of the MNIST files as distributed, as the embedded copy's
# README (trainer/data/assets/mnist/README.md) states them.
_MNIST_SHA256 = {
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


def test_embedded_mnist_files_are_the_distributed_ones():
  directory = pathlib.Path(sources.embedded_dir("mnist"))
  readme = (directory / "README.md").read_text()
  assert "CC BY-SA 3.0" in readme
  for name, digest in _MNIST_SHA256.items():
    assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == (
        digest)
    assert digest in readme


def test_embedded_mnist_is_the_real_test_split():
  directory = pathlib.Path(sources.embedded_dir("mnist"))
  source = sources.load("embedded:mnist", _request())
  images, labels = read_all(source)
  assert source.description == "embedded:mnist"
  assert (source.num_examples, source.num_classes) == (MNIST_TEST_SIZE, 10)
  np.testing.assert_array_equal(
      images[..., 0], _decode_idx_gz(directory / "t10k-images-idx3-ubyte.gz"))
  np.testing.assert_array_equal(
      labels, _decode_idx_gz(directory / "t10k-labels-idx1-ubyte.gz"))


def test_embedded_mnist_slices_and_stacks():
  assert sources.load("embedded:mnist",
                      _request(split="test[:1000]")).num_examples == 1000
  stacked = sources.load("stacked_mnist:embedded:mnist",
                         _request(channels=3))
  assert (stacked.image_shape, stacked.num_classes) == ((28, 28, 3), 1000)


@pytest.mark.parametrize("spec, split, expected", [
    ("embedded:mnist", "train",
     "embedded:mnist holds only the split(s) test (slices such as "
     "'test[:1000]' work); tfds:mnist has the others"),
    ("embedded:cifar10", "test",
     "embedded:cifar10 is not shipped with the package; embedded datasets: "
     "mnist"),
])
def test_embedded_bad_name_or_split_says_what_is_valid(spec, split, expected):
  with pytest.raises(UserError) as error:
    sources.load(spec, _request(split=split))
  assert expected in str(error.value)


@pytest.mark.slow
def test_embedded_mnist_is_read_from_an_installed_wheel(tmp_path):
  """The digits are package data: a wheel holds them and reads them."""
  # Built from a copy of what the wheel is made of: setuptools writes its
  # build/ directory into the tree it builds.
  repo = pathlib.Path(__file__).resolve().parents[2]
  project = tmp_path / "project"
  shutil.copytree(repo / "trainer", project / "trainer",
                  ignore=shutil.ignore_patterns("__pycache__"))
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(repo / name, project / name)
  code, _, err = run_command(
      sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
      "--no-build-isolation", "--wheel-dir", str(tmp_path / "wheel"),
      str(project))
  assert code == 0, err
  (wheel,) = (tmp_path / "wheel").glob("*.whl")
  code, _, err = run_command(
      sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
      "--target", str(tmp_path / "site"), str(wheel))
  assert code == 0, err
  # From another directory, with the wheel's copy first on the path.
  read = ("import trainer.data.sources as s;"
          "r = s.Request(split='test', image_size=28, channels=1, "
          "resize=False);"
          "x = s.load('embedded:mnist', r);"
          "print(s.__file__, x.num_examples, x.num_classes)")
  code, out, err = run_command(
      "env", f"PYTHONPATH={tmp_path / 'site'}", sys.executable, "-c", read,
      cwd=tmp_path)
  assert code == 0, err
  module_file, count, classes = out.split()
  assert module_file.startswith(str(tmp_path / "site"))
  assert (count, classes) == ("10000", "10")


# ------------------------------------------------------------------ specs ---


@pytest.mark.parametrize("kind", ["idx", "folder"])
def test_missing_directory_is_a_user_error(tmp_path, kind):
  missing = tmp_path / "does_not_exist"
  with pytest.raises(UserError, match="no such directory"):
    sources.load(f"{kind}:{missing}", _request())


def test_unknown_kind_lists_the_valid_kinds():
  with pytest.raises(
      UserError, match="valid: embedded, folder, idx, packed, stacked_mnist, "
      "tfds"):
    sources.load("foo:bar", _request())


@pytest.mark.parametrize("spec", ["mnist", "idx:", ""])
def test_spec_without_kind_and_argument_is_a_user_error(spec):
  with pytest.raises(UserError, match="<kind>:<argument>"):
    sources.load(spec, _request())


# ---------------------------------------------------------- model checks ---


def test_image_size_mismatch_suggests_resize(mnist_dir):
  with pytest.raises(UserError) as error:
    sources.load(f"idx:{mnist_dir}", _request(image_size=32))
  message = str(error.value)
  assert "28x28" in message
  assert "32x32" in message
  assert "data.resize" in message


def test_resize_gives_images_of_the_model_size(mnist_dir, mnist_test):
  images, _ = mnist_test
  source = sources.load(f"idx:{mnist_dir}",
                        _request(split="test[:20]", image_size=32, resize=True))
  assert source.image_shape == (32, 32, 1)
  resized, _ = read_all(source)
  assert resized.shape == (20, 32, 32, 1)
  assert resized.dtype == np.uint8
  # Resizing keeps each digit's mean brightness (it does not rescale values).
  np.testing.assert_allclose(resized.mean(axis=(1, 2, 3)),
                             images[:20].mean(axis=(1, 2, 3)), atol=3)


def test_channel_mismatch_is_a_user_error(mnist_dir):
  with pytest.raises(UserError, match="1-channel images but the model makes 3"):
    sources.load(f"idx:{mnist_dir}", _request(channels=3))


# ------------------------------------------------------------------ tfds ---


class TinyMnistForTests(tfds.core.GeneratorBasedBuilder):
  """Real MNIST digits as a local TFDS dataset, prepared without network."""

  VERSION = tfds.core.Version("1.0.0")
  # It downloads nothing, so it has no URL checksums. Saying so keeps TFDS
  # from looking for a checksums file next to this module, which needs the
  # `importlib_resources` backport on Python >= 3.9 (tensorflow/datasets#11212).
  url_infos = None

  def __init__(self, *, examples: dict[str, tuple[np.ndarray, np.ndarray]]
               | None = None, **kwargs):
    """`examples` (split -> images, labels) is only needed to prepare it."""
    self._examples = examples
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }))

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything is local.
    return {split: self._generate_examples(*data)
            for split, data in self._examples.items()}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray):
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": image, "label": int(label)}


@pytest.fixture(scope="module")
def tfds_prepared(tmp_path_factory, mnist_test):
  """(data_dir, split -> (images, labels)) of a prepared TinyMnistForTests."""
  images, labels = mnist_test
  examples, start = {}, 0
  for split, count in TFDS_SPLITS.items():
    examples[split] = (images[start:start + count],
                       labels[start:start + count])
    start += count
  data_dir = tmp_path_factory.mktemp("tfds")
  TinyMnistForTests(examples=examples,
                    data_dir=str(data_dir)).download_and_prepare()
  return data_dir, examples


def _tfds_request(data_dir: pathlib.Path, **overrides) -> sources.Request:
  return _request(tfds_data_dir=str(data_dir), **overrides)


@pytest.mark.parametrize("split", list(TFDS_SPLITS))
def test_tfds_local_dataset_holds_the_real_digits(tfds_prepared, split):
  data_dir, examples = tfds_prepared
  images, labels = examples[split]
  source = sources.load(f"tfds:{TinyMnistForTests.name}",
                        _tfds_request(data_dir, split=split))
  assert source.num_examples == len(images)
  assert source.image_shape == (28, 28, 1)
  assert source.num_classes == 10
  read_images, read_labels = read_all(source)
  # TFDS stores examples in an order of its own: match them by content.
  by_content = {image.tobytes(): label for image, label in zip(images, labels)}
  assert len(by_content) == len(images)
  assert {image.tobytes() for image in read_images} == set(by_content)
  np.testing.assert_array_equal(
      read_labels, [by_content[image.tobytes()] for image in read_images])


def test_tfds_split_slice(tfds_prepared):
  data_dir, examples = tfds_prepared
  source = sources.load(f"tfds:{TinyMnistForTests.name}",
                        _tfds_request(data_dir, split="train[:25%]"))
  assert source.num_examples == TFDS_SPLITS["train"] // 4
  all_train = {image.tobytes() for image in examples["train"][0]}
  read_images, _ = read_all(source)
  assert {image.tobytes() for image in read_images} <= all_train


def test_tfds_unknown_split_lists_the_splits(tfds_prepared):
  data_dir, _ = tfds_prepared
  with pytest.raises(UserError) as error:
    sources.load(f"tfds:{TinyMnistForTests.name}",
                 _tfds_request(data_dir, split="validation"))
  assert "validation" in str(error.value)
  assert "train" in str(error.value) and "test" in str(error.value)


# What the message of a missing TFDS dataset offers instead, by the request's
# dataset, split and config section.
_OFFLINE_HINTS = [
    ("mnist", "train", "data",
     "Offline, use the test split of mnist that ships with the package: "
     "--config.data.source=embedded:mnist --config.data.split=test; or "
     "--config.data.source=idx:<dir>, folder:<dir> or packed:<dir>; or "
     "prepare tfds:mnist on a machine with internet and copy it into "
     "--config.data.tfds_data_dir."),
    # A split that the shipped copy holds stays.
    ("mnist", "test[:1000]", "eval",
     "Offline, use the test split of mnist that ships with the package: "
     "--config.eval.source=embedded:mnist; or --config.eval.source=idx:<dir>"
     ", folder:<dir> or packed:<dir>; or prepare tfds:mnist on a machine "
     "with internet and copy it into --config.data.tfds_data_dir."),
    ("cifar10", "train", "data",
     "Offline, use --config.data.source=idx:<dir>, folder:<dir> or "
     "packed:<dir>; or prepare tfds:cifar10 on a machine with internet and "
     "copy it into --config.data.tfds_data_dir."),
]


@pytest.mark.parametrize("name,split,section,hint", _OFFLINE_HINTS)
def test_tfds_not_prepared_without_download_says_what_to_use_instead(
    tmp_path, name, split, section, hint):
  with pytest.raises(UserError) as error:
    sources.load(f"tfds:{name}", _tfds_request(
        tmp_path, split=split, section=section, tfds_download=False))
  assert str(error.value) == (
      f"tfds:{name} is not prepared in {tmp_path} and "
      f"data.tfds_download=False. {hint}")


def test_stacked_mnist_of_tfds_offline_is_told_the_stacked_embedded_digits(
    tmp_path):
  with pytest.raises(UserError) as error:
    sources.load("stacked_mnist:tfds:mnist", _tfds_request(
        tmp_path, split="train", channels=3, tfds_download=False))
  assert ("--config.data.source=stacked_mnist:embedded:mnist "
          "--config.data.split=test;") in str(error.value)


def test_tfds_unknown_dataset_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="not a known TFDS dataset"):
    sources.load("tfds:no_such_dataset_xyz", _tfds_request(tmp_path))


# Run in private mount and network namespaces: a name server on the
# namespace's own loopback hears every query and answers none, and the
# resolver is told to wait 60 s for it.
_SILENT_NAME_SERVER = """
import socket
import threading

server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("127.0.0.1", 53))
threading.Thread(target=lambda: [server.recvfrom(4096) for _ in iter(int, 1)],
                 daemon=True).start()

from trainer.data import sources
from trainer.errors import UserError

try:
  sources._check_download_hosts(
      "mnist", sources.Request(split="train", image_size=28, channels=1,
                               resize=False),
      "here", ["https://storage.googleapis.com/mnist.npz"], seconds=1)
except UserError as e:
  print(e)
"""


@pytest.mark.slow
def test_a_name_server_that_never_answers_meets_the_host_checks_deadline(
    tmp_path):
  # socket.create_connection's timeout leaves the name lookup unbounded; the
  # check's own deadline covers it: the check gives up after its 1 s and
  # says so, where the resolver would have waited 60 s.
  if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("ip")):
    pytest.skip("needs root, unshare(1) and ip(8) for private namespaces")
  code, _, err = run_command("unshare", "--mount", "--net", "true")
  if code:
    pytest.skip(f"private namespaces are not permitted here: {err.strip()}")
  resolv = tmp_path / "resolv.conf"
  resolv.write_text("nameserver 127.0.0.1\noptions timeout:60 attempts:1\n")
  script = tmp_path / "check.py"
  script.write_text(_SILENT_NAME_SERVER)
  code, out, err = run_command(
      "unshare", "--mount", "--net", "--", "sh", "-c",
      f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
      f"exec {sys.executable} {script}")
  assert code == 0, err[-3000:]
  assert ("storage.googleapis.com is unreachable (the name server did not "
          "resolve it within 1 s). Offline, use the test split of mnist that "
          "ships with the package: --config.data.source=embedded:mnist "
          "--config.data.split=test;") in out, out + err[-3000:]


@pytest.fixture(scope="module")
def tfds_array_record(tmp_path_factory, tfds_prepared):
  """The data dir of tfds_prepared's examples prepared as ArrayRecord."""
  _, examples = tfds_prepared
  data_dir = tmp_path_factory.mktemp("tfds_array_record")
  TinyMnistForTests(examples=examples, data_dir=str(data_dir),
                    file_format="array_record").download_and_prepare()
  return data_dir


@pytest.mark.parametrize("split", ["train", "test[10:60]"])
def test_tfds_array_record_gives_the_in_memory_examples_by_index(
    tfds_prepared, tfds_array_record, split):
  in_memory_dir, _ = tfds_prepared
  spec = f"tfds:{TinyMnistForTests.name}"
  by_index = sources.load(spec, _tfds_request(tfds_array_record, split=split))
  in_memory = sources.load(spec, _tfds_request(in_memory_dir, split=split))
  assert by_index.num_examples == in_memory.num_examples
  assert by_index.class_names == in_memory.class_names == tuple(
      str(i) for i in range(10))
  indices = tf.constant([7, 0, by_index.num_examples - 1, 7], tf.int64)
  for key in ("image", "label"):
    np.testing.assert_array_equal(by_index.read(indices)[key].numpy(),
                                  in_memory.read(indices)[key].numpy())


def test_tfds_array_record_is_read_from_its_files_when_read(
    tfds_prepared, tfds_array_record, tmp_path):
  # A copy, so that removing its files leaves the module's dataset alone.
  data_dir = tmp_path / "copy"
  shutil.copytree(tfds_array_record, data_dir)
  source = sources.load(f"tfds:{TinyMnistForTests.name}",
                        _tfds_request(data_dir, split="train"))
  assert isinstance(source.reader, type(tfds.data_source(
      TinyMnistForTests.name, split="train", data_dir=str(data_dir))))
  assert len(source.reader) == source.num_examples == TFDS_SPLITS["train"]
  shards = list(data_dir.rglob("*.array_record*"))
  assert shards
  for shard in shards:  # Nothing was loaded: the examples are gone with them.
    shard.write_bytes(b"")
  with pytest.raises(Exception):
    source.read(tf.constant([3], tf.int64))["image"].numpy()


def test_tfds_record_files_over_the_memory_limit_say_how_to_prepare(
    tfds_prepared, monkeypatch):
  data_dir, _ = tfds_prepared
  monkeypatch.setattr(sources, "_MAX_IN_MEMORY_BYTES", 1000)
  with pytest.raises(UserError, match=r"file_format='array_record'"):
    sources.load(f"tfds:{TinyMnistForTests.name}", _tfds_request(data_dir))
