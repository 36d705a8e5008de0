"""The reference networks' parameters as our networks' variables.

StyleGAN2-ADA's and R3GAN's PyTorch state_dict names (`synthesis.b8.conv0.
weight`, `Model.MainLayers.0.Layers.1.LinearLayer1.Layer.weight`) map to
our layers' variables with a change of layout: convolutions OIHW -> HWIO,
dense [out, in] -> [in, out], images and constants channels-last. The
functions here say, for a built G and D, which array goes to which
variable; `assign` checks every shape, that every parameter found a
variable and every variable a parameter, and that the resampling filters
the reference stored are the [1, 3, 3, 1] ones ours hard-code.
"""

import dataclasses

import keras
import numpy as np

from trainer.errors import UserError
from trainer.models import resampling
from trainer.models import stages
from trainer.models import stylegan2

Params = dict[str, np.ndarray]


class WeightMismatch(UserError):
  """The reference's parameters do not fit the network built for them."""


def _hwio(weight: np.ndarray) -> np.ndarray:
  """A convolution's [out, in, kh, kw] -> [kh, kw, in, out]."""
  return np.transpose(weight, (2, 3, 1, 0))


@dataclasses.dataclass
class Plan:
  """What goes where: (variable, array, the parameter's name)."""
  network: str
  pairs: list[tuple[keras.Variable, np.ndarray, str]] = dataclasses.field(
      default_factory=list)
  used: set[str] = dataclasses.field(default_factory=set)

  def put(self, variable: keras.Variable, params: Params, name: str,
          convert=lambda a: a) -> None:
    if name not in params:
      raise WeightMismatch(f"{self.network}: the parameter {name} that "
                           f"{variable.path} needs is not in the file")
    self.pairs.append((variable, convert(params[name]), name))
    self.used.add(name)


def _check_filters(plan: Plan, params: Params) -> None:
  """The stored FIR filters must be ours: [1, 3, 3, 1] outer itself."""
  taps = np.array(resampling.FIR)
  expected = np.outer(taps, taps) / np.outer(taps, taps).sum()
  for name, value in params.items():
    if name.endswith("resample_filter") or name.endswith("Resampler.Kernel"):
      value = np.asarray(value, np.float64)
      if value.ndim == 1:
        value = np.outer(value, value)
      if value.shape != expected.shape or not np.allclose(
          value / value.sum(), expected, atol=1e-6):
        raise WeightMismatch(f"{plan.network}: {name} is not the [1, 3, 3, "
                             "1] filter; only that filter is supported")
      plan.used.add(name)


def assign(plan: Plan, params: Params, model: keras.Model) -> None:
  """Checks the plan against the parameters and the model, then assigns."""
  _check_filters(plan, params)
  unused = sorted(set(params) - plan.used)
  if unused:
    raise WeightMismatch(f"{plan.network}: {len(unused)} parameter(s) have "
                         f"no place in our network, the first {unused[0]}")
  covered = {id(v) for v, _, _ in plan.pairs}
  missed = [v.path for v in model.variables if id(v) not in covered]
  if missed:
    raise WeightMismatch(f"{plan.network}: our variable {missed[0]} gets no "
                         "parameter from the file")
  for variable, value, name in plan.pairs:
    if tuple(variable.shape) != value.shape:
      raise WeightMismatch(
          f"{plan.network}: {name} has shape {value.shape}, our "
          f"{variable.path} {tuple(variable.shape)}")
  for variable, value, _ in plan.pairs:
    variable.assign(value.astype(np.float32))


def _dense(plan: Plan, layer, params: Params, prefix: str) -> None:
  plan.put(layer.kernel, params, f"{prefix}.weight", np.transpose)
  plan.put(layer.bias, params, f"{prefix}.bias")


def _conv(plan: Plan, layer, params: Params, prefix: str,
          bias: bool = True) -> None:
  plan.put(layer.kernel, params, f"{prefix}.weight", _hwio)
  if bias:
    plan.put(layer.bias, params, f"{prefix}.bias")


def stylegan2_generator(g: keras.Model, params: Params) -> None:
  """Loads StyleGAN2-ADA's G (or G_ema) parameters into our G."""
  plan = Plan("G")
  mapping, synthesis = stylegan2.mapping_of(g), stylegan2.synthesis_of(g)
  for i, fc in enumerate(mapping.fcs):
    _dense(plan, fc, params, f"mapping.fc{i}")
  if mapping.num_classes:
    _dense(plan, mapping.embed, params, "mapping.embed")
  plan.put(mapping.w_avg, params, "mapping.w_avg")
  plan.put(synthesis.const, params, "synthesis.b4.const",
           lambda a: np.transpose(a, (1, 2, 0)))
  for layer in synthesis.convs + synthesis.to_rgbs:
    if layer.name.startswith("torgb"):
      prefix = f"synthesis.b{layer.name[len('torgb'):]}.torgb"
    else:
      res, index = layer.name[len("conv"):].split("_")
      prefix = f"synthesis.b{res}.conv{index}"
    _conv(plan, layer, params, prefix)
    _dense(plan, layer.affine, params, f"{prefix}.affine")
    if layer.resolution:
      plan.put(layer.noise_strength, params, f"{prefix}.noise_strength")
      plan.put(layer.noise_const, params, f"{prefix}.noise_const")
  assign(plan, params, g)


