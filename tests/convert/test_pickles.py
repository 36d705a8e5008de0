"""Tests of trainer.convert.pickles on pickles written here, without torch.

Each pickle is written in its format's layout by tests/convert/writers.py's
stand-ins, which pickle as the real globals.
"""

import os
import subprocess

import numpy as np
import pytest

from tests.convert import writers
from trainer.convert import pickles


_FLOAT = writers.STORAGE_TYPES["FloatStorage"]


def _float32(n: int, offset: float = 0.0) -> np.ndarray:
  return (np.arange(n, dtype=np.float32) * 0.25 - offset).astype("<f4")


# --- networks, as the three code bases pickle them ---------------------------


def _stylegan2_ada(archive: str = "legacy", source: str = writers.SOURCE,
                   synthesis_children=(), **init_kwargs
                   ) -> tuple[dict, dict[str, writers.Tensor]]:
  """A StyleGAN2-ADA snapshot and G_ema's tensors by state_dict name.

  Two tensors view one float32 storage: one with a storage offset and
  non-writers.contiguous strides. A buffer is float16.
  """
  weights = writers.Storage(_FLOAT, _float32(40, 3.0), archive)
  half = writers.Storage(writers.STORAGE_TYPES["HalfStorage"],
                         (np.arange(16) / 8).astype("<f2"), archive)
  mapping_fc = writers.Storage(_FLOAT, _float32(12), archive)
  tensors = {
      "synthesis.b4.const": writers.contiguous(weights, 20, (4,)),
      "synthesis.b4.resample_filter": writers.contiguous(half, 0, (4, 4)),
      "synthesis.b4.conv1.weight": writers.Tensor(weights, 5, (2, 3), (1, 4)),
      "mapping.w_avg": writers.contiguous(mapping_fc, 8, (4,)),
      "mapping.fc0.weight": writers.contiguous(mapping_fc, 0, (2, 4)),
  }

  def persistent(class_name, params=(), buffers=(), modules=(), **kwargs):
    return writers.Persistent(class_name, writers.module_state(
        [(name, writers.Parameter(tensor)) for name, tensor in params],
        buffers, modules, weight_gain=np.float64(0.5)), kwargs, source)

  conv1 = persistent("SynthesisLayer",
                     [("weight", tensors["synthesis.b4.conv1.weight"])],
                     in_channels=3)
  b4 = persistent(
      "SynthesisBlock", [("const", tensors["synthesis.b4.const"])],
      [("resample_filter", tensors["synthesis.b4.resample_filter"])],
      [("conv0", None), ("conv1", conv1)], resolution=4)
  fc0 = persistent("FullyConnectedLayer",
                   [("weight", tensors["mapping.fc0.weight"])])
  mapping = persistent("MappingNetwork", (),
                       [("w_avg", tensors["mapping.w_avg"])],
                       [("fc0", fc0)], num_layers=1)
  synthesis = persistent("SynthesisNetwork", (), (),
                         [("b4", b4), *synthesis_children], img_resolution=4)
  g = persistent("Generator", (), (),
                 [("synthesis", synthesis), ("mapping", mapping)],
                 z_dim=4, mapping_kwargs=writers.EASY_DICT(num_layers=1),
                 **init_kwargs)
  snapshot = dict(
      G=g, D=persistent("Discriminator", c_dim=0), G_ema=g, augment_pipe=None,
      training_set_kwargs=dict(writers.EASY_DICT(path="data.zip",
                                                 use_labels=False)))
  return snapshot, tensors


