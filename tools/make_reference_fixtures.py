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
"""

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import json
import pathlib
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


def make_case(case: Case, networks, commit: str) -> dict[str, np.ndarray]:
  """The fixture's arrays: perturbed weights, inputs, outputs, config."""
  torch.manual_seed(case.seed)  # the references initialize from it
  g = networks.Generator(**case.g_kwargs).eval().requires_grad_(False)
  d = networks.Discriminator(**case.d_kwargs).eval().requires_grad_(False)
  generator = torch.Generator().manual_seed(1000 + case.seed)
  _perturb(g, generator)
  _perturb(d, generator)
  arrays = _inputs(case, np.random.RandomState(2000 + case.seed))
  tensors = {k: torch.from_numpy(v) for k, v in arrays.items()
             if v.dtype == np.float32}
  with torch.no_grad():
    outputs = _OUTPUTS[case.family](g, d, tensors)
  arrays.update({k: v.numpy().astype(np.float32) for k, v in outputs.items()})
  for prefix, module in (("G", g), ("D", d)):
    for name, tensor in module.state_dict().items():
      arrays[f"{prefix}.{name}"] = tensor.numpy().astype(np.float32)
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
  }
  arrays["config"] = np.array(json.dumps(config, sort_keys=True))
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
    if not cases:
      continue
    commit = _commit(checkout)
    with _reference(checkout) as networks:
      for case in cases:
        path = args.out / f"{case.name}.npz"
        _write_npz(path, make_case(case, networks, commit))
        print(f"{path} {path.stat().st_size} bytes")


if __name__ == "__main__":
  main()
