"""Small name -> object registries, so that choices are made by name."""

from typing import Callable, Generic, Iterator, TypeVar

from trainer.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
  """Maps names to objects; an unknown name raises a UserError listing all.

  Args:
    kind: what the registry holds, used in error messages ("loss").
    setting: the config field or flag that names an entry ("model.loss").
  """

  def __init__(self, kind: str, setting: str):
    self.kind = kind
    self.setting = setting
    self._entries: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    """Decorator that registers its argument under `name`."""

    def add(obj: T) -> T:
      if name in self._entries:
        raise KeyError(f"{self.kind} {name!r} is registered twice")
      self._entries[name] = obj
      return obj

    return add

  def get(self, name: str) -> T:
    if name not in self._entries:
      raise UserError(
          f"unknown {self.kind} {name!r} in {self.setting}; valid: "
          f"{', '.join(self.names())}")
    return self._entries[name]

  def names(self) -> list[str]:
    return sorted(self._entries)

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())
