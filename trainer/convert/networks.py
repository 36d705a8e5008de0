"""The kinds of network pickle that trainer.convert turns into our networks.

A `Format` per kind that trainer/convert/pickles.py's `kind_of` names, in a
registry by that name: which of the pickle's networks become our G, D and
G_ema, the `model.*` fields of ours that compute their function, inferred
from what the pickle records, and the loading of a network's parameters
into ours (trainer/convert/weights.py, which checks every shape and that
every variable of ours gets a parameter). What our networks cannot express
is an UnsupportedNetwork error that names the field and its value; the
kinds that are not converted are registered with the reason.

StyleGAN2 (StyleGAN2-ADA's `training/networks.py`, and StyleGAN3's
`training/networks_stylegan2.py` for its --cfg=stylegan2): the networks'
constructor arguments, which the persistence wrapper records, read with
the defaults of the code that wrote them. R3GAN records none: its
widths, groups, blocks and dimensions come from the parameters' shapes.
"""

import dataclasses
import re
from typing import Any, Callable

import keras
import numpy as np

from trainer.convert import weights
from trainer.convert.pickles import Module
from trainer.errors import UserError
from trainer.models import stages
from trainer.registry import Registry


class UnsupportedNetwork(UserError):
  """A network of a known kind that our networks cannot compute."""


# model.<name> -> value, `architecture` included.
Fields = dict[str, Any]
# The pickle's top-level networks by name (pickles.Pickled.networks).
Networks = dict[str, Module]
# (our network, the pickle's network, the fields) -> None; raises
# weights.WeightMismatch.
Loader = Callable[[keras.Model, Module, Fields], None]

# Our networks, as messages and the state name them.
OURS = ("G", "D", "G_ema")


# Each of our networks -> the pickle's networks that can give it, the first
# present wins: G_ema falls back to G, G to G_ema (the torch snapshots' names).
_SOURCES = {"G": ("G", "G_ema"), "D": ("D",), "G_ema": ("G_ema", "G")}


@dataclasses.dataclass(frozen=True)
class Format:
  """How one kind of network pickle becomes our networks.

  Attributes:
    title: the code base that writes it, for messages.
    infer: the pickle's networks -> our model fields; raises
      UnsupportedNetwork for what ours cannot compute.
    load_generator: loads a generator (for our G and G_ema).
    load_discriminator: loads a discriminator (for our D).
    refusal: why this kind is not converted; "" when it is (and the
      functions above are set).
    sources: each of OURS -> the pickle's networks that can give it, the
      first present wins.
  """
  title: str
  infer: Callable[[Networks], Fields] | None = None
  load_generator: Loader | None = None
  load_discriminator: Loader | None = None
  refusal: str = ""
  sources: dict[str, tuple[str, ...]] = dataclasses.field(
      default_factory=lambda: dict(_SOURCES))

  def load(self, ours: str, model: keras.Model, module: Module,
           fields: Fields) -> None:
    """Loads the pickle's `module` into our network `ours` (one of OURS)."""
    load = self.load_discriminator if ours == "D" else self.load_generator
    load(model, module, fields)


FORMATS: Registry[Format] = Registry("network pickle kind", "--pickle")


def infer(kind: str, networks: Networks) -> tuple[Format, Fields]:
  """The format of `kind` and our model fields for its `networks`.

  Raises:
    UnsupportedNetwork: the kind is not converted, or its networks hold
      what ours cannot compute (the message names the field and value).
  """
  format_ = FORMATS.get(kind)
  if format_.refusal:
    raise UnsupportedNetwork(format_.refusal)
  return format_, format_.infer(networks)


# --- StyleGAN2: the constructors' recorded arguments --------------------------

REQUIRED = object()  # a constructor argument without a default
FILTER = [1, 3, 3, 1]  # StyleGAN2's resampling filter, which ours hard-codes


