"""Network pickles as their writers write them, without torch: for tests.

Stand-in classes pickle as the real globals (`torch._utils.
_rebuild_tensor_v2`, `R3GAN.Networks.Generator`, ...) through modules that
stand in for the writers' (in sys.modules while a pickle is written), and
the storages inside are torch.save archives (legacy or zip) built here.
`stylegan2_ada_snapshot` and `r3gan_snapshot` write whole snapshots of
networks given as state_dicts, in the layouts of StyleGAN2-ADA's and R3GAN's
training loops.
"""

import collections
import contextlib
import io
import os
import pickle
import re
import struct
import sys
import types
import zipfile

import numpy as np

# --- stand-ins that pickle as the writers' globals ---------------------------

FAKE_MODULES: dict[str, types.ModuleType] = {}


def stand_in(qualified: str, base: type = object, **namespace) -> type:
  """A class that pickles as the global `qualified` (see _real_names)."""
  module_name, name = qualified.rsplit(".", 1)
  parts = module_name.split(".")
  for depth in range(1, len(parts) + 1):
    prefix = ".".join(parts[:depth])
    if prefix != "numpy":  # the real one, which numpy's own pickles need
      FAKE_MODULES.setdefault(prefix, types.ModuleType(prefix))
  stand_in = type(name, (base,), {
      "__module__": module_name, "__qualname__": name, **namespace})
  setattr(FAKE_MODULES[module_name], name, stand_in)
  return stand_in


@contextlib.contextmanager
def _real_names():
  """Lets pickle find the stand-ins by their real names, within it."""
  saved = {name: sys.modules.get(name) for name in FAKE_MODULES}
  sys.modules.update(FAKE_MODULES)
  try:
    yield
  finally:
    for name, module in saved.items():
      if module is None:
        del sys.modules[name]
      else:
        sys.modules[name] = module


REBUILD_TENSOR_V2 = stand_in("torch._utils._rebuild_tensor_v2")
REBUILD_TENSOR_V3 = stand_in("torch._utils._rebuild_tensor_v3")
REBUILD_PARAMETER = stand_in("torch._utils._rebuild_parameter")
LOAD_FROM_BYTES = stand_in("torch.storage._load_from_bytes")
RECONSTRUCT = stand_in("torch_utils.persistence._reconstruct_persistent_obj")
EASY_DICT = stand_in("dnnlib.util.EasyDict", dict)
NETWORK = stand_in("dnnlib.tflib.network.Network",
                  __getstate__=lambda self: self.state)
NUMPY1_RECONSTRUCT = stand_in("numpy.core.multiarray._reconstruct")
STORAGE_TYPES = {name: stand_in(f"torch.{name}") for name in (
    "FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage",
    "BoolStorage")}
UNTYPED_STORAGE = stand_in("torch.storage.UntypedStorage")
DTYPES = {name: stand_in(f"torch.{name}")
          for name in ("uint16", "bfloat16", "float32")}
# R3GAN's networks: ordinary classes of its code and of torch.nn.
R3GAN_CLASSES = {name: stand_in(name) for name in (
    "training.networks.Generator", "training.networks.Discriminator",
    *(f"R3GAN.Networks.{name}" for name in (
        "Generator", "Discriminator", "GeneratorStage", "DiscriminatorStage",
        "GenerativeBasis", "DiscriminativeBasis", "UpsampleLayer",
        "DownsampleLayer", "ResidualBlock", "Convolution")),
    "R3GAN.FusedOperators.BiasedActivationCUDA",
    "R3GAN.Resamplers.InterpolativeUpsamplerCUDA",
    "R3GAN.Resamplers.InterpolativeDownsamplerCUDA",
    "torch.nn.modules.container.ModuleList", "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.linear.Linear")}

# --- torch storages and tensors, as torch pickles them -----------------------


def _pickle_storage(out: io.BytesIO, pid: tuple, payload: object = None
                    ) -> None:
  """Pickles a storage as torch.save does: protocol 2, the persistent id
  `pid` in its place. A test's `payload` is pickled instead, if given."""
  storage = object()
  pickler = pickle.Pickler(out, protocol=2)
  pickler.persistent_id = lambda obj: pid if obj is storage else None
  with _real_names():
    pickler.dump(storage if payload is None else payload)


