"""Torch tensors and storages as plain numpy arrays, without torch.

In a plain `pickle.dump`, torch writes a tensor as
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` and its
storage as `torch.storage._load_from_bytes(b)`, where `b` is a `torch.save`
archive of the storage alone: the legacy stream of pickles followed by the
raw data (torch 1.x and 2.x alike), or a zip archive. The functions here are
what trainer/convert/pickles.py's restricted unpickler gives for those
globals; the archive's own pickles go through that unpickler too (the `load`
argument of `load_storage`), so that they can name no other global.
"""

import dataclasses
import io
import struct
from typing import Any, BinaryIO, Callable
import zipfile

import numpy as np

# Reads the next pickle of a file through the restricted unpickler, with the
# persistent_load that gives the archive's storage records (None: the pickle
# may hold no persistent ids).
Load = Callable[[BinaryIO, Callable[[Any], Any] | None], Any]

# Each torch dtype by the numpy dtype of its elements' little-endian bytes.
DTYPES = {
    "torch.float64": "<f8", "torch.float32": "<f4", "torch.float16": "<f2",
    # numpy has none: read as bits, returned as float32 (see _values).
    "torch.bfloat16": "<u2",
    "torch.complex64": "<c8", "torch.complex128": "<c16",
    "torch.int64": "<i8", "torch.int32": "<i4", "torch.int16": "<i2",
    "torch.int8": "i1", "torch.uint64": "<u8", "torch.uint32": "<u4",
    "torch.uint16": "<u2", "torch.uint8": "u1", "torch.bool": "?",
}

# The storage classes of torch.save archives, by the dtype of their elements.
STORAGE_TYPES = {
    "DoubleStorage": "torch.float64", "FloatStorage": "torch.float32",
    "HalfStorage": "torch.float16", "BFloat16Storage": "torch.bfloat16",
    "ComplexFloatStorage": "torch.complex64",
    "ComplexDoubleStorage": "torch.complex128",
    "LongStorage": "torch.int64", "IntStorage": "torch.int32",
    "ShortStorage": "torch.int16", "CharStorage": "torch.int8",
    "ByteStorage": "torch.uint8", "BoolStorage": "torch.bool",
}

# The first two pickles of a legacy (non-zip) torch.save stream.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def raw_dtype(dtype: Any, byteorder: str = "little") -> np.dtype:
  """The numpy dtype of the raw elements of a torch dtype ('torch.float32')."""
  if dtype not in DTYPES:
    raise ValueError(f"unknown tensor dtype {dtype!r}")
  return np.dtype(DTYPES[dtype]).newbyteorder(
      "<" if byteorder == "little" else ">")


@dataclasses.dataclass
class Storage:
  """A torch storage: its dtype ('torch.float32') and raw elements.

  `data` is None until the data part of a legacy stream has been read.
  """
  dtype: str
  numel: int
  data: np.ndarray | None = None  # [numel]
  byteorder: str = "little"

  def fill(self, raw: bytes, byteorder: str = "little") -> None:
    dtype = raw_dtype(self.dtype, byteorder)
    if (not isinstance(self.numel, int)
        or len(raw) != self.numel * dtype.itemsize):
      raise ValueError(f"a storage of {self.numel} {self.dtype} elements "
                       f"has {len(raw)} bytes")
    self.data, self.byteorder = np.frombuffer(raw, dtype), byteorder


def _tensor(storage: Storage, offset: int, size: tuple[int, ...],
            stride: tuple[int, ...], dtype: str | None = None) -> np.ndarray:
  """The tensor that views `storage` (as `dtype`) from `offset`, as a copy."""
  if not isinstance(storage, Storage) or storage.data is None:
    raise ValueError("a tensor without its storage")
  raw = storage.data
  if dtype is not None and dtype != storage.dtype:
    raw = raw.view(raw_dtype(dtype, storage.byteorder))
  size, stride = tuple(size), tuple(stride)
  numbers = (offset, *size, *stride)
  if (len(size) != len(stride)
      or not all(isinstance(n, int) and n >= 0 for n in numbers)):
    raise ValueError(f"a tensor of size {size}, stride {stride} and offset "
                     f"{offset}")
  if 0 in size:
    values = np.zeros(size, raw.dtype)
  else:
    # as_strided reads whatever memory it is pointed at: check the bounds.
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= raw.size:
      raise ValueError(
          f"a tensor of size {size}, stride {stride} and offset {offset} "
          f"reaches past its storage of {raw.size} elements")
    values = np.lib.stride_tricks.as_strided(
        raw[offset:], size, [s * raw.itemsize for s in stride],
        writeable=False)
  return _values(values, dtype or storage.dtype)


