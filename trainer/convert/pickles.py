"""Reads published GAN network pickles safely, with numpy alone.

Three formats, read without torch or TensorFlow 1 and without running
anything from the file:

* StyleGAN2-ADA and StyleGAN3 PyTorch snapshots (`network-snapshot-*.pkl`):
  a dict of G, D, G_ema, augment_pipe and training_set_kwargs. Their networks
  are pickled as `torch_utils.persistence._reconstruct_persistent_obj(meta)`,
  whose meta holds the source of the class's module as text, the class name
  and the object's `__dict__` (`_parameters`, `_buffers`, `_modules`,
  `_init_args`, `_init_kwargs` and plain attributes).
* R3GAN snapshots: the same kind of dict (with optimizer states and
  cur_nimg), whose networks are ordinary classes (`training.networks.*`,
  `R3GAN.Networks.*`, `torch.nn.modules.*`) pickled with their `__dict__`.
* The TensorFlow StyleGAN2 pickles: a tuple (G, D, Gs) of
  `dnnlib.tflib.network.Network`, each with its variables as (name, numpy
  array) pairs, its static kwargs and its sub-networks (components).

Torch's tensors and the `torch.save` archives of their storages are
decoded by trainer/convert/torch_archive.py.

A restricted unpickler allows only the globals these formats need (`ALLOWED`):
tensor and storage rebuilders, numpy's reconstructors, OrderedDict, the
persistence reconstructor and the known network classes, which become inert
stand-ins that record their state. It refuses any other global by name before
anything is called, and keeps the embedded sources as text, never run.
"""

import collections
import dataclasses
import os
import pickle
from typing import Any, BinaryIO, Callable

import numpy as np

from trainer.convert import torch_archive
from trainer.errors import UserError

FORMATS = "StyleGAN2-ADA, StyleGAN3, R3GAN or TensorFlow StyleGAN2"


class BadPickle(UserError):
  """A network pickle that cannot be read: missing, truncated or corrupt."""

  def __init__(self, path: str, reason: str):
    super().__init__(
        f"cannot read network pickle {path}: {reason}; valid is a whole "
        f"network pickle of {FORMATS}")


class RefusedGlobal(UserError):
  """A network pickle that names a global the reader does not allow.

  Attributes:
    module: the global's module, as the file names it.
    name: the global's name in that module.
  """

  def __init__(self, path: str, module: str, name: str):
    self.module, self.name = module, name
    super().__init__(
        f"network pickle {path} names the global {module}.{name}, which is "
        "refused: loading it could run code from the file. Valid are the "
        f"tensor, numpy and network globals of {FORMATS} network pickles "
        "(trainer.convert.pickles.ALLOWED)")


class UnknownPickle(UserError):
  """A network pickle, safely read, of none of the known kinds."""

  def __init__(self, path: str, found: str):
    super().__init__(
        f"network pickle {path} holds {found}, which is none of the known "
        f"kinds; valid: {', '.join(_KINDS)}")


@dataclasses.dataclass
class Module:
  """One network of a pickle, as plain data.

  Attributes:
    kind: how the file stored it: 'persistent' (a class decorated with
      torch_utils.persistence.persistent_class, with its module's source),
      'class' (an ordinary torch module class) or 'tf1' (a dnnlib.tflib
      Network).
    class_name: the class: 'Generator' for a persistent class (the file names
      no module), 'R3GAN.Networks.Generator' for an ordinary one; for 'tf1',
      the build function ('G_main').
    init_args: the constructor's positional arguments (persistent classes).
    init_kwargs: the constructor's keyword arguments (persistent classes), or
      the static kwargs ('tf1'); empty for ordinary classes, which keep none.
    params: parameters and buffers of the whole tree, each a numpy array, by
      torch `state_dict` names ('synthesis.b4.conv1.weight') or, for 'tf1', by
      the variable names, a component's under its key
      ('synthesis/4x4/Conv/weight').
    attributes: the other public attributes (`z_dim`, `training`; 'name' and
      'version' of a TF network), as plain values.
    children: the sub-modules (torch `_modules`) or components ('tf1').
    source: the module source the file embeds (never run), or None.
    buffers: those of `params` that are torch buffers (`w_avg`,
      `noise_const`, resampling filters), not trained parameters; none for
      'tf1'.
  """
  kind: str
  class_name: str
  init_args: tuple[Any, ...]
  init_kwargs: dict[str, Any]
  params: dict[str, np.ndarray]
  attributes: dict[str, Any]
  children: dict[str, "Module"]
  source: str | None = None
  buffers: frozenset[str] = frozenset()