def legacy_archive(storage_type: type, values: np.ndarray,
                   payload: object = None) -> bytes:
  """torch.save(storage, _use_new_zipfile_serialization=False)'s bytes."""
  out = io.BytesIO()
  sys_info = {"protocol_version": 1001, "little_endian": True,
              "type_sizes": {"short": 2, "int": 4, "long": 4}}
  for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
    pickle.dump(header, out, protocol=2)
  key = "94175802919408"
  _pickle_storage(out, ("storage", storage_type, key, "cpu", values.size, None),
                  payload)
  pickle.dump([key], out, protocol=2)
  out.write(struct.pack("<q", values.size) + values.tobytes())
  return out.getvalue()


def zip_archive(storage_type: type, values: np.ndarray) -> bytes:
  """torch.save(storage)'s bytes: a zip of data.pkl and data/<key>."""
  data = io.BytesIO()
  _pickle_storage(data, ("storage", storage_type, "0", "cpu", values.size))
  out = io.BytesIO()
  with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
    archive.writestr("archive/data.pkl", data.getvalue())
    archive.writestr("archive/byteorder", "little")
    archive.writestr("archive/data/0", values.tobytes())
    archive.writestr("archive/version", "3\n")
  return out.getvalue()


ARCHIVES = {"legacy": legacy_archive, "zip": zip_archive}


class Storage:
  """A typed storage: `_load_from_bytes(torch.save archive of it)`."""

  def __init__(self, storage_type: type, values: np.ndarray,
               archive: str = "legacy"):
    self.storage_type, self.values, self.archive = (
        storage_type, values, archive)

  def __reduce__(self):
    return (LOAD_FROM_BYTES,
            (ARCHIVES[self.archive](self.storage_type, self.values),))


class Tensor:
  """A tensor: `_rebuild_tensor_v2(storage, offset, size, stride, ...)`, or
  v3 (a byte storage and the dtype) for dtypes such as uint16."""

  def __init__(self, storage: Storage, offset: int, size: tuple,
               stride: tuple, dtype: type | None = None):
    self.storage, self.offset, self.size, self.stride, self.dtype = (
        storage, offset, size, stride, dtype)

  def __reduce__(self):
    args = (self.storage, self.offset, self.size, self.stride, False,
            collections.OrderedDict())
    if self.dtype is None:
      return (REBUILD_TENSOR_V2, args)
    return (REBUILD_TENSOR_V3, args + (self.dtype,))

  def expected(self, values: np.ndarray | None = None) -> np.ndarray:
    """Element [i, j, ...] is values[offset + i * stride[0] + ...]."""
    values = self.storage.values if values is None else values
    index = self.offset + sum(
        (axis * step for axis, step in zip(np.indices(self.size), self.stride)),
        np.zeros(self.size, int))
    return values[index]


class Parameter:
  """torch.nn.Parameter: `_rebuild_parameter(tensor, requires_grad, hooks)`."""

  def __init__(self, tensor: Tensor):
    self.tensor = tensor

  def __reduce__(self):
    return (REBUILD_PARAMETER, (self.tensor, False, collections.OrderedDict()))


def contiguous(storage: Storage, offset: int = 0, size: tuple | None = None
               ) -> Tensor:
  """A row-major tensor of `size` (default: the rest of the storage)."""
  size = (storage.values.size - offset,) if size is None else size
  stride = tuple(int(np.prod(size[i + 1:])) for i in range(len(size)))
  return Tensor(storage, offset, size, stride)


# --- networks, as the three code bases pickle them ---------------------------

_HOOKS = ("_backward_pre_hooks", "_backward_hooks", "_forward_hooks",
          "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
          "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs",
          "_state_dict_hooks", "_state_dict_pre_hooks",
          "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")


def module_state(params=(), buffers=(), modules=(), **attributes) -> dict:
  """A torch.nn.Module's __dict__, as torch 2 pickles it."""
  return {"training": False,
          "_parameters": collections.OrderedDict(params),
          "_buffers": collections.OrderedDict(buffers),
          "_non_persistent_buffers_set": set(),
          **{hook: collections.OrderedDict() for hook in _HOOKS},
          "_is_full_backward_hook": None,
          "_modules": collections.OrderedDict(modules), **attributes}


SOURCE = '"""training/networks.py, as text."""\nimport torch\n'


