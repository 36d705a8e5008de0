"""TensorFlow 1 StyleGAN2 pickles (NVlabs/stylegan2, config-e and -f).

Such a pickle is a tuple (G, D, Gs) of dnnlib.tflib Networks: each records
its build function's keyword arguments (static_kwargs) and its variables
by TensorFlow name; G_main's components are the mapping and synthesis
networks, whose variables trainer/convert/pickles.py names
'mapping/Dense0/weight' and 'synthesis/4x4/Conv/weight' (as
stylegan2-ada-pytorch's legacy.py collects them).

The variables are renamed and laid out as StyleGAN2-ADA's PyTorch
parameters, exactly as legacy.py turns them into its networks (the
up-sampling convolution's kernel flipped, the style bias plus one, the
constant input and noise maps without their leading axes), and then loaded
by the StyleGAN2-ADA path (trainer/convert/weights.py). Proved on networks
that legacy.py itself read (tests/models/test_reference.py, the
stylegan2_tf1_* fixtures).

The recorded arguments are read with the TensorFlow code's own defaults
(training/networks_stylegan2.py). Where legacy.py's differ, the TensorFlow
code's are the function the network was trained with: D's minibatch
standard deviation groups, 4 unless recorded (legacy.py: the whole batch),
and a mapping layer's width, 512 unless recorded (legacy.py: w's).
Conditional networks, the progressive configs A-D and G 'orig' or 'resnet'
are refused by name.
"""

import re
from typing import Any, Callable

import numpy as np

from trainer.convert import networks
from trainer.convert import weights
from trainer.convert.networks import (FILTER, Fields, Kwargs,
                                      UnsupportedNetwork, unsupported)
from trainer.convert.pickles import Module

_CODE = "NVlabs/stylegan2's training/networks_stylegan2.py (G_main, D_stylegan2)"

# Arguments of the graph's construction or of sampling, not of the function
# the variables compute (truncation is trainer.apply's --psi).
_IGNORED = ("truncation_psi", "truncation_cutoff", "truncation_psi_val",
            "truncation_cutoff_val", "style_mixing_prob", "is_training",
            "is_validation", "return_dlatents", "is_template_graph",
            "randomize_noise", "fused_modconv", "dtype", "structure",
            "force_clean_graph", "components", "freeze_layers")

_SHARED = {"num_channels": 3, "resolution": 1024, "label_size": 0,
           "fmap_base": 16 << 10, "fmap_decay": 1.0, "fmap_min": 1,
           "fmap_max": 512, "nonlinearity": "lrelu",
           "resample_kernel": FILTER,
           # StyleGAN2-ADA's TensorFlow code, which legacy.py also reads.
           "num_fp16_res": 0, "conv_clamp": None}

_G_DEFAULTS = {
    **_SHARED,
    "mapping_func": "G_mapping", "synthesis_func": "G_synthesis_stylegan2",
    "dlatent_avg_beta": 0.995, "w_avg_beta": None,
    "latent_size": 512, "dlatent_size": 512, "mapping_layers": 8,
    "mapping_fmaps": 512, "mapping_lrmul": 0.01,
    "mapping_nonlinearity": "lrelu", "normalize_latents": True,
    "label_fmaps": None, "architecture": "skip", "use_noise": True,
}

_D_DEFAULTS = {**_SHARED, "architecture": "resnet", "mbstd_group_size": 4,
               "mbstd_num_features": 1, "mapping_layers": 0,
               "mapping_fmaps": None, "mapping_lrmul": 0.1}


def _kwargs(network: Module, path: str, defaults: dict[str, Any]) -> Kwargs:
  return Kwargs(dict(network.init_kwargs), path, defaults, _IGNORED, _CODE)