@dataclasses.dataclass
class Pickled:
  """What a network pickle holds.

  Attributes:
    path: the file.
    data: its top-level object as plain Python (dicts, lists, tuples, numpy
      arrays), with each network a `Module`.
    globals: the globals the file names ('module.name'), sorted, including
      those inside its torch storages.
  """
  path: str
  data: Any
  globals: tuple[str, ...]

  @property
  def networks(self) -> dict[str, Module]:
    """The top-level networks by name ('G_ema'; 'Gs' of a TF tuple)."""
    if isinstance(self.data, dict):
      items = self.data.items()
    elif isinstance(self.data, (tuple, list)):
      items = ((item.attributes.get("name", str(index))
                if isinstance(item, Module) else str(index), item)
               for index, item in enumerate(self.data))
    else:
      items = ()
    return {name: item for name, item in items if isinstance(item, Module)}


def read(path: str | os.PathLike) -> Pickled:
  """Reads a network pickle without running anything from it.

  Args:
    path: a StyleGAN2-ADA, StyleGAN3 or R3GAN snapshot, or a TF StyleGAN2
      pickle.

  Returns:
    The file's content, networks as `Module` records.

  Raises:
    RefusedGlobal: the file names a global outside `ALLOWED`.
    BadPickle: the file is missing, truncated or corrupt.
  """
  path = os.fspath(path)
  reader = _Reader(path)
  try:
    with open(path, "rb") as f:
      data = _Plain().convert(reader.load(f))
  except UserError:
    raise
  except OSError as error:
    raise BadPickle(path, error.strerror or str(error)) from error
  except Exception as error:  # pylint: disable=broad-except
    # Whatever a broken file makes the unpickler or the stand-ins raise.
    reason = " ".join(f"{type(error).__name__}: {error}".split())
    raise BadPickle(path, f"it is truncated or corrupt ({reason})") from error
  return Pickled(path, data, tuple(sorted(reader.globals)))


def kind_of(pickled: Pickled) -> str:
  """Which code base wrote the pickle.

  Args:
    pickled: what `read` returned.

  Returns:
    One of 'stylegan2-ada' (StyleGAN2-ADA, or StyleGAN3 with
    --cfg=stylegan2), 'stylegan3-t', 'stylegan3-r', 'r3gan' or
    'stylegan2-tf'.

  Raises:
    UnknownPickle: it is none of them.
  """
  networks = pickled.networks
  for kind, test in _KINDS.items():
    if test(networks):
      return kind
  raise UnknownPickle(pickled.path, _describe(pickled.data))


# The kinds, each a test of the top-level networks; at most one holds.
_KINDS: dict[str, Callable[[dict[str, Module]], bool]] = {}


def _kind(name: str):
  def register(test):
    _KINDS[name] = test
    return test
  return register


def _network(networks: dict[str, Module], name: str, kind: str
             ) -> Module | None:
  network = networks.get(name)
  return network if network is not None and network.kind == kind else None


def _stylegan(networks: dict[str, Module]) -> Module | None:
  """G_ema if it is a persistent StyleGAN generator (mapping + synthesis)."""
  g = _network(networks, "G_ema", "persistent")
  return g if g and {"mapping", "synthesis"} <= g.children.keys() else None


def _stylegan3(networks: dict[str, Module]) -> Module | None:
  # StyleGAN3's synthesis network starts from Fourier features, the layer
  # SynthesisInput (`synthesis.input`), which StyleGAN2's does not have.
  g = _stylegan(networks)
  return g if g and "input" in g.children["synthesis"].children else None


@_kind("stylegan2-ada")
def _is_stylegan2_ada(networks: dict[str, Module]) -> bool:
  return bool(_stylegan(networks)) and not _stylegan3(networks)