class Persistent:
  """A persistent_class object: `_reconstruct_persistent_obj(meta)`."""

  def __init__(self, class_name: str, state: dict, init_kwargs: dict,
               source: str = SOURCE):
    self.meta = dict(type="class", version=6, module_src=source,
                     class_name=class_name,
                     state=dict(state, _init_args=(),
                                _init_kwargs=EASY_DICT(init_kwargs)))

  def __reduce__(self):
    return (RECONSTRUCT, (self.meta,), None)


TF_SOURCE = '"""training/networks_stylegan2.py, as text."""\n'


def tf_network(name: str, build_func_name: str, variables: dict,
               components: dict | None = None, **static_kwargs):
  """A dnnlib.tflib Network with the state its __getstate__ returns."""
  network = NETWORK.__new__(NETWORK)
  network.state = dict(
      version=4, name=name, static_kwargs=static_kwargs,
      components=components or {}, build_module_src=TF_SOURCE,
      build_func_name=build_func_name, variables=list(variables.items()))
  return network


def stylegan2_tf1_snapshot(g: dict, d: dict, g_static: dict, d_static: dict,
                           gs: dict | None = None) -> tuple:
  """(G, D, Gs) as NVlabs/stylegan2 pickles them: G and Gs each a G_main
  with its own variables (dlatent_avg, lod) and the components mapping
  and synthesis; `g`, `gs` and `d` by the names legacy.py collects
  ('mapping/Dense0/weight', 'synthesis/noise0', '4x4/Conv/bias'). A 0-d
  variable is a numpy scalar, as a TensorFlow session returns it."""
  num_ws = 2 * (g_static["resolution"].bit_length() - 1) - 2

  def values(variables: dict) -> dict:
    return {key: np.asarray(value)[()] if np.ndim(value) == 0 else value
            for key, value in variables.items()}

  def generator(name: str, variables: dict):
    parts = {"": {}, "mapping": {}, "synthesis": {}}
    for key, value in values(variables).items():
      scope, _, rest = key.partition("/")
      if scope in ("mapping", "synthesis"):
        parts[scope][rest] = value
      else:
        parts[""][key] = value
    components = {
        "mapping": tf_network("G_mapping", "G_mapping", parts["mapping"],
                              dlatent_broadcast=num_ws, **g_static),
        "synthesis": tf_network("G_synthesis", "G_synthesis_stylegan2",
                                parts["synthesis"], **g_static)}
    return tf_network(name, "G_main", parts[""], components, **g_static)

  return (generator("G", g),
          tf_network("D", "D_stylegan2", values(d), **d_static),
          generator("Gs", g if gs is None else gs))


class OldNumpyArray:
  """An array as numpy 1.x pickles it (numpy.core, not numpy._core)."""

  def __init__(self, array: np.ndarray):
    self.array = array

  def __reduce__(self):
    _, args, state = self.array.__reduce__()
    return (NUMPY1_RECONSTRUCT, args, state)


def write(directory, obj, name="network.pkl", protocol=4) -> str:
  """Pickles `obj` as <directory>/<name>; returns the path."""
  path = os.path.join(directory, name)
  with open(path, "wb") as f, _real_names():
    pickle.dump(obj, f, protocol=protocol)
  return path


class Run:
  """An object whose unpickling would call `function(*args)`."""

  def __init__(self, function, *args):
    self.function, self.args = function, args

  def __reduce__(self):
    return (self.function, self.args)


# --- whole snapshots of networks given as state_dicts ------------------------

# The buffers of the networks written here, by the last part of their names
# (the arrays of a module's own that are not parameters).
_BUFFERS = ("resample_filter", "w_avg", "noise_const", "Kernel", "p")


def tensor(values: np.ndarray, archive: str = "legacy") -> Tensor:
  """`values` as a float32 tensor of a storage of its own, as torch pickles
  a module's parameters and buffers."""
  values = np.array(values, "<f4")  # (ascontiguousarray makes 0-d 1-d)
  storage = Storage(STORAGE_TYPES["FloatStorage"], values.reshape(-1),
                    archive)
  return contiguous(storage, 0, values.shape)