def _values(raw: np.ndarray, dtype: str) -> np.ndarray:
  """A contiguous copy of `raw` in native byte order; bfloat16 as float32."""
  if dtype == "torch.bfloat16":
    # A bfloat16 is the upper half of the float32 with the same value.
    return (raw.astype(np.uint32, order="C") << 16).view(np.float32)
  return raw.astype(raw.dtype.newbyteorder("="), order="C")


def rebuild_tensor(storage, offset, size, stride, *unused) -> np.ndarray:
  """torch._utils._rebuild_tensor and _rebuild_tensor_v2.

  v2 adds requires_grad, backward hooks and metadata, all unused here.
  """
  del unused
  return _tensor(storage, offset, size, stride)


def rebuild_tensor_v3(storage, offset, size, stride, requires_grad,
                      hooks, dtype, metadata=None) -> np.ndarray:
  """torch._utils._rebuild_tensor_v3: a byte storage viewed as `dtype`."""
  del requires_grad, hooks, metadata
  return _tensor(storage, offset, size, stride, dtype)


def rebuild_parameter(data, requires_grad, hooks, state=None) -> np.ndarray:
  """torch._utils._rebuild_parameter(_with_state): the tensor itself."""
  del requires_grad, hooks, state
  if not isinstance(data, np.ndarray):
    raise ValueError("a parameter that is no tensor")
  return data


# --- torch.save archives of one storage --------------------------------------


def load_storage(data: bytes, load: Load) -> Storage:
  """torch.storage._load_from_bytes: the storage a torch.save archive holds.

  Args:
    data: the archive: zip (torch.save's default) or legacy.
    load: the restricted unpickler's read of one pickle (see `Load`).

  Returns:
    The storage, its data read.
  """
  if not isinstance(data, bytes):
    raise ValueError("storage bytes that are no bytes")
  read = _zip_storage if data[:4] == b"PK\x03\x04" else _legacy_storage
  storage = read(data, load)
  if not isinstance(storage, Storage):
    raise ValueError("storage bytes that hold no storage")
  return storage


def _zip_storage(data: bytes, load: Load) -> Any:
  """data.pkl, whose persistent ids name the records data/<key>."""
  with zipfile.ZipFile(io.BytesIO(data)) as archive:
    names = archive.namelist()
    pickles = [name for name in names
               if name.rsplit("/", 1)[-1] == "data.pkl"]
    if len(pickles) != 1:
      raise ValueError("a torch.save zip archive without one data.pkl")
    prefix = pickles[0][:-len("data.pkl")]
    byteorder = (archive.read(prefix + "byteorder").decode()
                 if prefix + "byteorder" in names else "little")
    storages: dict[str, Storage] = {}

    def storage(pid: Any) -> Storage:
      kind, dtype, key, _, numel = pid
      if kind != "storage":
        raise ValueError(f"a torch.save record of kind {kind!r}")
      if key not in storages:
        record = archive.getinfo(f"{prefix}data/{key}")
        if record.compress_type != zipfile.ZIP_STORED:
          raise ValueError("a compressed storage record")  # torch never
        storages[key] = Storage(dtype, numel)
        storages[key].fill(archive.read(record), byteorder)
      return storages[key]

    with archive.open(pickles[0]) as f:
      return load(f, storage)


def _legacy_storage(data: bytes, load: Load) -> Any:
  """Pickles (magic, protocol, sys_info, object, storage keys), then each
  storage's element count (int64) and elements, little-endian."""
  stream = io.BytesIO(data)
  if (load(stream, None) != _LEGACY_MAGIC
      or load(stream, None) != _LEGACY_PROTOCOL):
    raise ValueError("storage bytes that are no torch.save archive")
  load(stream, None)  # sys_info: the data is little-endian all the same
  storages: dict[str, Storage] = {}

  def storage(pid: Any) -> Storage:
    kind, dtype, key, _, numel, view = pid
    if kind != "storage" or view is not None:
      raise ValueError(f"a torch.save record of kind {kind!r} (view "
                       f"{view!r})")
    return storages.setdefault(key, Storage(dtype, numel))

  root = load(stream, storage)
  for key in load(stream, None):
    (numel,) = struct.unpack("<q", stream.read(8))
    target = storages[key]
    if numel != target.numel:
      raise ValueError(f"a storage of {target.numel} elements holds {numel}")
    target.fill(stream.read(numel * raw_dtype(target.dtype).itemsize))
  return root