def _r3gan() -> tuple[dict, dict[str, writers.Tensor]]:
  """An R3GAN snapshot (ordinary classes) and G_ema's tensors."""
  weights = writers.Storage(_FLOAT, _float32(30))
  tensors = {
      "Model.MainLayers.0.Layers.0.Resampler.Kernel": writers.contiguous(
          weights, 0, (3, 3)),
      "Model.MainLayers.0.Layers.0.LinearLayer.Layer.weight": writers.Tensor(
          weights, 9, (2, 2, 1, 1), (1, 2, 1, 1)),
      "Model.MainLayers.0.Layers.1.Bias": writers.contiguous(weights, 13, (2,)),
  }

  def instance(class_name, params=(), buffers=(), modules=(), **attributes):
    cls = writers.R3GAN_CLASSES[class_name]
    module = cls.__new__(cls)
    module.__dict__.update(writers.module_state(
        [(name, key and writers.Parameter(tensors[key]))
         for name, key in params],
        [(name, tensors[key]) for name, key in buffers], modules,
        **attributes))
    return module

  prefix = "Model.MainLayers.0.Layers."
  conv = instance("torch.nn.modules.conv.Conv2d",
                  [("weight", prefix + "0.LinearLayer.Layer.weight"),
                   ("bias", None)], padding=(0, 0), padding_mode="zeros")
  resampler = instance("R3GAN.Resamplers.InterpolativeUpsamplerCUDA",
                       buffers=[("Kernel", prefix + "0.Resampler.Kernel")])
  linear = instance("R3GAN.Networks.Convolution", modules=[("Layer", conv)])
  stage = instance(
      "R3GAN.Networks.GeneratorStage",
      modules=[("Layers", instance(
          "torch.nn.modules.container.ModuleList", modules=[
              ("0", instance("R3GAN.Networks.UpsampleLayer", modules=[
                  ("Resampler", resampler), ("LinearLayer", linear)])),
              ("1", instance("R3GAN.FusedOperators.BiasedActivationCUDA",
                             [("Bias", prefix + "1.Bias")]))]))],
      DataType=writers.DTYPES["bfloat16"])
  model = instance("R3GAN.Networks.Generator", modules=[(
      "MainLayers", instance("torch.nn.modules.container.ModuleList",
                             modules=[("0", stage)]))])
  g = instance("training.networks.Generator", modules=[("Model", model)],
               z_dim=8, c_dim=0, img_resolution=8)
  step = writers.Storage(_FLOAT, np.array([1.0], "<f4"))
  optimizer = dict(state={0: dict(step=writers.Tensor(step, 0, (), ()))},
                   param_groups=[dict(lr=0.002, betas=(0.0, 0.0), params=[0])])
  snapshot = dict(G=g, D=g, G_ema=g, training_set_kwargs=dict(path="x.zip"),
                  cur_nimg=1000, G_opt_state=optimizer)
  return snapshot, tensors


# --- tests -------------------------------------------------------------------


@pytest.mark.parametrize("archive", ["legacy", "zip"])
def test_reads_stylegan2_ada_snapshot(tmp_path, archive):
  snapshot, tensors = _stylegan2_ada(archive)
  pickled = pickles.read(writers.write(tmp_path, snapshot))

  g = pickled.networks["G_ema"]
  assert list(g.params) == list(tensors)  # torch's state_dict order
  assert g.buffers == {"synthesis.b4.resample_filter", "mapping.w_avg"}
  for name, tensor in tensors.items():
    np.testing.assert_array_equal(g.params[name], tensor.expected())
    assert g.params[name].dtype == tensor.storage.values.dtype
    assert g.params[name].flags.c_contiguous
  assert (g.kind, g.class_name, g.source) == ("persistent", "Generator",
                                               writers.SOURCE)
  assert g.init_kwargs == {"z_dim": 4, "mapping_kwargs": {"num_layers": 1}}
  assert type(g.init_kwargs["mapping_kwargs"]) is dict  # plain, not EasyDict
  b4 = g.children["synthesis"].children["b4"]
  assert b4.init_kwargs == {"resolution": 4}
  assert b4.attributes == {"training": False, "weight_gain": 0.5}
  assert type(b4.attributes["weight_gain"]) is float  # was numpy.float64
  assert sorted(pickled.networks) == ["D", "G", "G_ema"]
  assert pickled.data["training_set_kwargs"] == {"path": "data.zip",
                                                 "use_labels": False}
  assert pickles.kind_of(pickled) == "stylegan2-ada"
  assert set(pickled.globals) == {
      "collections.OrderedDict", "dnnlib.util.EasyDict", "numpy.dtype",
      "numpy._core.multiarray.scalar", "torch.FloatStorage",
      "torch.HalfStorage", "torch._utils._rebuild_parameter",
      "torch._utils._rebuild_tensor_v2", "torch.storage._load_from_bytes",
      "torch_utils.persistence._reconstruct_persistent_obj"}