def stylegan2_discriminator(d: keras.Model, params: Params,
                            image_size: int) -> None:
  """Loads StyleGAN2-ADA's D parameters into our D (resnet or orig)."""
  plan = Plan("D")
  names = {layer.name for layer in d.layers}
  _conv(plan, d.get_layer("fromrgb"), params, f"b{image_size}.fromrgb")
  for res in stages.resolutions(image_size)[:0:-1]:
    _conv(plan, d.get_layer(f"conv{res}_0"), params, f"b{res}.conv0")
    _conv(plan, d.get_layer(f"conv{res}_1"), params, f"b{res}.conv1")
    if f"skip{res}" in names:
      _conv(plan, d.get_layer(f"skip{res}"), params, f"b{res}.skip",
            bias=False)
  _conv(plan, d.get_layer("conv4"), params, "b4.conv")
  fc = d.get_layer("fc")
  channels = fc.kernel.shape[-1]
  # Flattened [C, 4, 4] there, [4, 4, C] here.
  plan.put(fc.kernel, params, "b4.fc.weight", lambda a: a.reshape(
      channels, -1, 4, 4).transpose(2, 3, 1, 0).reshape(-1, channels))
  plan.put(fc.bias, params, "b4.fc.bias")
  _dense(plan, d.get_layer("logits"), params, "b4.out")
  if "label_mapping" in names:
    label_mapping = d.get_layer("label_mapping")
    _dense(plan, label_mapping.embed, params, "mapping.embed")
    for i, layer in enumerate(label_mapping.fcs):
      _dense(plan, layer, params, f"mapping.fc{i}")
  assign(plan, params, d)


def _r3gan_block(plan: Plan, layer, params: Params, prefix: str) -> None:
  for ours, theirs in ((layer.expand, 1), (layer.grouped, 2),
                       (layer.project, 3)):
    plan.put(ours.kernel, params, f"{prefix}.LinearLayer{theirs}.Layer.weight",
             _hwio)
  plan.put(layer.act1.bias, params, f"{prefix}.NonLinearity1.Bias")
  plan.put(layer.act2.bias, params, f"{prefix}.NonLinearity2.Bias")


def r3gan_generator(g: keras.Model, params: Params, image_size: int,
                    blocks: int) -> None:
  """Loads R3GAN's G (or G_ema) parameters into our G."""
  plan = Plan("G")
  names = {layer.name for layer in g.layers}
  basis = g.get_layer("basis")
  plan.put(basis.basis, params, "Model.MainLayers.0.Layers.0.Basis",
           lambda a: np.transpose(a, (1, 2, 0)))
  plan.put(basis.kernel, params, "Model.MainLayers.0.Layers.0.LinearLayer."
           "weight", np.transpose)
  for stage, res in enumerate(stages.resolutions(image_size)):
    for i in range(blocks):
      _r3gan_block(plan, g.get_layer(f"g{res}_block{i}"), params,
                   f"Model.MainLayers.{stage}.Layers.{i + 1}")
    if f"g{res}_width" in names:
      plan.put(g.get_layer(f"g{res}_width").kernel, params,
               f"Model.MainLayers.{stage}.Layers.0.LinearLayer.Layer.weight",
               _hwio)
  plan.put(g.get_layer("aggregation").to_image.kernel, params,
           "Model.AggregationLayer.Layer.weight", _hwio)
  if "label_embedding" in names:
    plan.put(g.get_layer("label_embedding").embeddings, params,
             "Model.EmbeddingLayer.weight", np.transpose)
  assign(plan, params, g)


def r3gan_discriminator(d: keras.Model, params: Params, image_size: int,
                        blocks: int) -> None:
  """Loads R3GAN's D parameters into our D."""
  plan = Plan("D")
  names = {layer.name for layer in d.layers}
  plan.put(d.get_layer("extraction").kernel, params,
           "Model.ExtractionLayer.Layer.weight", _hwio)
  sizes = stages.resolutions(image_size)[::-1]
  for stage, res in enumerate(sizes):
    for i in range(blocks):
      _r3gan_block(plan, d.get_layer(f"d{res}_block{i}"), params,
                   f"Model.MainLayers.{stage}.Layers.{i}")
    if f"d{res}_width" in names:
      plan.put(d.get_layer(f"d{res}_width").kernel, params,
               f"Model.MainLayers.{stage}.Layers.{blocks}.LinearLayer.Layer."
               "weight", _hwio)
  last = f"Model.MainLayers.{len(sizes) - 1}.Layers.{blocks}"
  plan.put(d.get_layer("basis_depthwise").kernel, params,
           f"{last}.Basis.weight", lambda a: np.transpose(a, (2, 3, 0, 1)))
  plan.put(d.get_layer("basis_linear").kernel, params,
           f"{last}.LinearLayer.weight", np.transpose)
  if "projection" in names:
    plan.put(d.get_layer("projection").embeddings, params,
             "Model.EmbeddingLayer.weight", np.transpose)
  assign(plan, params, d)