def _tree(state_dict: dict[str, np.ndarray]) -> dict:
  """'a.b.c' -> array as {'a': {'b': {'c': array}}}, in the dict's order."""
  tree: dict = {}
  for name, value in state_dict.items():
    *path, leaf = name.split(".")
    node = tree
    for part in path:
      node = node.setdefault(part, {})
    node[leaf] = value
  return tree


def _build(tree: dict, make, path: str = ""):
  """The module at `path`: make(path, its own arrays, its built children)."""
  own = {k: v for k, v in tree.items() if not isinstance(v, dict)}
  children = {k: _build(v, make, f"{path}.{k}" if path else k)
              for k, v in tree.items() if isinstance(v, dict)}
  return make(path, own, children)


def _state(own: dict, children: dict, archive: str, **attributes) -> dict:
  """A module's __dict__ with its own arrays (parameters as Parameters,
  buffers as tensors) and its children."""
  params = [(name, None if value is None else Parameter(tensor(value,
                                                                archive)))
            for name, value in own.items() if name not in _BUFFERS]
  buffers = [(name, tensor(value, archive)) for name, value in own.items()
             if name in _BUFFERS]
  return module_state(params, buffers, children.items(), **attributes)


def _easy(value):
  """Nested dicts as dnnlib.EasyDict, as StyleGAN2-ADA's train.py makes
  the networks' arguments."""
  if isinstance(value, dict):
    return EASY_DICT({key: _easy(item) for key, item in value.items()})
  return value


# (network, a module's path, its persistent class), the first match wins.
_STYLEGAN2_CLASSES = (
    ("G", r"", "Generator"), ("G", r"mapping", "MappingNetwork"),
    ("G", r"synthesis", "SynthesisNetwork"),
    ("G", r"synthesis\.b\d+", "SynthesisBlock"),
    ("G", r"synthesis\.b\d+\.conv[01]", "SynthesisLayer"),
    ("G", r"synthesis\.b\d+\.torgb", "ToRGBLayer"),
    ("G", r"synthesis\.b\d+\.skip", "Conv2dLayer"),
    ("G", r"synthesis\.input", "SynthesisInput"),  # StyleGAN3's
    ("D", r"", "Discriminator"), ("D", r"b4", "DiscriminatorEpilogue"),
    ("D", r"b\d+", "DiscriminatorBlock"), ("D", r"mapping", "MappingNetwork"),
    ("D", r"b\d+\.(fromrgb|conv0|conv1|skip|conv)", "Conv2dLayer"),
    ("D", r"b4\.mbstd", "MinibatchStdLayer"),
    (None, r".*\b(fc\d*|embed|affine|out)", "FullyConnectedLayer"),
)


def _stylegan2_network(network: str, state_dict: dict, init_kwargs: dict,
                       archive: str) -> Persistent:
  """StyleGAN2-ADA's G or D: persistent classes all the way down. The
  network records its constructor's arguments; its modules here none (the
  converter reads the network's own)."""
  def make(path, own, children):
    if network == "D" and path == "b4":
      children = {"mbstd": make("b4.mbstd", {}, {}), **children}
    class_name = next(name for owner, pattern, name in _STYLEGAN2_CLASSES
                      if owner in (network, None)
                      and re.fullmatch(pattern, path))
    return Persistent(class_name, _state(own, children, archive),
                      _easy(init_kwargs) if not path else {})
  return _build(_tree(state_dict), make)


def stylegan2_ada_snapshot(g: dict, d: dict, g_kwargs: dict, d_kwargs: dict,
                           g_ema: dict | None = None,
                           archive: str = "legacy") -> dict:
  """What StyleGAN2-ADA's training loop pickles (network-snapshot-*.pkl).

  Args:
    g, d: the state_dicts of G and D; g_ema G_ema's (default g's).
    g_kwargs, d_kwargs: their constructors' keyword arguments (without
      class_name), as train.py passes them.
    archive: how the storages are saved, legacy (torch's pickle of a
      storage) or zip.
  """
  pipe = Persistent("AugmentPipe", _state({"p": np.zeros(())}, {}, archive),
                    _easy(dict(xflip=1, rotate90=1, xint=1, scale=1)))
  return dict(
      training_set_kwargs=dict(
          class_name="training.dataset.ImageFolderDataset", path="data.zip",
          use_labels=g_kwargs["c_dim"] > 0, max_size=None, xflip=False,
          resolution=g_kwargs["img_resolution"]),
      G=_stylegan2_network("G", g, g_kwargs, archive),
      D=_stylegan2_network("D", d, d_kwargs, archive),
      G_ema=_stylegan2_network("G", g if g_ema is None else g_ema, g_kwargs,
                               archive),
      augment_pipe=pipe)