def test_reads_r3gan_snapshot(tmp_path):
  snapshot, tensors = _r3gan()
  pickled = pickles.read(writers.write(tmp_path, snapshot))

  g = pickled.networks["G_ema"]
  assert list(g.params) == list(tensors)
  for name, tensor in tensors.items():
    np.testing.assert_array_equal(g.params[name], tensor.expected())
  assert (g.kind, g.class_name, g.init_kwargs) == (
      "class", "training.networks.Generator", {})
  assert g.buffers == {"Model.MainLayers.0.Layers.0.Resampler.Kernel"}
  assert g.attributes == {"training": False, "z_dim": 8, "c_dim": 0,
                          "img_resolution": 8}
  stage = g.children["Model"].children["MainLayers"].children["0"]
  assert stage.attributes["DataType"] == "torch.bfloat16"
  assert pickled.data["G_opt_state"]["state"][0]["step"] == np.float32(1)
  assert pickles.kind_of(pickled) == "r3gan"
  assert "R3GAN.Networks.GeneratorStage" in pickled.globals


@pytest.mark.parametrize("numpy_format", ["numpy2", "numpy1", "protocol5"])
def test_reads_stylegan2_tf_pickle(tmp_path, numpy_format):
  wrap = (writers.OldNumpyArray if numpy_format == "numpy1"
          else (lambda array: array))
  arrays = {
      "dlatent_avg": np.linspace(-1, 1, 4, dtype=np.float32),
      "Dense0/weight": np.arange(8, dtype=np.float32).reshape(2, 4),
      "4x4/Conv/weight": np.ones((3, 3, 4, 4), np.float32),
      "lod": np.array(0.0, np.float32),
  }

  def network(name, build, names, components=None):
    return writers.tf_network(name, build,
                              {n: wrap(arrays[n]) for n in names},
                              components, resolution=16)

  mapping = network("G_mapping", "G_mapping", ["Dense0/weight"])
  synthesis = network("G_synthesis", "G_synthesis_stylegan2",
                      ["4x4/Conv/weight"])
  components = dict(mapping=mapping, synthesis=synthesis)
  g = network("G", "G_main", ["dlatent_avg"], components)
  gs = network("Gs", "G_main", ["dlatent_avg"], components)
  d = network("D", "D_stylegan2", ["lod"])
  path = writers.write(tmp_path, (g, d, gs), protocol=(
      5 if numpy_format == "protocol5" else 4))
  pickled = pickles.read(path)

  assert list(pickled.networks) == ["G", "D", "Gs"]
  gs = pickled.networks["Gs"]
  assert (gs.kind, gs.class_name, gs.source) == ("tf1", "G_main",
                                                 writers.TF_SOURCE)
  assert gs.init_kwargs == {"resolution": 16}
  assert gs.attributes == {"name": "Gs", "version": 4}
  assert list(gs.params) == ["dlatent_avg", "mapping/Dense0/weight",
                             "synthesis/4x4/Conv/weight"]
  for name, value in gs.params.items():
    np.testing.assert_array_equal(value, arrays[name.split("/", 1)[-1]])
  assert gs.children["synthesis"].class_name == "G_synthesis_stylegan2"
  np.testing.assert_array_equal(pickled.networks["D"].params["lod"], 0.0)
  assert pickles.kind_of(pickled) == "stylegan2-tf"
  numpy_globals = {
      "numpy2": {"numpy._core.multiarray._reconstruct", "numpy.ndarray",
                 "numpy.dtype"},
      "numpy1": {"numpy.core.multiarray._reconstruct", "numpy.ndarray",
                 "numpy.dtype"},
      "protocol5": {"numpy._core.numeric._frombuffer", "numpy.dtype"},
  }[numpy_format]
  assert set(pickled.globals) == {"dnnlib.tflib.network.Network",
                                  *numpy_globals}