@_kind("stylegan3-t")
def _is_stylegan3_t(networks: dict[str, Module]) -> bool:
  g = _stylegan3(networks)
  return bool(g) and not g.init_kwargs.get("use_radial_filters")


@_kind("stylegan3-r")
def _is_stylegan3_r(networks: dict[str, Module]) -> bool:
  # train.py --cfg=stylegan3-r sets G_kwargs.use_radial_filters=True.
  g = _stylegan3(networks)
  return bool(g) and bool(g.init_kwargs.get("use_radial_filters"))


@_kind("r3gan")
def _is_r3gan(networks: dict[str, Module]) -> bool:
  g = _network(networks, "G_ema", "class")
  model = g.children.get("Model") if g else None
  return (g is not None and g.class_name == "training.networks.Generator"
          and model is not None
          and model.class_name == "R3GAN.Networks.Generator")


@_kind("stylegan2-tf")
def _is_stylegan2_tf(networks: dict[str, Module]) -> bool:
  g = _network(networks, "Gs", "tf1")
  return (g is not None and g.class_name == "G_main"
          and {"mapping", "synthesis"} <= g.children.keys())


def _describe(data: Any) -> str:
  if isinstance(data, dict):
    return f"a dict of {', '.join(map(str, data)) or 'nothing'}"
  if isinstance(data, (tuple, list)):
    return f"a {type(data).__name__} of {len(data)}"
  return f"a {type(data).__name__}"


# --- numpy -------------------------------------------------------------------


def _numpy_reconstruct(cls, shape, dtype) -> np.ndarray:
  """numpy's multiarray._reconstruct: an empty array that BUILD fills."""
  if cls is not np.ndarray:
    raise ValueError(f"a numpy array of class {cls!r}")
  return np.ndarray(shape, dtype)


def _numpy_scalar(dtype: np.dtype, data: Any = None) -> Any:
  """numpy's multiarray.scalar: a scalar from its bytes."""
  if not isinstance(dtype, np.dtype):
    raise ValueError(f"a numpy scalar of dtype {dtype!r}")
  if dtype.hasobject:
    return data
  if not isinstance(data, bytes) or len(data) != dtype.itemsize:
    raise ValueError(f"a numpy {dtype} scalar of {data!r}")
  return np.frombuffer(data, dtype)[0]


def _numpy_frombuffer(buffer, dtype, shape, order) -> np.ndarray:
  """numpy's numeric._frombuffer (pickle protocol 5): an array's bytes."""
  return np.frombuffer(buffer, dtype).reshape(shape, order=order).copy()


# --- stand-ins for the objects of the known classes --------------------------


class _EasyDict(dict):
  """dnnlib.util.EasyDict: a dict (its attribute access is not needed)."""


class _Instance:
  """An object of an allowed class: inert, it records the state it is given.

  The pickle makes it with NEWOBJ (no arguments) and BUILD (its `__dict__`).
  """
  class_name = ""

  def __new__(cls, *args):
    if args:
      raise ValueError(f"{cls.class_name} made with arguments")
    instance = super().__new__(cls)
    instance.state = {}
    return instance

  def __setstate__(self, state: Any) -> None:
    self.state = state

  def to_module(self, plain: "_Plain") -> Module:
    raise NotImplementedError


class _TorchObject(_Instance):
  """An ordinary torch.nn.Module subclass (R3GAN's and torch's own)."""

  def to_module(self, plain: "_Plain") -> Module:
    return _torch_module(plain, "class", self.class_name, self.state)


class _TFNetwork(_Instance):
  """dnnlib.tflib.network.Network; its state as `__getstate__` makes it."""

  def to_module(self, plain: "_Plain") -> Module:
    state = self.state
    if not isinstance(state, dict) or not {
        "name", "build_func_name", "variables"} <= state.keys():
      raise ValueError("a TF network without name, build function or "
                       "variables")
    children = _modules(plain, state.get("components") or {})
    params = {name: _array(name, value) for name, value in state["variables"]}
    # Named by the component's key ('mapping/Dense0/weight'), as
    # stylegan2-ada-pytorch's legacy.py collects them.
    for key, child in children.items():
      params.update((f"{key}/{name}", value)
                    for name, value in child.params.items())
    return Module(
        kind="tf1", class_name=state["build_func_name"], init_args=(),
        init_kwargs=plain.convert(state.get("static_kwargs") or {}),
        params=params,
        attributes={key: state.get(key) for key in ("name", "version")},
        children=children, source=state.get("build_module_src"))