def _r3gan_class(network: str, path: str, own: dict, children: dict) -> str:
  """R3GAN's class of a module, from where it is and what it holds."""
  kind = "Generator" if network == "G" else "Discriminator"
  if not path:
    return f"training.networks.{kind}"
  if path == "Model":
    return f"R3GAN.Networks.{kind}"
  if path.endswith(("MainLayers", "Layers")):
    return "torch.nn.modules.container.ModuleList"
  if re.fullmatch(r"Model\.MainLayers\.\d+", path):
    return f"R3GAN.Networks.{kind}Stage"
  direction = "Up" if network == "G" else "Down"
  for holds, name in (("LinearLayer1", "R3GAN.Networks.ResidualBlock"),
                      ("Resampler", f"R3GAN.Networks.{direction}sampleLayer"),
                      ("Basis", "R3GAN.Networks.GenerativeBasis"
                       if network == "G" else
                       "R3GAN.Networks.DiscriminativeBasis"),
                      ("Layer", "R3GAN.Networks.Convolution"),
                      ("Bias", "R3GAN.FusedOperators.BiasedActivationCUDA"),
                      ("Kernel", "R3GAN.Resamplers.Interpolative"
                       f"{direction}samplerCUDA")):
    if holds in own or holds in children:
      return name
  return ("torch.nn.modules.conv.Conv2d" if own["weight"].ndim == 4
          else "torch.nn.modules.linear.Linear")


def _r3gan_network(network: str, state_dict: dict, reduced: set[int],
                   **attributes):
  """R3GAN's G or D: ordinary classes, pickled with their __dict__; the
  stages in `reduced` compute in bfloat16 (FP16Stages)."""
  def make(path, own, children):
    class_name = _r3gan_class(network, path, own, children)
    extra = dict(attributes) if not path else {}
    if class_name.endswith("Stage"):
      stage = int(path.rsplit(".", 1)[1])
      extra["DataType"] = DTYPES["bfloat16" if stage in reduced
                                 else "float32"]
    if class_name.startswith("torch.nn.modules.") and "weight" in own:
      own = {**own, "bias": None}  # bias=False: torch keeps a None
    module = R3GAN_CLASSES[class_name].__new__(R3GAN_CLASSES[class_name])
    module.__dict__.update(_state(own, children, "legacy", **extra))
    return module
  return _build(_tree(state_dict), make)


def r3gan_snapshot(g: dict, d: dict, *, z_dim: int, c_dim: int,
                   img_resolution: int, g_ema: dict | None = None,
                   fp16_stages: int = 0) -> dict:
  """What R3GAN's training loop pickles: G, D, G_ema (ordinary classes),
  the data's settings, the images seen and both optimizers' states.

  Args:
    g, d: the state_dicts of G and D; g_ema G_ema's (default g's).
    z_dim, c_dim, img_resolution: what training.networks.Generator keeps.
    fp16_stages: the top resolutions that compute in bfloat16.
  """
  stages = len({name.split(".")[2] for name in g
                if name.startswith("Model.MainLayers.")})
  g_reduced = set(range(stages - fp16_stages, stages))
  d_reduced = set(range(fp16_stages))
  attributes = dict(z_dim=z_dim, c_dim=c_dim, img_resolution=img_resolution)
  step = tensor(np.array(1000.0))
  optimizer = dict(state={0: dict(step=step, exp_avg=tensor(np.zeros(3)))},
                   param_groups=[dict(lr=2e-4, betas=(0.0, 0.99), params=[0])])
  return dict(
      G=_r3gan_network("G", g, g_reduced, **attributes),
      D=_r3gan_network("D", d, d_reduced),
      G_ema=_r3gan_network("G", g if g_ema is None else g_ema, g_reduced,
                           **attributes),
      training_set_kwargs=dict(
          class_name="training.dataset.ImageFolderDataset", path="data.zip",
          use_labels=c_dim > 0),
      cur_nimg=1_000_000, G_opt_state=optimizer, D_opt_state=optimizer)
