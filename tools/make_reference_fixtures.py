"""Writes the reference networks' outputs: tests/fixtures/reference/<case>.npz.

Our StyleGAN2 and R3GAN are meant to compute the functions of the published
PyTorch code: NVlabs/stylegan2-ada-pytorch (`training.networks`) and
brownvc/R3GAN (`training.networks`, a wrapper of `R3GAN.Networks`). This
script builds small networks of each with the reference's own classes,
imported at run time from checkouts given as flags, gives every weight and
buffer a seeded non-zero value, runs them on fixed inputs on the CPU in
float32, and saves weights, inputs and outputs, so that a test can load the
weights into our networks and compare the outputs without torch.

It needs torch and is run by hand (tools/README.md says how); nothing in
trainer/ or tests/ imports it. The reference code is imported, never copied.

Each <case>.npz holds (all float32 unless said; the reference's layouts:
images NCHW, convolution weights [out, in, kh, kw], dense weights
[out, in]):
  config: a 0-d JSON string: the case's family, the reference's class and
    constructor kwargs of G and D, the reference commit, the perturbation,
    the truncation psi, and the `model.*` fields of our config that
    describe the same network.
  G.<name>, D.<name>: every entry of G's and D's state_dict(), perturbed.
  z [4, z_dim]; c [4, c_dim] one-hot (c_dim 0: [4, 0]); labels [4] int32
    (conditional cases only: the classes of c).
  StyleGAN2 outputs: ws [4, num_ws, w_dim] (truncation_psi 1),
    ws_psi [4, num_ws, w_dim] (psi = config's truncation_psi, cutoff None),
    img_noise_none and img_noise_const [4, C, S, S] (synthesis of ws with
    noise_mode 'none' and 'const'; raw, not clamped).
  R3GAN outputs: img [4, 3, S, S] (raw, the reference has no tanh).
  D_img [8, C, S, S]: example i uniform in +-(i + 1) / 8; D_c [8, c_dim];
    D_labels [8] int32 (conditional only); D_logits: D(D_img, D_c) ([8, 1]
    StyleGAN2, [8] R3GAN); D_logits_first4: D on the first 4 alone
    (StyleGAN2's minibatch standard deviation groups every 2nd example of a
    batch of 8, but all of a batch of 4).

The `stylegan2_tf1_*` cases are TensorFlow 1 StyleGAN2 networks
(NVlabs/stylegan2's config-e/f layout): their variables, under the names
and in the layouts the TensorFlow code gives them, are pickled as its
`dnnlib.tflib.network.Network` pickles them, and read back by
stylegan2-ada-pytorch's own `legacy.load_network_pkl`; the outputs are
those of the PyTorch networks it builds. They hold, instead of G.* and
D.*, TF_G.<name> (Gs: its own variables and its components', named
'mapping/...' and 'synthesis/...' as legacy.py collects them) and
TF_D.<name>; the config adds the networks' recorded static kwargs.
"""

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import json
import pathlib
import pickle
import re
import subprocess
import sys
import types
import zipfile

import numpy as np
import torch

# Every weight and buffer gets N(0, PERTURBATION^2) added (seeded), so that
# no bias, noise strength or last-layer weight is zero and each one matters
# in the outputs. The fixed resampling filters are not perturbed: they are
# buffers, but part of the function's definition, not learned state (our
# networks hard-code [1, 3, 3, 1]).
PERTURBATION = 0.1
TRUNCATION_PSI = 0.7
G_BATCH, D_BATCH = 4, 8
# The modules both checkouts define under the same names.
_REFERENCE_MODULES = ("training", "torch_utils", "dnnlib", "R3GAN", "legacy")


@dataclasses.dataclass(frozen=True)
class Case:
  """One fixture: a reference G and D and our config fields for them."""
  name: str
  family: str  # "stylegan2" or "r3gan"
  seed: int
  g_kwargs: dict
  d_kwargs: dict
  trainer_model: dict  # our `model.*` fields for the same network
  c_dim: int
  resolution: int