class _Persistent:
  """What torch_utils.persistence._reconstruct_persistent_obj(meta) makes.

  meta holds type ('class'), version, module_src, class_name and state.
  """

  def __init__(self, meta: Any):
    if not (isinstance(meta, dict) and meta.get("type") == "class"
            and isinstance(meta.get("class_name"), str)):
      raise ValueError("a persistent object without its class")
    self.meta = meta

  def to_module(self, plain: "_Plain") -> Module:
    return _torch_module(plain, "persistent", self.meta["class_name"],
                         self.meta.get("state"),
                         source=self.meta.get("module_src"))


def _torch_module(plain: "_Plain", kind: str, class_name: str, state: Any,
                  source: str | None = None) -> Module:
  """The record of a torch module from its `__dict__`."""
  if not isinstance(state, dict):
    raise ValueError(f"a {class_name} without its state")
  children = _modules(plain, state.get("_modules") or {})
  own_buffers = state.get("_buffers") or {}
  own = [*(state.get("_parameters") or {}).items(), *own_buffers.items()]
  params = {name: _array(f"{class_name}.{name}", value)
            for name, value in own if value is not None}
  buffers = {name for name in own_buffers if name in params}
  for child_name, child in children.items():
    params.update((f"{child_name}.{name}", value)
                  for name, value in child.params.items())
    buffers.update(f"{child_name}.{name}" for name in child.buffers)
  return Module(
      kind=kind, class_name=class_name,
      init_args=tuple(plain.convert(state.get("_init_args") or ())),
      init_kwargs=dict(plain.convert(state.get("_init_kwargs") or {})),
      params=params,
      attributes={key: plain.convert(value) for key, value in state.items()
                  if not key.startswith("_")},
      children=children, source=source, buffers=frozenset(buffers))


def _modules(plain: "_Plain", modules: dict) -> dict[str, Module]:
  children = {name: plain.convert(module) for name, module in modules.items()
              if module is not None}
  for name, child in children.items():
    if not isinstance(child, Module):
      raise ValueError(f"a sub-module {name!r} that is no network")
  return children


def _array(name: str, value: Any) -> np.ndarray:
  # A TensorFlow session returns a 0-d variable's value as a numpy scalar,
  # which is how the TF pickles hold noise strengths.
  if isinstance(value, np.generic) and not value.dtype.hasobject:
    return np.asarray(value)
  if not isinstance(value, np.ndarray):
    raise ValueError(f"{name} is no tensor")
  return value