def _widths(kwargs: Kwargs) -> tuple[int, int]:
  """Our channel_base and channel_max for TensorFlow's nf(stage).

  nf(stage) = clip(int(fmap_base / 2 ** (stage * fmap_decay)), fmap_min,
  fmap_max) is the width at resolution 2 ** (stage + 1); ours are
  min(channel_base // r, channel_max), equal for channel_base =
  2 * fmap_base when fmap_decay is 1 and fmap_min does not act.
  """
  base, decay = kwargs["fmap_base"], kwargs["fmap_decay"]
  lowest, highest = kwargs["fmap_min"], kwargs["fmap_max"]
  channel_base = 2 * base
  for res in (2 ** i for i in range(2, kwargs["resolution"].bit_length())):
    stage = int(np.log2(res)) - 1
    theirs = int(np.clip(int(base / 2.0 ** (stage * decay)), lowest, highest))
    if theirs != min(channel_base // res, highest):
      raise unsupported(f"{kwargs.path}.fmap_decay, fmap_min",
                        (decay, lowest), "ours halve the width at each "
                        "doubled resolution down to any width (fmap_decay "
                        "1, fmap_min not reached)")
  return channel_base, highest


def _check_shared(kwargs: Kwargs) -> None:
  kwargs.expect("label_size", (0,), "conditional TensorFlow StyleGAN2 "
                "networks are not converted (NVlabs/stylegan2's published "
                "ones are unconditional)")
  networks.check_layers(kwargs, "nonlinearity", "resample_kernel")


def _generator_fields(g: Module) -> Fields:
  kwargs = _kwargs(g, "Gs", _G_DEFAULTS)
  _check_shared(kwargs)
  kwargs.expect("synthesis_func", ("G_synthesis_stylegan2",), "ours is "
                "StyleGAN2's synthesis network (config-e and -f), not the "
                "progressive configs A-D")
  kwargs.expect("mapping_func", ("G_mapping",), "ours is G_mapping")
  kwargs.expect("architecture", ("skip",), "our StyleGAN2 generator is "
                "StyleGAN2's 'skip' one (its images summed over resolutions)")
  kwargs.expect("use_noise", (True,), "ours add noise to every layer")
  kwargs.expect("normalize_latents", (True,), "ours normalize z")
  kwargs.expect("mapping_nonlinearity", ("lrelu",), "ours use leaky ReLU")
  if any(re.match(r"synthesis/ToRGB_lod", name) for name in g.params):
    raise UnsupportedNetwork("Gs has ToRGB_lod variables: a progressive "
                             "StyleGAN2 (configs A-D), which ours is not")
  w_dim, layers = kwargs["dlatent_size"], kwargs["mapping_layers"]
  if layers > 1 and kwargs["mapping_fmaps"] != w_dim:
    raise unsupported("Gs.mapping_fmaps", kwargs["mapping_fmaps"],
                      f"our mapping layers are dlatent_size ({w_dim}) wide")
  beta = kwargs.values.get("w_avg_beta", kwargs["dlatent_avg_beta"])
  if beta is None:
    raise unsupported("Gs.dlatent_avg_beta", None,
                      "ours track w_avg (truncation needs it)")
  channel_base, channel_max = _widths(kwargs)
  return {
      "architecture": "stylegan2", "image_size": kwargs["resolution"],
      "channels": kwargs["num_channels"],
      "latent_dim": kwargs["latent_size"], "num_classes": 0, "w_dim": w_dim,
      "mapping_layers": layers,
      "mapping_lr_multiplier": float(kwargs["mapping_lrmul"]),
      "w_avg_beta": float(beta), "channel_base": channel_base,
      "channel_max": channel_max, "num_fp16_res": kwargs["num_fp16_res"],
      "conv_clamp": float(kwargs["conv_clamp"] or 0),
      # The minibatch groups of StyleGAN2's D (docs/convert.md).
      "mbstd_groups": "strided",
  }


def _discriminator_fields(d: Module, fields: Fields) -> Fields:
  kwargs = _kwargs(d, "D", _D_DEFAULTS)
  _check_shared(kwargs)
  if d.class_name != "D_stylegan2":
    raise unsupported("D's build function", d.class_name,
                      "ours is StyleGAN2's D_stylegan2")
  kwargs.expect("architecture", ("resnet", "orig"), "our D is StyleGAN2's "
                "'resnet' or 'orig' one")
  for name, ours in (("resolution", fields["image_size"]),
                     ("num_channels", fields["channels"]),
                     ("num_fp16_res", fields["num_fp16_res"])):
    if kwargs[name] != ours:
      raise unsupported(kwargs.name(name), kwargs[name], "ours has one value "
                        f"for G and D, and Gs's is {ours!r}")
  if (kwargs["conv_clamp"] or 0) != fields["conv_clamp"]:
    raise unsupported("D.conv_clamp", kwargs["conv_clamp"], "ours has one "
                      f"value for G and D, and Gs's is {fields['conv_clamp']}")
  if _widths(kwargs) != (fields["channel_base"], fields["channel_max"]):
    raise unsupported("D.fmap_base, fmap_max",
                      (kwargs["fmap_base"], kwargs["fmap_max"]),
                      "ours has one width per resolution for G and D")
  group = kwargs["mbstd_group_size"]
  if group is None or group < 2:
    raise unsupported("D.mbstd_group_size", group, "ours always has the "
                      "minibatch standard deviation layer, in groups of 2 "
                      "or more")
  return {"mbstd_group": group,
          "mbstd_features": kwargs["mbstd_num_features"],
          "d_architecture": kwargs["architecture"]}


def _infer(found: networks.Networks) -> Fields:
  fields = _generator_fields(found.get("Gs") or found["G"])
  if "D" in found:
    fields.update(_discriminator_fields(found["D"], fields))
  return fields


# --- the variables as StyleGAN2-ADA's parameters ------------------------------


def _conv(weight: np.ndarray) -> np.ndarray:
  """TensorFlow's [kh, kw, in, out] -> PyTorch's [out, in, kh, kw]."""
  return np.transpose(weight, (3, 2, 0, 1))


_same = lambda a: a  # pylint: disable=unnecessary-lambda-assignment

# A variable of a synthesis layer: its scope -> (StyleGAN2-ADA's layer, how
# its weight converts); the up-sampling convolution runs transposed there
# and as a correlation here, so its kernel is flipped (as legacy.py does).
_SYNTHESIS_LAYERS = {
    "Conv": ("conv1", _conv), "Conv0_up": ("conv0",
                                           lambda a: _conv(a[::-1, ::-1])),
    "Conv1": ("conv1", _conv), "ToRGB": ("torgb", _conv),
}
_SYNTHESIS_VARIABLES = {
    "weight": ("weight", None), "bias": ("bias", _same),
    "noise_strength": ("noise_strength", _same),
    "mod_weight": ("affine.weight", np.transpose),
    "mod_bias": ("affine.bias", lambda a: a + 1),
}


def _generator_variable(name: str) -> tuple[str, Callable] | None:
  """A G variable's StyleGAN2-ADA name and conversion; None: not a
  parameter (G_main's 'lod', its progressive level)."""
  if name == "lod":
    return None
  if name == "dlatent_avg":
    return "mapping.w_avg", _same
  match = re.fullmatch(r"mapping/Dense(\d+)/(weight|bias)", name)
  if match:
    return (f"mapping.fc{match[1]}.{match[2]}",
            np.transpose if match[2] == "weight" else _same)
  if name == "synthesis/4x4/Const/const":
    return "synthesis.b4.const", lambda a: a[0]
  match = re.fullmatch(r"synthesis/noise(\d+)", name)
  if match:
    # Layer i is at resolution 2 ** ((i + 5) // 2): the up-sampling one of
    # its block for odd i, the second for even i (the 4x4 one for i = 0).
    index = int(match[1])
    res = 2 ** ((index + 5) // 2)
    layer = "conv0" if index % 2 else "conv1"
    return f"synthesis.b{res}.{layer}.noise_const", lambda a: a[0, 0]
  match = re.fullmatch(r"synthesis/(\d+)x\1/(\w+)/(\w+)", name)
  if match and match[2] in _SYNTHESIS_LAYERS and (
      match[3] in _SYNTHESIS_VARIABLES):
    layer, convert_weight = _SYNTHESIS_LAYERS[match[2]]
    suffix, convert = _SYNTHESIS_VARIABLES[match[3]]
    return (f"synthesis.b{match[1]}.{layer}.{suffix}",
            convert or convert_weight)
  raise weights.WeightMismatch(
      f"Gs: the variable {name} has no place in our network")


def _discriminator_variable(name: str) -> tuple[str, Callable]:
  """A D variable's StyleGAN2-ADA name and conversion."""
  scopes = {"4x4/Conv": "b4.conv", "4x4/Dense0": "b4.fc", "Output": "b4.out"}
  match = re.fullmatch(r"(.+)/(weight|bias)", name)
  scope, kind = (match[1], match[2]) if match else (name, "")
  dense = scope in ("4x4/Dense0", "Output")
  if scope in scopes:
    ours = scopes[scope]
  else:
    block = re.fullmatch(r"(\d+)x\1/(FromRGB|Conv0|Conv1_down|Skip)", scope)
    if not block or not kind:
      raise weights.WeightMismatch(
          f"D: the variable {name} has no place in our network")
    layer = {"FromRGB": "fromrgb", "Conv0": "conv0", "Conv1_down": "conv1",
             "Skip": "skip"}[block[2]]
    ours = f"b{block[1]}.{layer}"
  if kind == "bias":
    return f"{ours}.bias", _same
  return f"{ours}.weight", np.transpose if dense else _conv


def as_stylegan2_ada(module: Module, network: str) -> dict[str, np.ndarray]:
  """The TensorFlow network's variables as StyleGAN2-ADA's parameters.

  Raises:
    weights.WeightMismatch: a variable that has no place in ours.
  """
  rename = (_discriminator_variable if network == "D"
            else _generator_variable)
  params = {}
  for name, value in module.params.items():
    found = rename(name)
    if found:
      ours, convert = found
      params[ours] = np.array(convert(np.asarray(value)), order="C")
  return params


networks.FORMATS.register("stylegan2-tf")(networks.Format(
    title="StyleGAN2 (TensorFlow 1, NVlabs/stylegan2)",
    infer=_infer,
    load_generator=lambda model, module, fields: weights.stylegan2_generator(
        model, as_stylegan2_ada(module, "G")),
    load_discriminator=lambda model, module, fields: (
        weights.stylegan2_discriminator(
            model, as_stylegan2_ada(module, "D"), fields["image_size"])),
    sources={"G": ("G", "Gs"), "D": ("D",), "G_ema": ("Gs", "G")}))
