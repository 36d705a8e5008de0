"""Writing files so that a reader never sees a half-written one."""

import io
import os
from typing import Callable
import uuid

import numpy as np
import tensorflow as tf


def replace_atomically(path: str, write: Callable[[str], None]) -> None:
  """Calls write(temporary path) beside `path`, then renames it to `path`.

  A write that fails half-way leaves `path` as it was. Works on any
  tf.io.gfile filesystem (local, gs://).

  Args:
    path: the file to create or replace.
    write: writes the whole file to the path it is given. The temporary
      name ends like `path` (Keras writes weights only to *.weights.h5).
  """
  directory, name = os.path.split(path)
  tf.io.gfile.makedirs(directory or ".")
  # Unique, so that two writers (e.g. of a shared cache) do not collide.
  temp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}-{name}")
  try:
    write(temp)
    tf.io.gfile.rename(temp, path, overwrite=True)
  finally:
    if tf.io.gfile.exists(temp):
      tf.io.gfile.remove(temp)


def write_atomically(path: str, data: bytes | str) -> None:
  """Writes `data` to `path` through replace_atomically."""

  def write(temp: str) -> None:
    with tf.io.gfile.GFile(temp, "wb" if isinstance(data, bytes) else "w") as f:
      f.write(data)

  replace_atomically(path, write)


def write_npz(path: str, **arrays: np.ndarray) -> None:
  """Writes arrays as an .npz file through write_atomically."""
  buffer = io.BytesIO()  # np.savez seeks, which GFile cannot in "wb"
  np.savez(buffer, **arrays)
  write_atomically(path, buffer.getvalue())


def write_npy(path: str, array: np.ndarray) -> None:
  """Writes one array as a .npy file through write_atomically."""
  buffer = io.BytesIO()
  np.save(buffer, array)
  write_atomically(path, buffer.getvalue())
