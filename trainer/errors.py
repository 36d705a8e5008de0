"""The exception types for bad input that a user can fix."""

import re


class UserError(ValueError):
  """Bad input: the message says what was wrong and what is valid.

  Entry points print the message alone (no traceback) and exit non-zero.
  """


# BadImage's message as the reader raises it, which an OpError keeps.
_BAD_IMAGE = re.compile(
    r"bad image <(?P<path>.+?)> \[(?P<index>-?\d+)\]: (?P<reason>[^\n]*)")


class BadImage(UserError):
  """An image file of the data that cannot be decoded.

  The folder source raises it where it decodes the file, naming the source
  index it was reading. Inside tf.data it reaches the caller as an OpError
  that keeps its message only, from which `found_in` makes it again. The
  caller that stops on it (training, with data.on_bad_image=stop) raises it
  with `met`: where the image was met and what stopped, for the user.

  Attributes:
    path: the image file.
    reason: why it cannot be decoded.
    index: the source index whose read met it.
  """

  def __init__(self, path: str, reason: str, index: int, *, met: str = ""):
    self.path, self.reason, self.index = path, reason, index
    super().__init__(
        f"cannot read image {path} ({reason}), met {met}. Replace or remove "
        "the file, or set data.on_bad_image=skip" if met
        else f"bad image <{path}> [{index}]: {reason}")

  @classmethod
  def found_in(cls, error: Exception) -> "BadImage | None":
    """The BadImage that `error` (an OpError, say) reports, or None.

    TensorFlow turns an exception raised in a tf.numpy_function into an
    OpError that keeps its message only.
    """
    match = _BAD_IMAGE.search(str(error))
    return (cls(match["path"], match["reason"], int(match["index"]))
            if match else None)
