"""The one exception type for bad input that a user can fix."""


class UserError(ValueError):
  """Bad input: the message says what was wrong and what is valid.

  Entry points print the message alone (no traceback) and exit non-zero.
  """