_BF16_VALUES = np.array([1.5, -2.25, 0.125, 3.0, -0.5, 8.0], np.float32)


@pytest.mark.parametrize("archive", ["legacy", "zip"])
@pytest.mark.parametrize("storage_type, values, offset, size, stride", [
    ("FloatStorage", _float32(24), 0, (2, 3, 4), (12, 4, 1)),
    ("FloatStorage", _float32(24), 3, (3, 2), (1, 6)),  # transposed view
    ("FloatStorage", _float32(24), 1, (2, 2, 2), (12, 1, 5)),
    ("FloatStorage", _float32(24), 0, (3, 4), (0, 1)),  # expanded
    ("FloatStorage", _float32(5), 4, (), ()),  # 0-d
    ("FloatStorage", _float32(5), 0, (0, 3), (3, 1)),  # empty
    ("HalfStorage", np.arange(12, dtype="<f2") / 4, 2, (2, 3), (1, 2)),
    ("LongStorage", np.arange(6, dtype="<i8") - 3, 1, (5,), (1,)),
    ("BoolStorage", np.array([True, False, True, True]), 0, (2, 2), (1, 2)),
])
def test_tensor_layouts(tmp_path, archive, storage_type, values, offset, size,
                        stride):
  storage = writers.Storage(writers.STORAGE_TYPES[storage_type], values,
                            archive)
  tensor = writers.Tensor(storage, offset, size, stride)
  array = pickles.read(writers.write(tmp_path, {"t": tensor})).data["t"]
  assert array.dtype == values.dtype.newbyteorder("=")
  assert array.shape == size and array.flags.c_contiguous
  np.testing.assert_array_equal(array, tensor.expected())


@pytest.mark.parametrize("archive", ["legacy", "zip"])
def test_bfloat16_reads_as_float32(tmp_path, archive):
  bits = (_BF16_VALUES.view(np.uint32) >> 16).astype("<u2")
  storage = writers.Storage(writers.STORAGE_TYPES["BFloat16Storage"], bits,
                            archive)
  tensor = writers.Tensor(storage, 1, (2, 2), (1, 2))
  array = pickles.read(writers.write(tmp_path, {"t": tensor})).data["t"]
  assert array.dtype == np.float32
  np.testing.assert_array_equal(array, tensor.expected(_BF16_VALUES))


def test_rebuild_tensor_v3_views_bytes_as_its_dtype(tmp_path):
  values = np.array([1, 2, 60000, 4, 5], "<u2")
  storage = writers.Storage(writers.UNTYPED_STORAGE, values.view(np.uint8))
  tensor = writers.Tensor(storage, 1, (2, 2), (1, 2),
                          dtype=writers.DTYPES["uint16"])
  array = pickles.read(writers.write(tmp_path, {"t": tensor})).data["t"]
  assert array.dtype == np.uint16
  np.testing.assert_array_equal(array, tensor.expected(values))


@pytest.mark.parametrize("use_radial_filters, kind", [
    (False, "stylegan3-t"), (True, "stylegan3-r")])
def test_kind_of_stylegan3(tmp_path, use_radial_filters, kind):
  # StyleGAN3's synthesis network begins with a SynthesisInput layer.
  snapshot, _ = _stylegan2_ada(
      synthesis_children=[("input", writers.Persistent(
          "SynthesisInput", writers.module_state(), {}))],
      use_radial_filters=use_radial_filters)
  pickled = pickles.read(writers.write(tmp_path, snapshot))
  assert pickles.kind_of(pickled) == kind


def test_kind_of_unknown_lists_the_kinds(tmp_path):
  path = writers.write(tmp_path, {"G": 1, "weights": np.zeros(3)})
  with pytest.raises(pickles.UnknownPickle) as error:
    pickles.kind_of(pickles.read(path))
  message = str(error.value)
  assert path in message and "a dict of G, weights" in message
  assert "stylegan2-ada, stylegan3-t, stylegan3-r, r3gan, stylegan2-tf" in (
      message)