def _stylegan2_case(name: str, seed: int, *, resolution: int, c_dim: int,
                    conv_clamp: float | None, g_architecture: str = "skip",
                    d_architecture: str = "resnet") -> Case:
  """StyleGAN2-ADA's preset networks, small: widths 32 (4 to 16) and 8 (32)."""
  channel_base, channel_max, dim = 256, 32, 16
  g_kwargs = dict(
      z_dim=dim, c_dim=c_dim, w_dim=dim, img_resolution=resolution,
      img_channels=3,
      mapping_kwargs=dict(num_layers=2, lr_multiplier=0.01,
                          w_avg_beta=0.995),
      synthesis_kwargs=dict(channel_base=channel_base,
                            channel_max=channel_max, num_fp16_res=0,
                            conv_clamp=conv_clamp,
                            architecture=g_architecture))
  d_kwargs = dict(
      c_dim=c_dim, img_resolution=resolution, img_channels=3,
      architecture=d_architecture, channel_base=channel_base,
      channel_max=channel_max, num_fp16_res=0, conv_clamp=conv_clamp,
      # The presets leave D's label mapping at MappingNetwork's defaults.
      mapping_kwargs=dict(num_layers=8, lr_multiplier=0.01),
      epilogue_kwargs=dict(mbstd_group_size=4, mbstd_num_channels=1))
  trainer_model = dict(
      architecture="stylegan2", image_size=resolution, channels=3,
      latent_dim=dim, num_classes=c_dim, w_dim=dim, mapping_layers=2,
      mapping_lr_multiplier=0.01, w_avg_beta=0.995,
      channel_base=channel_base, channel_max=channel_max, num_fp16_res=0,
      conv_clamp=conv_clamp or 0.0, mbstd_group=4, mbstd_features=1)
  return Case(name, "stylegan2", seed, g_kwargs, d_kwargs, trainer_model,
              c_dim, resolution)