@dataclasses.dataclass
class Kwargs:
  """A constructor's recorded keyword arguments, read with the defaults of
  the code that wrote them.

  Attributes:
    values: as recorded.
    path: how messages name them ('G', 'G.mapping_kwargs').
    defaults: every argument the constructor takes that matters to the
      function, with its default (REQUIRED: none).
    ignored: arguments of speed or training alone (memory formats, Freeze-D).
    code: the code whose networks these arguments are, for messages.
  """
  values: dict[str, Any]
  path: str
  defaults: dict[str, Any]
  ignored: tuple[str, ...] = ()
  code: str = ("StyleGAN2-ADA's training/networks.py and StyleGAN3's "
               "training/networks_stylegan2.py")

  def __post_init__(self):
    unknown = [k for k in self.values
               if k not in self.defaults and k not in self.ignored]
    if unknown:
      raise UnsupportedNetwork(
          f"{self.name(unknown[0])}={self.values[unknown[0]]!r} is an "
          "argument trainer.convert does not know; it converts the networks "
          f"of {self.code}")

  def name(self, key: str) -> str:
    return f"{self.path}.{key}"

  def __getitem__(self, key: str) -> Any:
    value = self.values.get(key, self.defaults[key])
    if value is REQUIRED:
      raise UnsupportedNetwork(f"{self.path} records no {key}, which its "
                               "constructor requires")
    return value

  def section(self, key: str, defaults: dict[str, Any],
              ignored: tuple[str, ...] = ()) -> "Kwargs":
    return Kwargs(dict(self[key] or {}), self.name(key), defaults, ignored)

  def expect(self, key: str, valid: tuple[Any, ...], ours: str) -> Any:
    """self[key], if one of `valid`; else UnsupportedNetwork saying `ours`."""
    value = self[key]
    if value not in valid:
      raise unsupported(self.name(key), value, ours)
    return value


def unsupported(name: str, value: Any, ours: str) -> UnsupportedNetwork:
  """The error for a setting `name`=`value` that ours cannot express."""
  return UnsupportedNetwork(f"{name}={value!r} cannot be converted: {ours}")


@dataclasses.dataclass(frozen=True)
class _Dialect:
  """The defaults of one code base's StyleGAN2 networks.

  StyleGAN2-ADA's Generator takes mapping_kwargs and synthesis_kwargs, and
  its train.py always records both; StyleGAN3's networks_stylegan2.Generator
  takes the synthesis arguments flat (**synthesis_kwargs), with other
  defaults (fp16 in 4 resolutions, clamp 256, w_avg_beta 0.998).
  """
  synthesis_nested: bool
  num_fp16_res: int
  conv_clamp: float | None
  w_avg_beta: float
  ignored: tuple[str, ...]


_ADA = _Dialect(True, 0, None, 0.995, ("fp16_channels_last",
                                       "channels_last"))
_SG3 = _Dialect(False, 4, 256, 0.998, ("fp16_channels_last", "channels_last",
                                       "fused_modconv_default"))

_LAYERS = {"activation": "lrelu", "resample_filter": FILTER}


def _synthesis_defaults(dialect: _Dialect) -> dict[str, Any]:
  return {"channel_base": 32768, "channel_max": 512,
          "num_fp16_res": dialect.num_fp16_res,
          "conv_clamp": dialect.conv_clamp, "architecture": "skip",
          "use_noise": True, "kernel_size": 3, **_LAYERS}


def _mapping_defaults(w_avg_beta: float | None) -> dict[str, Any]:
  return {"num_layers": 8, "embed_features": None, "layer_features": None,
          "activation": "lrelu", "lr_multiplier": 0.01,
          **({} if w_avg_beta is None else {"w_avg_beta": w_avg_beta})}


def check_layers(kwargs: Kwargs, activation: str = "activation",
                 resample_filter: str = "resample_filter") -> None:
  """The settings of the layers that ours hard-code, under the names the
  code that wrote them gives them."""
  kwargs.expect(activation, ("lrelu",), "ours use leaky ReLU")
  filter_ = kwargs[resample_filter]
  if list(filter_ or []) != FILTER:
    raise unsupported(kwargs.name(resample_filter), filter_,
                      "ours resample with [1, 3, 3, 1] only")


def _check_features(mapping: Kwargs, width: int, width_name: str,
                    conditional: bool) -> None:
  """A mapping's embedding and hidden layers are `width` wide, as ours."""
  for key, used in (("embed_features", conditional),
                    ("layer_features", mapping["num_layers"] > 1)):
    if used and mapping[key] not in (None, width):
      raise unsupported(mapping.name(key), mapping[key],
                         f"ours are {width_name} ({width}) wide")


def _dialect(g: Module) -> _Dialect:
  return _ADA if "synthesis_kwargs" in g.init_kwargs else _SG3