class _Plain:
  """Turns the unpickled objects into plain Python and `Module` records.

  Shared objects are converted once (and stay shared).
  """

  def __init__(self):
    # id -> (object, its conversion); holding the object keeps its id unique.
    self._done: dict[int, tuple[Any, Any]] = {}

  def convert(self, value: Any) -> Any:
    key = id(value)
    if key not in self._done:
      self._done[key] = (value, self._convert(value))
    return self._done[key][1]

  def _convert(self, value: Any) -> Any:
    if isinstance(value, (_Instance, _Persistent)):
      return value.to_module(self)
    if isinstance(value, dict):
      return {key: self.convert(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
      return type(value)(self.convert(item) for item in value)
    if isinstance(value, np.generic):
      return value.item()
    return value


# --- the restricted unpickler ------------------------------------------------

# R3GAN's network classes and the torch modules they hold, pickled as
# ordinary classes.
_TORCH_CLASSES = (
    "torch.nn.modules.container.ModuleList", "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.linear.Linear",
    "training.networks.Generator", "training.networks.Discriminator",
    *(f"R3GAN.Networks.{name}" for name in (
        "Convolution", "ResidualBlock", "UpsampleLayer", "DownsampleLayer",
        "GenerativeBasis", "DiscriminativeBasis", "GeneratorStage",
        "DiscriminatorStage", "Generator", "Discriminator")),
    *(f"R3GAN.Resamplers.{kind}{direction}sampler{impl}"
      for kind in ("Interpolative", "Inplace") for direction in ("Up", "Down")
      for impl in ("Reference", "CUDA")),
    *(f"R3GAN.FusedOperators.BiasedActivation{impl}"
      for impl in ("Reference", "CUDA")),
)


def _stand_in(base: type, class_name: str) -> type:
  return type(class_name.rsplit(".", 1)[1], (base,),
              {"class_name": class_name})


# The storage rebuilder needs the reader (for nested unpickling): see _Reader.
_LOAD_FROM_BYTES = "torch.storage._load_from_bytes"

_GLOBALS: dict[str, Any] = {
    "collections.OrderedDict": collections.OrderedDict,
    "dnnlib.util.EasyDict": _EasyDict,
    "torch._utils._rebuild_tensor": torch_archive.rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": torch_archive.rebuild_tensor,
    "torch._utils._rebuild_tensor_v3": torch_archive.rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": torch_archive.rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": (
        torch_archive.rebuild_parameter),
    "torch_utils.persistence._reconstruct_persistent_obj": _Persistent,
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": np.dtype,
    # numpy 1.x writes numpy.core, numpy 2.x numpy._core.
    **{f"{core}.{name}": function for core in ("numpy.core", "numpy._core")
       for name, function in (("multiarray._reconstruct", _numpy_reconstruct),
                              ("multiarray.scalar", _numpy_scalar),
                              ("numeric._frombuffer", _numpy_frombuffer))},
    "dnnlib.tflib.network.Network": _stand_in(
        _TFNetwork, "dnnlib.tflib.network.Network"),
    # Storage classes and dtypes (torch.float32) stand for their dtype's name.
    **{f"torch.{name}": dtype
       for name, dtype in torch_archive.STORAGE_TYPES.items()},
    # The bytes of a tensor of a newer dtype (torch.uint16), for v3.
    "torch.storage.UntypedStorage": "torch.uint8",
    **{dtype: dtype for dtype in torch_archive.DTYPES},
    **{name: _stand_in(_TorchObject, name) for name in _TORCH_CLASSES},
}

# Every global a network pickle may name; any other is refused.
ALLOWED = frozenset([*_GLOBALS, _LOAD_FROM_BYTES])


class _Unpickler(pickle.Unpickler):
  """An unpickler whose globals come from the reader, and only from it."""

  def __init__(self, file: BinaryIO, reader: "_Reader",
               persistent_load: Callable[[Any], Any] | None):
    # latin1: how dnnlib reads the TF pickles (Python 2 strings as text).
    super().__init__(file, encoding="latin1")
    self._reader = reader
    self._load_persistent = persistent_load

  def find_class(self, module: str, name: str) -> Any:
    return self._reader.find(module, name)

  def persistent_load(self, pid: Any) -> Any:
    if self._load_persistent is None:
      raise pickle.UnpicklingError("a persistent id outside torch.save")
    return self._load_persistent(pid)


class _Reader:
  """One read of one file: unpicklers for it and the globals they met."""

  def __init__(self, path: str):
    self.path = path
    self.globals: set[str] = set()

  def load(self, file: BinaryIO,
           persistent_load: Callable[[Any], Any] | None = None) -> Any:
    """The next pickle of `file`, through the restricted unpickler."""
    return _Unpickler(file, self, persistent_load).load()

  def find(self, module: str, name: str) -> Any:
    """The stand-in for an allowed global; raises RefusedGlobal otherwise."""
    qualified = f"{module}.{name}"
    if qualified not in ALLOWED:
      raise RefusedGlobal(self.path, module, name)
    self.globals.add(qualified)
    if qualified == _LOAD_FROM_BYTES:
      return self.load_storage
    return _GLOBALS[qualified]

  def load_storage(self, data: bytes) -> torch_archive.Storage:
    """torch.storage._load_from_bytes, its pickles read by this reader."""
    return torch_archive.load_storage(data, self.load)