def _r3gan_case(name: str, seed: int, *, resolution: int,
                c_dim: int) -> Case:
  """R3GAN's preset networks, small: widths min(256 // r, 32), 8 groups."""
  channel_base, channel_max, cardinality, dim = 256, 32, 8, 16
  resolutions = [2**i for i in range(2, resolution.bit_length())]
  widths = [min(channel_base // r, channel_max) for r in resolutions]
  groups = [cardinality * w // widths[0] for w in widths]
  blocks = [2] * len(resolutions)
  common = dict(ExpansionFactor=2, FP16Stages=[], c_dim=c_dim,
                img_resolution=resolution)
  g_kwargs = dict(NoiseDimension=dim, WidthPerStage=widths,
                  CardinalityPerStage=groups, BlocksPerStage=blocks, **common)
  d_kwargs = dict(WidthPerStage=widths[::-1],
                  CardinalityPerStage=groups[::-1],
                  BlocksPerStage=blocks[::-1], **common)
  if c_dim:
    # As the presets: G embeds the label to z's size, D to its 4x4 width.
    g_kwargs["ConditionEmbeddingDimension"] = dim
    d_kwargs["ConditionEmbeddingDimension"] = widths[0]
  trainer_model = dict(
      architecture="r3gan", image_size=resolution, channels=3,
      latent_dim=dim, num_classes=c_dim, channel_base=channel_base,
      channel_max=channel_max, blocks_per_stage=2, cardinality=cardinality,
      expansion=2, num_fp16_res=0)
  return Case(name, "r3gan", seed, g_kwargs, d_kwargs, trainer_model, c_dim,
              resolution)


@dataclasses.dataclass(frozen=True)
class TF1Case:
  """A TensorFlow 1 StyleGAN2 pickle (config-e/f: G 'skip', unconditional).

  `case` holds the PyTorch networks that legacy.py makes of it; g_static
  and d_static are what the TensorFlow networks record (static_kwargs).
  """
  case: Case
  g_static: dict
  d_static: dict


def _stylegan2_tf1_case(name: str, seed: int, *, resolution: int,
                        channels: int, d_architecture: str) -> TF1Case:
  case = _stylegan2_case(name, seed, resolution=resolution, c_dim=0,
                         conv_clamp=None, d_architecture=d_architecture)
  case.g_kwargs["img_channels"] = case.d_kwargs["img_channels"] = channels
  case.trainer_model["channels"] = channels
  # TensorFlow's fmap_base is half of channel_base; the mapping is 512 wide
  # unless recorded; D's group size is recorded, since legacy.py reads an
  # unrecorded one as the whole batch where the TensorFlow code takes 4.
  common = dict(num_channels=channels, resolution=resolution, label_size=0,
                fmap_base=case.g_kwargs["synthesis_kwargs"]["channel_base"]
                // 2,
                fmap_max=case.g_kwargs["synthesis_kwargs"]["channel_max"])
  g_static = dict(common, latent_size=case.g_kwargs["z_dim"],
                  dlatent_size=case.g_kwargs["w_dim"], mapping_layers=2,
                  mapping_fmaps=case.g_kwargs["w_dim"])
  d_static = dict(common, architecture=d_architecture, mbstd_group_size=4)
  return TF1Case(case, g_static, d_static)


CASES = (
    _stylegan2_case("stylegan2_r16_uncond", 1, resolution=16, c_dim=0,
                    conv_clamp=None),
    _stylegan2_case("stylegan2_r32_cond", 2, resolution=32, c_dim=5,
                    conv_clamp=256),
    # A clamp small enough to act, in G's layers and D's (times the gain).
    _stylegan2_case("stylegan2_r16_cond_clamp", 3, resolution=16, c_dim=5,
                    conv_clamp=0.5),
    # The other architectures: G 'resnet' and D 'orig' (the cifar preset's).
    _stylegan2_case("stylegan2_r16_uncond_gresnet_dorig", 4, resolution=16,
                    c_dim=0, conv_clamp=None, g_architecture="resnet",
                    d_architecture="orig"),
    _r3gan_case("r3gan_r16_uncond", 5, resolution=16, c_dim=0),
    _r3gan_case("r3gan_r32_cond", 6, resolution=32, c_dim=5),
)

TF1_CASES = (
    _stylegan2_tf1_case("stylegan2_tf1_r16", 7, resolution=16, channels=3,
                        d_architecture="resnet"),
    _stylegan2_tf1_case("stylegan2_tf1_r32_gray_dorig", 8, resolution=32,
                        channels=1, d_architecture="orig"),
)


def _version_key(version: str) -> tuple[int, ...]:
  """'2.13.0+cpu' -> (2, 13, 0): enough to compare torch's versions."""
  return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _install_shims() -> None:
  """What the references need on a recent CPU-only torch.

  R3GAN's torch_utils imports pkg_resources.parse_version, which setuptools
  no longer ships; a stand-in compares the numeric parts.
  """
  if importlib.util.find_spec("pkg_resources") is None:
    shim = types.ModuleType("pkg_resources")
    shim.parse_version = _version_key
    sys.modules["pkg_resources"] = shim


@contextlib.contextmanager
def _reference(checkout: pathlib.Path):
  """Imports `training.networks` from a checkout; forgets it afterwards.

  Both references name their packages training, torch_utils and dnnlib, so
  each is imported alone. Their custom CUDA ops are never built: on CPU
  tensors upfirdn2d and bias_act run their 'ref' implementations (the
  plugins are tried only for CUDA tensors); `_init` is made to say so
  anyway, and conv2d_gradfix stays off.
  """
  for name in list(sys.modules):
    if name.split(".")[0] in _REFERENCE_MODULES:
      del sys.modules[name]
  sys.path.insert(0, str(checkout))
  try:
    networks = importlib.import_module("training.networks")
    for op in ("upfirdn2d", "bias_act"):
      module = sys.modules.get(f"torch_utils.ops.{op}")
      if module is not None:
        module._init = lambda: False  # pylint: disable=protected-access
    sys.modules["torch_utils.ops.conv2d_gradfix"].enabled = False
    yield networks
  finally:
    sys.path.remove(str(checkout))
    for name in list(sys.modules):
      if name.split(".")[0] in _REFERENCE_MODULES:
        del sys.modules[name]


def _commit(checkout: pathlib.Path) -> str:
  return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"],
                        check=True, capture_output=True,
                        text=True).stdout.strip()


def _is_filter(name: str) -> bool:
  """The fixed resampling filters, buffers that are not learned state."""
  return name.endswith("resample_filter") or name.endswith("Resampler.Kernel")


def _perturb(module: torch.nn.Module, generator: torch.Generator) -> None:
  """Adds seeded N(0, PERTURBATION^2) to every weight and buffer but filters."""
  with torch.no_grad():
    for name, tensor in sorted(module.state_dict().items()):
      if not _is_filter(name):
        tensor.add_(torch.randn(tensor.shape, generator=generator)
                    * PERTURBATION)


def _labels(rng: np.random.RandomState, count: int,
            c_dim: int) -> tuple[np.ndarray, np.ndarray | None]:
  """One-hot c [count, c_dim] float32 and its classes [count] (None if 0)."""
  if not c_dim:
    return np.zeros([count, 0], np.float32), None
  labels = rng.randint(0, c_dim, size=count).astype(np.int32)
  return np.eye(c_dim, dtype=np.float32)[labels], labels


def _inputs(case: Case, rng: np.random.RandomState) -> dict[str, np.ndarray]:
  z_dim = case.g_kwargs.get("z_dim", case.g_kwargs.get("NoiseDimension"))
  arrays = {"z": rng.standard_normal([G_BATCH, z_dim]).astype(np.float32)}
  arrays["c"], labels = _labels(rng, G_BATCH, case.c_dim)
  channels = case.d_kwargs.get("img_channels", 3)
  # Example i's amplitude is (i + 1) / D_BATCH: groups of other examples
  # have other standard deviations, which D's minibatch layer then shows.
  amplitude = np.arange(1, D_BATCH + 1)[:, None, None, None] / D_BATCH
  arrays["D_img"] = (amplitude * rng.uniform(
      -1.0, 1.0, [D_BATCH, channels, case.resolution, case.resolution])
  ).astype(np.float32)
  arrays["D_c"], d_labels = _labels(rng, D_BATCH, case.c_dim)
  if labels is not None:
    arrays["labels"], arrays["D_labels"] = labels, d_labels
  return arrays


# Both references ignore c (here [B, 0]) when c_dim is 0.


def _stylegan2_outputs(g, d, inputs: dict[str, torch.Tensor]) -> dict:
  z, c = inputs["z"], inputs["c"]
  ws = g.mapping(z, c)
  outputs = {
      "ws": ws,
      "ws_psi": g.mapping(z, c, truncation_psi=TRUNCATION_PSI),
      "img_noise_none": g.synthesis(ws, noise_mode="none"),
      "img_noise_const": g.synthesis(ws, noise_mode="const"),
  }
  # G's own forward gives the same images (no hidden state between halves).
  assert torch.equal(g(z, c, noise_mode="const"), outputs["img_noise_const"])
  outputs["D_logits"] = d(inputs["D_img"], inputs["D_c"])
  outputs["D_logits_first4"] = d(inputs["D_img"][:4], inputs["D_c"][:4])
  return outputs


def _r3gan_outputs(g, d, inputs: dict[str, torch.Tensor]) -> dict:
  return {
      "img": g(inputs["z"], inputs["c"]),
      "D_logits": d(inputs["D_img"], inputs["D_c"]),
      "D_logits_first4": d(inputs["D_img"][:4], inputs["D_c"][:4]),
  }


_OUTPUTS = {"stylegan2": _stylegan2_outputs, "r3gan": _r3gan_outputs}


def _write_npz(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
  """np.savez's format with fixed timestamps: equal arrays, equal bytes."""
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
    for name in sorted(arrays):
      buffer = io.BytesIO()
      np.lib.format.write_array(buffer, np.asarray(arrays[name]),
                                allow_pickle=False)
      info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
      archive.writestr(info, buffer.getvalue())


def _networks(case: Case, networks) -> tuple[torch.nn.Module,
                                              torch.nn.Module]:
  """The case's G and D, built by the reference and perturbed (seeded)."""
  torch.manual_seed(case.seed)  # the references initialize from it
  g = networks.Generator(**case.g_kwargs).eval().requires_grad_(False)
  d = networks.Discriminator(**case.d_kwargs).eval().requires_grad_(False)
  generator = torch.Generator().manual_seed(1000 + case.seed)
  _perturb(g, generator)
  _perturb(d, generator)
  return g, d


def _with_outputs(case: Case, g, d) -> dict[str, np.ndarray]:
  """The case's inputs and the outputs of g and d for them."""
  arrays = _inputs(case, np.random.RandomState(2000 + case.seed))
  tensors = {k: torch.from_numpy(v) for k, v in arrays.items()
             if v.dtype == np.float32}
  with torch.no_grad():
    outputs = _OUTPUTS[case.family](g, d, tensors)
  arrays.update({k: v.numpy().astype(np.float32) for k, v in outputs.items()})
  return arrays


def _config(case: Case, commit: str, **extra) -> np.ndarray:
  """The fixture's config: a 0-d JSON string."""
  config = {
      "family": case.family,
      "reference_commit": commit,
      "G": {"class": "training.networks.Generator", "kwargs": case.g_kwargs},
      "D": {"class": "training.networks.Discriminator",
            "kwargs": case.d_kwargs},
      "seed": case.seed,
      "perturbation": {"stddev": PERTURBATION,
                       "unperturbed": "the resampling filters"},
      "truncation_psi": TRUNCATION_PSI,
      "trainer_model": case.trainer_model,
      **extra,
  }
  return np.array(json.dumps(config, sort_keys=True))


def make_case(case: Case, networks, commit: str) -> dict[str, np.ndarray]:
  """The fixture's arrays: perturbed weights, inputs, outputs, config."""
  g, d = _networks(case, networks)
  arrays = _with_outputs(case, g, d)
  for prefix, module in (("G", g), ("D", d)):
    for name, tensor in module.state_dict().items():
      arrays[f"{prefix}.{name}"] = tensor.numpy().astype(np.float32)
  arrays["config"] = _config(case, commit)
  return arrays


# --- TensorFlow 1 pickles ------------------------------------------------------


def _tf_conv(weight: np.ndarray) -> np.ndarray:
  """[out, in, kh, kw] -> TensorFlow's [kh, kw, in, out]."""
  return weight.transpose(2, 3, 1, 0)


def _tf1_variables(g: dict[str, np.ndarray],
                   d: dict[str, np.ndarray]) -> tuple[dict, dict]:
  """The TensorFlow variables whose legacy.py reading is these state dicts.

  G's: (own, mapping's, synthesis's); the names and layouts of
  NVlabs/stylegan2's training/networks_stylegan2.py. legacy.py's reading
  of them is checked against g and d afterwards (make_tf1_case).
  """
  own = {"dlatent_avg": g["mapping.w_avg"], "lod": np.float32(0.0)}
  mapping, synthesis = {}, {}
  for name, value in g.items():
    match = re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", name)
    if match:
      mapping[f"Dense{match[1]}/{match[2]}"] = (
          value.T if match[2] == "weight" else value)
      continue
    match = re.fullmatch(r"synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(.+)",
                         name)
    if not match:
      continue
    res, layer, rest = int(match[1]), match[2], match[3]
    scope = {"conv0": "Conv0_up", "conv1": "Conv1" if res > 4 else "Conv",
             "torgb": "ToRGB"}[layer]
    prefix = f"{res}x{res}/{scope}"
    if rest == "weight":
      value = _tf_conv(value)
      synthesis[f"{prefix}/weight"] = (
          value[::-1, ::-1] if layer == "conv0" else value)
    elif rest in ("bias", "noise_strength"):
      synthesis[f"{prefix}/{rest}"] = value
    elif rest == "affine.weight":
      synthesis[f"{prefix}/mod_weight"] = value.T
    elif rest == "affine.bias":
      synthesis[f"{prefix}/mod_bias"] = value - 1
    elif rest == "noise_const":
      index = (2 * int(np.log2(res)) - 5 + (layer == "conv1")
               if res > 4 else 0)
      synthesis[f"noise{index}"] = value[np.newaxis, np.newaxis]
  synthesis["4x4/Const/const"] = g["synthesis.b4.const"][np.newaxis]
  tf_d = {}
  names = {"fromrgb": "FromRGB", "conv0": "Conv0", "conv1": "Conv1_down",
           "skip": "Skip"}
  for name, value in d.items():
    match = re.fullmatch(r"b(\d+)\.(fromrgb|conv0|conv1|skip|conv|fc|out)"
                         r"\.(weight|bias)", name)
    if not match:
      continue
    res, layer, kind = int(match[1]), match[2], match[3]
    scope = {"conv": "4x4/Conv", "fc": "4x4/Dense0", "out": "Output"}.get(
        layer, f"{res}x{res}/{names.get(layer)}")
    if kind == "weight":
      value = value.T if layer in ("fc", "out") else _tf_conv(value)
    tf_d[f"{scope}/{kind}"] = value
  contiguous = lambda v: {k: np.array(x, np.float32, order="C")
                          for k, x in v.items()}
  return ((contiguous(own), contiguous(mapping), contiguous(synthesis)),
          contiguous(tf_d))


@contextlib.contextmanager
def _tf_network_class():
  """A class that pickles as dnnlib.tflib.network.Network does."""
  names = ("dnnlib.tflib", "dnnlib.tflib.network")
  saved = {name: sys.modules.get(name) for name in names}
  network_module = types.ModuleType("dnnlib.tflib.network")

  class Network:  # pylint: disable=too-few-public-methods
    """Its __getstate__: the dict dnnlib's Network pickles."""

    def __init__(self, state: dict):
      self._state = state

    def __getstate__(self) -> dict:
      return self._state

  Network.__module__ = "dnnlib.tflib.network"
  Network.__qualname__ = "Network"
  network_module.Network = Network
  sys.modules["dnnlib.tflib"] = types.ModuleType("dnnlib.tflib")
  sys.modules["dnnlib.tflib.network"] = network_module
  try:
    yield Network
  finally:
    for name, module in saved.items():
      if module is None:
        sys.modules.pop(name, None)
      else:
        sys.modules[name] = module


def _tf1_pickle(tf1: TF1Case, g_vars: tuple, d_vars: dict) -> bytes:
  """G, D and Gs as the TensorFlow code pickles them (G and Gs alike)."""
  own, mapping, synthesis = g_vars
  num_ws = 2 * int(np.log2(tf1.case.resolution)) - 2
  with _tf_network_class() as network:
    def make(name, func, variables, static, components=None):
      return network(dict(
          version=4, name=name, static_kwargs=static,
          components=components or {}, build_module_src="# not run\n",
          build_func_name=func, variables=list(variables.items())))
    def generator(name):
      components = {
          "synthesis": make("G_synthesis", "G_synthesis_stylegan2",
                            synthesis, tf1.g_static),
          "mapping": make("G_mapping", "G_mapping", mapping,
                          dict(tf1.g_static, dlatent_broadcast=num_ws))}
      return make(name, "G_main", own, tf1.g_static, components)
    return pickle.dumps((generator("G"),
                         make("D", "D_stylegan2", d_vars, tf1.d_static),
                         generator("Gs")), protocol=4)


def make_tf1_case(tf1: TF1Case, networks, legacy,
                  commit: str) -> dict[str, np.ndarray]:
  """The case's TensorFlow variables, inputs, and the outputs of the
  networks legacy.py reads from their pickle."""
  case = tf1.case
  g, d = _networks(case, networks)
  state = {prefix: {k: v.numpy() for k, v in module.state_dict().items()}
           for prefix, module in (("G", g), ("D", d))}
  g_vars, d_vars = _tf1_variables(state["G"], state["D"])
  read = legacy.load_network_pkl(io.BytesIO(_tf1_pickle(tf1, g_vars, d_vars)))
  for prefix, module in (("G", read["G_ema"]), ("D", read["D"])):
    got = {k: v.numpy() for k, v in module.state_dict().items()}
    assert got.keys() == state[prefix].keys(), prefix
    for key, value in got.items():
      np.testing.assert_array_equal(value, state[prefix][key], err_msg=key)
  arrays = _with_outputs(case, read["G_ema"], read["D"])
  own, mapping, synthesis = g_vars
  for prefix, variables in (("", own), ("mapping/", mapping),
                            ("synthesis/", synthesis)):
    arrays.update({f"TF_G.{prefix}{k}": v for k, v in variables.items()})
  arrays.update({f"TF_D.{k}": v for k, v in d_vars.items()})
  arrays["config"] = _config(case, commit, tf1={
      "G_static_kwargs": tf1.g_static, "D_static_kwargs": tf1.d_static,
      "read_by": "legacy.load_network_pkl"})
  return arrays


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--stylegan2_ada", type=pathlib.Path, required=True,
                      help="a checkout of NVlabs/stylegan2-ada-pytorch")
  parser.add_argument("--r3gan", type=pathlib.Path, required=True,
                      help="a checkout of brownvc/R3GAN")
  parser.add_argument(
      "--out", type=pathlib.Path,
      default=pathlib.Path(__file__).resolve().parent.parent
      / "tests" / "fixtures" / "reference")
  parser.add_argument("--cases", nargs="*",
                      help="names of the cases to write (default: all)")
  args = parser.parse_args()
  torch.set_num_threads(1)  # modest, and the same reductions every run
  torch.use_deterministic_algorithms(True)
  _install_shims()
  checkouts = {"stylegan2": args.stylegan2_ada, "r3gan": args.r3gan}
  args.out.mkdir(parents=True, exist_ok=True)
  for family, checkout in checkouts.items():
    cases = [c for c in CASES if c.family == family
             and (not args.cases or c.name in args.cases)]
    commit = _commit(checkout)
    tf1_cases = [c for c in TF1_CASES if family == "stylegan2"
                 and (not args.cases or c.case.name in args.cases)]
    if not cases and not tf1_cases:
      continue
    with _reference(checkout) as networks:
      for case in cases:
        path = args.out / f"{case.name}.npz"
        _write_npz(path, make_case(case, networks, commit))
        print(f"{path} {path.stat().st_size} bytes")
      if tf1_cases:
        legacy = importlib.import_module("legacy")
      for tf1 in tf1_cases:
        path = args.out / f"{tf1.case.name}.npz"
        _write_npz(path, make_tf1_case(tf1, networks, legacy, commit))
        print(f"{path} {path.stat().st_size} bytes")


if __name__ == "__main__":
  main()