def _stylegan2_generator(g: Module, dialect: _Dialect
                         ) -> tuple[Fields, Kwargs, Kwargs]:
  """Our fields from G's recorded arguments; those arguments, and its
  synthesis network's."""
  synthesis_defaults = _synthesis_defaults(dialect)
  top = {"z_dim": REQUIRED, "c_dim": REQUIRED, "w_dim": REQUIRED,
         "img_resolution": REQUIRED, "img_channels": REQUIRED,
         "mapping_kwargs": {}}
  if dialect.synthesis_nested:
    kwargs = Kwargs(g.init_kwargs, "G", {**top, "synthesis_kwargs": {}})
    synthesis = kwargs.section("synthesis_kwargs", synthesis_defaults,
                               dialect.ignored)
  else:
    kwargs = Kwargs(g.init_kwargs, "G", {**top, **synthesis_defaults},
                     dialect.ignored)
    synthesis = kwargs
  mapping = kwargs.section("mapping_kwargs",
                           _mapping_defaults(dialect.w_avg_beta))
  synthesis.expect("architecture", ("skip",), "our StyleGAN2 generator is "
                   "StyleGAN2's 'skip' one (its images summed over "
                   "resolutions) only")
  synthesis.expect("use_noise", (True,), "ours add noise to every layer")
  synthesis.expect("kernel_size", (3,), "ours convolve 3x3")
  check_layers(synthesis)
  mapping.expect("activation", ("lrelu",), "ours use leaky ReLU")
  if kwargs["z_dim"] < 1:
    raise unsupported("G.z_dim", kwargs["z_dim"], "ours map a latent z")
  if mapping["w_avg_beta"] is None:
    raise unsupported(mapping.name("w_avg_beta"), None,
                       "ours track w_avg (truncation needs it)")
  _check_features(mapping, kwargs["w_dim"], "w_dim", kwargs["c_dim"] > 0)
  fields = {
      "architecture": "stylegan2", "image_size": kwargs["img_resolution"],
      "channels": kwargs["img_channels"], "latent_dim": kwargs["z_dim"],
      "num_classes": kwargs["c_dim"], "w_dim": kwargs["w_dim"],
      "mapping_layers": mapping["num_layers"],
      "mapping_lr_multiplier": float(mapping["lr_multiplier"]),
      "w_avg_beta": float(mapping["w_avg_beta"]),
      "channel_base": synthesis["channel_base"],
      "channel_max": synthesis["channel_max"],
      "num_fp16_res": synthesis["num_fp16_res"],
      "conv_clamp": float(synthesis["conv_clamp"] or 0),
      # StyleGAN2's own grouping of the minibatch standard deviation, which
      # the converted D computes (docs/convert.md).
      "mbstd_groups": "strided",
  }
  return fields, kwargs, synthesis


def _stylegan2_discriminator(d: Module, dialect: _Dialect, fields: Fields,
                             g: Kwargs, g_synthesis: Kwargs) -> Fields:
  """D's fields; what it shares with G must be G's (ours has one value)."""
  kwargs = Kwargs(d.init_kwargs, "D", {
      "c_dim": REQUIRED, "img_resolution": REQUIRED,
      "img_channels": REQUIRED, "architecture": "resnet",
      "channel_base": 32768, "channel_max": 512,
      "num_fp16_res": dialect.num_fp16_res, "conv_clamp": dialect.conv_clamp,
      "cmap_dim": None, "block_kwargs": {}, "mapping_kwargs": {},
      "epilogue_kwargs": {}})
  block = kwargs.section("block_kwargs", dict(_LAYERS),
                         ("freeze_layers", "fp16_channels_last"))
  mapping = kwargs.section("mapping_kwargs", _mapping_defaults(None))
  epilogue = kwargs.section("epilogue_kwargs", {
      "mbstd_group_size": 4, "mbstd_num_channels": 1, "activation": "lrelu"})
  check_layers(block)
  epilogue.expect("activation", ("lrelu",), "ours use leaky ReLU")
  kwargs.expect("architecture", ("resnet", "orig"), "our D is StyleGAN2's "
                "'resnet' or 'orig' one")
  for name, g_kwargs in (("c_dim", g), ("img_resolution", g),
                         ("img_channels", g), ("channel_base", g_synthesis),
                         ("channel_max", g_synthesis),
                         ("num_fp16_res", g_synthesis),
                         ("conv_clamp", g_synthesis)):
    ours, theirs = kwargs[name], g_kwargs[name]
    if name == "conv_clamp":  # None and 0 are both no clamp
      ours, theirs = ours or 0, theirs or 0
    if ours != theirs:
      raise unsupported(kwargs.name(name), kwargs[name],
                         f"ours has one value for G and D, and "
                         f"{g_kwargs.name(name)} is {g_kwargs[name]!r}")
  group = epilogue["mbstd_group_size"]
  if group is None or group < 1:
    raise unsupported(epilogue.name("mbstd_group_size"), group,
                       "ours take groups of a fixed size")
  features = epilogue["mbstd_num_channels"]
  if features < 1:
    raise unsupported(epilogue.name("mbstd_num_channels"), features,
                       "ours add at least one channel")
  if fields["num_classes"]:
    _check_label_mapping(kwargs, mapping, fields)
  return {"mbstd_group": group, "mbstd_features": features,
          "d_architecture": kwargs["architecture"],
          "d_mapping_layers": mapping["num_layers"]}