def _code_that_writes(marker) -> list[tuple[writers.Run, str, str]]:
  """Each call that would create `marker`, and the global that names it in
  a pickle of protocol 4 and of protocol 2 (torch.save's, whose Python 2
  compatibility renames some modules)."""
  return [
      (writers.Run(os.system, f"touch {marker}"), "posix.system",
       "posix.system"),
      (writers.Run(exec, f"open({str(marker)!r}, 'w').close()"),
       "builtins.exec", "__builtin__.exec"),
      (writers.Run(subprocess.call, ["touch", str(marker)]),
       "subprocess.call", "commands.call"),
  ]


@pytest.mark.parametrize("index", range(3))
@pytest.mark.parametrize("where", ["top", "persistent state", "storage bytes"])
def test_refuses_globals_that_would_run_code(tmp_path, index, where):
  marker = tmp_path / "ran"
  run, qualified, in_protocol_2 = _code_that_writes(marker)[index]
  if where == "top":
    obj = {"G": run}
  elif where == "persistent state":
    obj = {"G_ema": writers.Persistent(
        "Generator", writers.module_state(hook=run), {})}
  else:
    obj = {"t": writers.Run(writers.LOAD_FROM_BYTES, writers.legacy_archive(
        _FLOAT, _float32(2), payload=[run]))}
    qualified = in_protocol_2
  path = writers.write(tmp_path, obj)

  with pytest.raises(pickles.RefusedGlobal) as error:
    pickles.read(path)
  assert f"{error.value.module}.{error.value.name}" == qualified
  assert f"names the global {qualified}, which is refused" in str(error.value)
  assert "\n" not in str(error.value)
  assert not marker.exists()


def test_embedded_source_is_kept_as_text_never_run(tmp_path):
  marker = tmp_path / "ran"
  source = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
  snapshot, _ = _stylegan2_ada(source=source)
  pickled = pickles.read(writers.write(tmp_path, snapshot))
  assert pickled.networks["G_ema"].children["mapping"].source == source
  assert not marker.exists()


def _truncated(path: str, keep: int) -> None:
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:keep])


@pytest.mark.parametrize("keep", ["nothing", "a byte", "half", "all but one"])
def test_truncated_file_is_a_clear_error(tmp_path, keep):
  path = writers.write(tmp_path, _stylegan2_ada()[0])
  size = os.path.getsize(path)
  _truncated(path, {"nothing": 0, "a byte": 1, "half": size // 2,
                    "all but one": size - 1}[keep])
  with pytest.raises(pickles.BadPickle,
                     match=f"cannot read network pickle {path}: it is "
                     "truncated or corrupt") as error:
    pickles.read(path)
  assert "\n" not in str(error.value)


def _short_storage():
  archive = writers.legacy_archive(_FLOAT, _float32(4))
  return writers.Run(writers.LOAD_FROM_BYTES, archive[:-3])


@pytest.mark.parametrize("make, reason", [
    (lambda: writers.Tensor(writers.Storage(_FLOAT, _float32(6)), 2, (2, 3),
                            (3, 1)), "reaches past its storage of 6 elements"),
    (lambda: writers.Tensor(writers.Storage(_FLOAT, _float32(6)), 0, (2,),
                            (-1,)), r"stride \(-1,\)"),
    (_short_storage, "a storage of 4 torch.float32 elements has 13 bytes"),
], ids=["past the storage", "negative stride", "short storage"])
def test_corrupt_tensor_is_a_clear_error(tmp_path, make, reason):
  path = writers.write(tmp_path, {"t": make()})
  with pytest.raises(pickles.BadPickle, match=reason):
    pickles.read(path)


def test_missing_file_is_a_clear_error(tmp_path):
  with pytest.raises(pickles.BadPickle, match="No such file"):
    pickles.read(tmp_path / "none.pkl")


def test_allowed_globals_are_the_formats_own():
  assert {"builtins.exec", "posix.system", "os.system", "subprocess.call",
          "builtins.eval", "builtins.getattr", "torch.load",
          "copyreg._reconstructor"}.isdisjoint(pickles.ALLOWED)
  assert all(name.split(".")[0] in (
      "collections", "dnnlib", "numpy", "torch", "torch_utils", "training",
      "R3GAN") for name in pickles.ALLOWED)