def _check_label_mapping(d: Kwargs, mapping: Kwargs,
                         fields: Fields) -> None:
  """A conditional D's mapping of the label, as ours: C4 wide, G's rate."""
  width = stages.width(4, fields["channel_base"], fields["channel_max"])
  if d["cmap_dim"] not in (None, width):
    raise unsupported("D.cmap_dim", d["cmap_dim"], "ours map the label to "
                       f"the width at 4x4 ({width})")
  if mapping["lr_multiplier"] != fields["mapping_lr_multiplier"]:
    raise unsupported(mapping.name("lr_multiplier"),
                       mapping["lr_multiplier"],
                       "ours has one mapping_lr_multiplier for G and D, and "
                       f"G's is {fields['mapping_lr_multiplier']!r}")
  mapping.expect("activation", ("lrelu",), "ours use leaky ReLU")
  _check_features(mapping, width, "the width at 4x4", True)


def _infer_stylegan2(networks: Networks) -> Fields:
  g = networks.get("G_ema") or networks["G"]
  dialect = _dialect(g)
  fields, g_kwargs, synthesis = _stylegan2_generator(g, dialect)
  if "D" in networks:
    fields.update(_stylegan2_discriminator(networks["D"], dialect, fields,
                                           g_kwargs, synthesis))
  return fields


FORMATS.register("stylegan2-ada")(Format(
    title="StyleGAN2 (StyleGAN2-ADA's, or StyleGAN3's --cfg=stylegan2)",
    infer=_infer_stylegan2,
    load_generator=lambda model, module, fields: (
        weights.stylegan2_generator(model, module.params)),
    load_discriminator=lambda model, module, fields: (
        weights.stylegan2_discriminator(model, module.params,
                                        fields["image_size"]))))


# --- R3GAN: the parameters' shapes --------------------------------------------

# A parameter of a stage: Model.MainLayers.<stage>.Layers.<layer>.<rest>.
_STAGE_PARAM = re.compile(r"Model\.MainLayers\.(\d+)\.Layers\.(\d+)\.(.+)")
_BLOCK = "LinearLayer{}.Layer.weight"  # a residual block's convolutions


@dataclasses.dataclass(frozen=True)
class _Stage:
  """What ours must match of one of R3GAN's stages (one resolution).

  Attributes:
    width: the channels of its blocks.
    blocks: how many residual blocks it has.
    expansion: a block's inner width over its width.
    groups: the groups of a block's 3x3 convolution (its cardinality).
    kernel: that convolution's size.
    reduced: it computes in bfloat16 (R3GAN's FP16Stages).
  """
  width: int
  blocks: int
  expansion: int
  groups: int
  kernel: int
  reduced: bool


def _shape(params: dict[str, np.ndarray], key: str, where: str) -> tuple:
  if key not in params:
    raise UnsupportedNetwork(f"{where} has no {key}, which R3GAN's has")
  return params[key].shape


# stage -> layer -> the rest of the parameter's name -> its value.
_StageParams = dict[int, dict[int, dict[str, np.ndarray]]]


def _stage_params(module: Module) -> _StageParams:
  found: _StageParams = {}
  for name, value in module.params.items():
    match = _STAGE_PARAM.fullmatch(name)
    if match:
      stage, layer, rest = int(match[1]), int(match[2]), match[3]
      found.setdefault(stage, {}).setdefault(layer, {})[rest] = value
  return dict(sorted(found.items()))


def _stage(network: str, index: int, layers: dict[int, dict[str, np.ndarray]],
           data_type: Any) -> _Stage:
  """One stage's blocks: all alike, as ours."""
  name = f"{network}'s stage {index} (Model.MainLayers.{index})"
  blocks = []
  for layer, params in sorted(layers.items()):
    if _BLOCK.format(1) in params:
      inner, width = params[_BLOCK.format(1)].shape[:2]
      _, per_group, kernel, _ = _shape(params, _BLOCK.format(2),
                                       f"{name} layer {layer}")
      blocks.append((width, inner, inner // per_group, kernel))
  if not blocks:
    raise unsupported(f"{name} blocks", 0, "ours has at least one residual "
                       "block per resolution")
  if len(set(blocks)) > 1:
    raise unsupported(f"{name} blocks (width, inner width, groups, kernel)",
                       blocks, "our blocks of one resolution are alike")
  width, inner, groups, kernel = blocks[0]
  if inner % width:
    raise unsupported(f"{name} inner width", inner, "ours expand a block "
                       f"by a whole factor of its width ({width})")
  return _Stage(width, len(blocks), inner // width, groups, kernel,
                data_type == "torch.bfloat16")


def _stages(module: Module, network: str,
            resolution: Callable[[int], int]) -> dict[int, _Stage]:
  """The network's stages by resolution, `resolution`(stage index)."""
  params = _stage_params(module)
  if not params or list(params) != list(range(len(params))):
    raise UnsupportedNetwork(f"{network} has stages {list(params)}; R3GAN's "
                             "are numbered 0, 1, ... (Model.MainLayers)")
  main = module.children["Model"].children["MainLayers"].children
  return {resolution(i): _stage(network, i, layers,
                                main[str(i)].attributes.get("DataType"))
          for i, layers in params.items()}


def _widths_config(widths: dict[int, int]) -> tuple[int, int]:
  """The channel_base and channel_max whose min(channel_base // r,
  channel_max) are `widths` (resolution -> width), the smallest base.

  Raises:
    UnsupportedNetwork: none give them.
  """
  channel_max = widths[4]
  channel_base = max(width * res for res, width in widths.items())
  if any(stages.width(res, channel_base, channel_max) != width
         for res, width in widths.items()):
    raise unsupported("the widths per resolution", widths, "ours are "
                       "min(channel_base // r, channel_max), which no "
                       "channel_base and channel_max make these")
  return channel_base, channel_max


def _uniform(by_res: dict[int, _Stage], field: str, ours: str) -> int:
  """The stages' one value of `field`; UnsupportedNetwork if they differ."""
  values = {res: getattr(stage, field) for res, stage in by_res.items()}
  if len(set(values.values())) > 1:
    raise unsupported(f"G's {field} per resolution", values, ours)
  return next(iter(values.values()))


def _cardinality(by_res: dict[int, _Stage]) -> int:
  """Ours: the groups at 4x4, proportionally fewer where narrower."""
  cardinality, widest = by_res[4].groups, by_res[4].width
  if any(stage.groups != cardinality * stage.width // widest
         for stage in by_res.values()):
    raise unsupported(
        "G's groups per resolution",
        {res: stage.groups for res, stage in by_res.items()},
        f"ours have cardinality (here {cardinality}, those at 4x4) times "
        "width(r) / width(4) groups at resolution r")
  return cardinality


def _num_fp16_res(by_res: dict[int, _Stage]) -> int:
  """Ours: the top resolutions in bfloat16, never 4x4."""
  reduced = sorted(res for res, stage in by_res.items() if stage.reduced)
  if 4 in reduced or reduced != sorted(by_res)[len(by_res) - len(reduced):]:
    raise unsupported("G's bfloat16 resolutions", reduced, "ours compute the "
                       "top num_fp16_res resolutions in the reduced dtype, "
                       "never 4x4")
  return len(reduced)


def _latent_and_classes(g: Module) -> tuple[int, int]:
  """z's size (the basis' inputs but the label's embedding) and classes."""
  basis = "Model.MainLayers.0.Layers.0.LinearLayer.weight"
  inputs = _shape(g.params, basis, "G")[1]
  embedding = g.params.get("Model.EmbeddingLayer.weight")
  if embedding is None:
    latent, classes = inputs, 0
  else:
    latent, classes = inputs - embedding.shape[0], embedding.shape[1]
    if embedding.shape[0] != latent:
      raise unsupported("G's label embedding (ConditionEmbeddingDimension)",
                         embedding.shape[0], "ours embeds the label as wide "
                         f"as z (NoiseDimension, here {latent})")
  for name, value, ours in (("z_dim", latent, "its basis takes"),
                            ("c_dim", classes, "its embedding takes")):
    if g.attributes.get(name, value) != value:
      raise unsupported(f"G.{name}", g.attributes[name], f"{ours} {value}")
  return latent, classes


def _r3gan_generator(g: Module) -> tuple[Fields, dict[int, _Stage]]:
  """Our fields from G's shapes, and its stages by resolution."""
  by_res = _stages(g, "G", lambda i: 4 * 2**i)
  size = max(by_res)
  if g.attributes.get("img_resolution", size) != size:
    raise unsupported("G.img_resolution", g.attributes["img_resolution"],
                       f"its stages make {size}x{size} images")
  if _uniform(by_res, "kernel", "ours convolve 3x3") != 3:
    raise unsupported("G's kernel", by_res[4].kernel, "ours convolve 3x3")
  channel_base, channel_max = _widths_config(
      {res: stage.width for res, stage in by_res.items()})
  latent, classes = _latent_and_classes(g)
  aggregation = _shape(g.params, "Model.AggregationLayer.Layer.weight", "G")
  fields = {
      "architecture": "r3gan", "image_size": size,
      "channels": aggregation[0], "latent_dim": latent,
      "num_classes": classes, "channel_base": channel_base,
      "channel_max": channel_max,
      "blocks_per_stage": _uniform(by_res, "blocks", "ours has "
                                   "blocks_per_stage at every resolution"),
      "cardinality": _cardinality(by_res),
      "expansion": _uniform(by_res, "expansion", "ours has one expansion"),
      "num_fp16_res": _num_fp16_res(by_res),
  }
  return fields, by_res


def _check_r3gan_discriminator(d: Module, fields: Fields,
                               g_stages: dict[int, _Stage]) -> None:
  """D's stages and classes must be G's: ours builds both from one config."""
  size = fields["image_size"]
  d_stages = _stages(d, "D", lambda i: size // 2**i)
  if sorted(d_stages) != sorted(g_stages):
    raise unsupported("D's resolutions", sorted(d_stages),
                       f"G's are {sorted(g_stages)}")
  for field in dataclasses.fields(_Stage):
    theirs = {r: getattr(d_stages[r], field.name) for r in sorted(d_stages)}
    ours = {r: getattr(g_stages[r], field.name) for r in sorted(g_stages)}
    if theirs != ours:
      raise unsupported(f"D's {field.name} per resolution", theirs,
                         f"ours builds G and D from one config, and G's are "
                         f"{ours}")
  embedding = d.params.get("Model.EmbeddingLayer.weight")
  classes = 0 if embedding is None else embedding.shape[1]
  if classes != fields["num_classes"]:
    raise unsupported("D's classes (c_dim)", classes,
                       f"G's are {fields['num_classes']}")
  if embedding is not None and embedding.shape[0] != g_stages[4].width:
    raise unsupported("D's label embedding (ConditionEmbeddingDimension)",
                       embedding.shape[0], "ours projects on the features "
                       f"at 4x4, {g_stages[4].width} wide")


def _infer_r3gan(networks: Networks) -> Fields:
  fields, by_res = _r3gan_generator(networks.get("G_ema") or networks["G"])
  if "D" in networks:
    _check_r3gan_discriminator(networks["D"], fields, by_res)
  return fields


FORMATS.register("r3gan")(Format(
    title="R3GAN", infer=_infer_r3gan,
    load_generator=lambda model, module, fields: weights.r3gan_generator(
        model, module.params, fields["image_size"],
        fields["blocks_per_stage"]),
    load_discriminator=lambda model, module, fields: (
        weights.r3gan_discriminator(model, module.params,
                                    fields["image_size"],
                                    fields["blocks_per_stage"]))))


# --- kinds that are not converted ---------------------------------------------

_ONLY = ("only StyleGAN2-type networks (StyleGAN2-ADA's, StyleGAN3's "
         "--cfg=stylegan2, or TensorFlow StyleGAN2's config-e and -f) and "
         "R3GAN's are supported")


def _stylegan3(title: str, cfg: str) -> Format:
  return Format(title, refusal=(
      f"this is a {title} network (StyleGAN3's --cfg={cfg}), which "
      f"trainer.convert cannot convert: {_ONLY}"))


FORMATS.register("stylegan3-t")(_stylegan3("StyleGAN3-T", "stylegan3-t"))
FORMATS.register("stylegan3-r")(_stylegan3("StyleGAN3-R", "stylegan3-r"))
