"""Tests of `python -m trainer.convert` on pickles in the reference layouts.

Each StyleGAN2 and R3GAN case of tests/fixtures/reference
(tests/models/reference.py) is written as the snapshot its training loop
pickles (tests/convert/writers.py), with G_ema the case's networks and G
the same halved; a real process converts it, and the workdir, loaded as
trainer.apply loads a run, computes the case's outputs. No torch.
"""

import copy
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import (
    PROCESS_TIMEOUT_SECONDS, REPO, assert_ended_with_line, cpu_strategy,
    load_config, run_command)
from tests.convert import writers
from tests.models import reference
from trainer.apply import run as run_lib
from trainer.convert import conversion
from trainer.convert import networks
from trainer.errors import UserError
from trainer import state as state_lib

_G_SCALE = 0.5  # G's values are G_ema's times this
_FILTERS = ("resample_filter", "Kernel")  # the fixed filters, never scaled


def _snapshot(name: str, without: str = "", **changes) -> dict:
  """The case's snapshot; `changes` (a path of the reference's kwargs, as
  'D.kwargs.architecture', -> value) alter what its networks record, and
  the parameters whose names (G.*, D.*) start with `without` are left out."""
  data, config = reference.case(name)
  config = copy.deepcopy(config)
  for path, value in changes.items():
    *parents, leaf = path.split(".")
    node = config
    for key in parents:
      node = node.setdefault(key, {})
    node[leaf] = value
  tf1 = config.get("tf1")
  read = reference.tf1_variables if tf1 else reference.params
  g_ema, d = ({key: value for key, value in read(data, network).items()
               if not without or not f"{network}.{key}".startswith(without)}
              for network in ("G", "D"))
  g = {key: value if key.endswith(_FILTERS) else value * _G_SCALE
       for key, value in g_ema.items()}
  if tf1:
    # The style bias is stored less one: halved as PyTorch's, it is this.
    g = {key: (value + 1) * _G_SCALE - 1 if key.endswith("mod_bias")
         else value * _G_SCALE for key, value in g_ema.items()}
    return writers.stylegan2_tf1_snapshot(
        g, d, tf1["G_static_kwargs"], tf1["D_static_kwargs"], gs=g_ema)
  if config["family"] == "stylegan2":
    return writers.stylegan2_ada_snapshot(
        g, d, config["G"]["kwargs"], config["D"]["kwargs"], g_ema=g_ema)
  kwargs = config["G"]["kwargs"]
  return writers.r3gan_snapshot(
      g, d, z_dim=kwargs["NoiseDimension"], c_dim=kwargs["c_dim"],
      img_resolution=kwargs["img_resolution"], g_ema=g_ema)


def _convert(*args: str, cwd: pathlib.Path = REPO) -> tuple[int, str, str]:
  """python -m trainer.convert <args> in a real process, in `cwd`, of this
  checkout's trainer: (code, stdout, stderr)."""
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
  process = subprocess.run(
      [sys.executable, "-m", "trainer.convert", *args], cwd=cwd, env=env,
      capture_output=True, text=True, timeout=PROCESS_TIMEOUT_SECONDS,
      check=False)
  return process.returncode, process.stdout, process.stderr


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, pathlib.Path]:
  """Each case's workdir, as `create` wrote it."""
  workdirs = {}
  for name in reference.STYLEGAN2 + reference.TF1 + reference.R3GAN:
    directory = tmp_path_factory.mktemp(name)
    path = writers.write(directory, _snapshot(name))
    workdirs[name] = directory / "workdir"
    code, out, err = _convert("create", f"--pickle={path}",
                              f"--workdir={workdirs[name]}")
    assert code == 0, err[-3000:]
    assert out.startswith(f"wrote {workdirs[name]}: config.json and "), out
  return workdirs


@pytest.mark.slow
@pytest.mark.parametrize("name",
                         reference.STYLEGAN2 + reference.TF1 + reference.R3GAN)
def test_converted_workdir_computes_the_reference(converted, name):
  data, config = reference.case(name)
  run = run_lib.load(str(converted[name]), cpu_strategy(1))

  assert (run.step, pathlib.Path(run.checkpoint).name) == (0, "ckpt-0")
  model = run.config.model
  assert {k: model[k] for k in config["trainer_model"]} == (
      config["trainer_model"])
  if config["family"] == "stylegan2":
    d_kwargs = config["D"]["kwargs"]
    assert (model.mbstd_groups, model.d_architecture,
            model.d_mapping_layers) == (
                "strided", d_kwargs["architecture"],
                d_kwargs["mapping_kwargs"]["num_layers"])
    reference.assert_stylegan2_generator(run.state.generator_ema, data,
                                         config)
  else:
    reference.assert_r3gan_generator(run.state.generator_ema, data, config)
  reference.assert_discriminator(run.state.discriminator, data, config)
  # G is the pickle's G, not its G_ema.
  for ours, ema in zip(run.state.generator.variables,
                       run.state.generator_ema.variables):
    np.testing.assert_allclose(ours.numpy(), _G_SCALE * ema.numpy(),
                               rtol=1e-6, err_msg=ours.path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stylegan2_r32_cond", "r3gan_r16_uncond"])
def test_apply_samples_from_a_converted_workdir(converted, name, tmp_path):
  code, out, err = run_command(
      sys.executable, "-m", "trainer.apply", "sample",
      f"--workdir={converted[name]}", "--num=4", f"--output_dir={tmp_path}")

  assert code == 0, err[-3000:]
  assert '"step": 0' in out
  assert len(list(tmp_path.glob("images/*.png"))) == 4


@pytest.mark.slow
def test_inspect_prints_kind_and_fields_and_writes_nothing(tmp_path):
  pickle_dir, cwd = tmp_path / "pickle", tmp_path / "cwd"
  pickle_dir.mkdir()
  cwd.mkdir()
  path = writers.write(pickle_dir, _snapshot("stylegan2_r32_cond"))

  code, out, err = _convert("inspect", f"--pickle={path}", cwd=cwd)

  assert code == 0, err[-3000:]
  lines = out.splitlines()
  assert lines[0] == (f"{path}: a network pickle of StyleGAN2 "
                      "(StyleGAN2-ADA's, or StyleGAN3's --cfg=stylegan2) "
                      "(kind stylegan2-ada)")
  for line in ("  model.architecture=stylegan2", "  model.image_size=32",
               "  model.num_classes=5", "  model.w_dim=16",
               "  model.mapping_layers=2", "  model.channel_base=256",
               "  model.conv_clamp=256.0", "  model.mbstd_groups=strided",
               "  G     <- G", "  D     <- D", "  G_ema <- G_ema"):
    assert line in lines, line
  assert any(line.startswith("  augment_pipe: ") for line in lines)
  assert list(cwd.iterdir()) == []
  assert list(pickle_dir.iterdir()) == [pathlib.Path(path)]


@pytest.mark.slow
def test_an_existing_workdir_is_refused_and_left_alone(tmp_path):
  path = writers.write(tmp_path, _snapshot("r3gan_r16_uncond"))
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "notes.txt").write_text("mine")

  code, _, err = _convert("create", f"--pickle={path}", f"--workdir={workdir}")

  line = (f"error: --workdir={workdir} exists and is not an empty directory; "
          "trainer.convert writes a new workdir and leaves existing ones "
          "alone: pass a new directory")
  assert_ended_with_line(code, err, 1, line)
  assert err.strip().splitlines() == [line]
  assert [p.name for p in workdir.iterdir()] == ["notes.txt"]
  assert (workdir / "notes.txt").read_text() == "mine"


def _truncated(directory: pathlib.Path) -> tuple[str, str]:
  path = writers.write(directory, _snapshot("stylegan2_r16_uncond"))
  data = pathlib.Path(path).read_bytes()
  pathlib.Path(path).write_bytes(data[:len(data) // 2])
  return path, f"error: cannot read network pickle {path}: it is truncated"


def _planted(directory: pathlib.Path) -> tuple[str, str]:
  marker = directory / "ran"
  snapshot = _snapshot("stylegan2_r16_uncond")
  snapshot["augment_pipe"] = writers.Run(exec, f"open({str(marker)!r}, "
                                         "'w').close()")
  path = writers.write(directory, snapshot)
  return path, (f"error: network pickle {path} names the global "
                "builtins.exec, which is refused")


def _g_resnet(directory: pathlib.Path) -> tuple[str, str]:
  path = writers.write(directory, _snapshot(
      "stylegan2_r16_uncond_gresnet_dorig"))
  return path, ("error: G.synthesis_kwargs.architecture='resnet' cannot be "
                "converted: our StyleGAN2 generator is StyleGAN2's 'skip' "
                "one")


@pytest.mark.slow
@pytest.mark.parametrize("make", [_truncated, _planted, _g_resnet],
                         ids=["truncated", "planted global", "G resnet"])
def test_a_pickle_that_does_not_convert_is_one_error_line(tmp_path, make):
  path, start = make(tmp_path)
  workdir = tmp_path / "run"

  code, _, err = _convert("create", f"--pickle={path}", f"--workdir={workdir}")

  assert code == 1 and "Traceback" not in err, err[-3000:]
  assert len(err.strip().splitlines()) == 1, err
  assert err.startswith(start), err
  assert not workdir.exists()
  assert not (tmp_path / "ran").exists()


def _plan(directory: pathlib.Path, snapshot) -> conversion.Plan:
  path = writers.write(directory, snapshot)
  return conversion.plan_of(*conversion.read(path))


@pytest.mark.parametrize("name, changes, message", [
    ("stylegan2_r16_uncond_gresnet_dorig", {},
     "G.synthesis_kwargs.architecture='resnet' cannot be converted"),
    ("stylegan2_r16_uncond", {"D.kwargs.architecture": "skip"},
     "D.architecture='skip' cannot be converted: our D is StyleGAN2's "
     "'resnet' or 'orig' one"),
    ("stylegan2_r16_uncond", {"D.kwargs.channel_base": 512},
     "D.channel_base=512 cannot be converted: ours has one value for G and "
     "D, and G.synthesis_kwargs.channel_base is 256"),
    ("stylegan2_r16_uncond", {"D.kwargs.conv_clamp": 256},
     "D.conv_clamp=256 cannot be converted: ours has one value for G and D, "
     "and G.synthesis_kwargs.conv_clamp is None"),
    ("stylegan2_r32_cond", {"D.kwargs.cmap_dim": 16},
     r"D.cmap_dim=16 cannot be converted: ours map the label to the width "
     r"at 4x4 \(32\)"),
    ("stylegan2_r32_cond", {"D.kwargs.mapping_kwargs.lr_multiplier": 0.1},
     "D.mapping_kwargs.lr_multiplier=0.1 cannot be converted: ours has one "
     "mapping_lr_multiplier for G and D, and G's is 0.01"),
    ("stylegan2_r32_cond", {"G.kwargs.mapping_kwargs.embed_features": 8},
     r"G.mapping_kwargs.embed_features=8 cannot be converted: ours are w_dim "
     r"\(16\) wide"),
    ("stylegan2_r16_uncond",
     {"D.kwargs.epilogue_kwargs.mbstd_group_size": None},
     "D.epilogue_kwargs.mbstd_group_size=None cannot be converted"),
    ("stylegan2_r16_uncond", {"G.kwargs.synthesis_kwargs.fused": True},
     "G.synthesis_kwargs.fused=True is an argument trainer.convert does not "
     "know"),
], ids=["G resnet", "D skip", "D wider", "D clamped", "cmap_dim",
        "D mapping lr", "embed_features", "whole-batch groups",
        "unknown argument"])
def test_what_ours_cannot_compute_is_named(tmp_path, name, changes, message):
  with pytest.raises(networks.UnsupportedNetwork, match=message):
    _plan(tmp_path, _snapshot(name, **changes))


@pytest.mark.parametrize("without, message", [
    ("G.Model.MainLayers.1.Layers.2.",
     r"G's blocks per resolution=\{4: 2, 8: 1, 16: 2\} cannot be converted: "
     "ours has blocks_per_stage at every resolution"),
    ("D.Model.MainLayers.0.Layers.1.",
     r"D's blocks per resolution=\{4: 2, 8: 2, 16: 1\} cannot be converted: "
     r"ours builds G and D from one config, and G's are \{4: 2, 8: 2, 16: 2\}"),
], ids=["G", "D"])
def test_r3gan_stages_of_different_blocks_are_named(tmp_path, without,
                                                     message):
  with pytest.raises(networks.UnsupportedNetwork, match=message):
    _plan(tmp_path, _snapshot("r3gan_r16_uncond", without=without))


def test_stylegan3_pickles_are_refused_by_name(tmp_path):
  g = {"mapping.w_avg": np.ones(4), "synthesis.input.weight": np.ones(4)}
  d = {"b4.out.weight": np.ones((1, 4))}
  for radial, kind in ((False, "StyleGAN3-T"), (True, "StyleGAN3-R")):
    snapshot = writers.stylegan2_ada_snapshot(
        g, d, dict(z_dim=4, c_dim=0, img_resolution=16,
                   use_radial_filters=radial), {})
    with pytest.raises(networks.UnsupportedNetwork,
                       match=f"this is a {kind} network .* only "
                       "StyleGAN2-type networks"):
      _plan(tmp_path, snapshot)


_G_TF = "tf1.G_static_kwargs."


@pytest.mark.parametrize("changes, message", [
    ({f"{_G_TF}label_size": 5}, "Gs.label_size=5 cannot be converted: "
     "conditional TensorFlow StyleGAN2 networks are not converted"),
    ({f"{_G_TF}synthesis_func": "G_synthesis_stylegan_revised"},
     "Gs.synthesis_func='G_synthesis_stylegan_revised' cannot be converted: "
     ".* not the progressive configs A-D"),
    ({f"{_G_TF}architecture": "resnet"},
     "Gs.architecture='resnet' cannot be converted: our StyleGAN2 generator "
     "is StyleGAN2's 'skip' one"),
    ({f"{_G_TF}mapping_fmaps": 512}, r"Gs.mapping_fmaps=512 cannot be "
     r"converted: our mapping layers are dlatent_size \(16\) wide"),
    ({f"{_G_TF}fmap_decay": 0.5}, r"Gs.fmap_decay, fmap_min=\(0.5, 1\) "
     "cannot be converted"),
    ({"tf1.D_static_kwargs.mbstd_group_size": 0}, "D.mbstd_group_size=0 "
     "cannot be converted: ours always has the minibatch standard deviation "
     "layer"),
    ({"tf1.D_static_kwargs.fmap_max": 16}, r"D.fmap_base, fmap_max=\(128, "
     r"16\) cannot be converted: ours has one width per resolution"),
    ({f"{_G_TF}blur_filter": [1, 2, 1]}, r"Gs.blur_filter=\[1, 2, 1\] is an "
     "argument trainer.convert does not know; it converts the networks of "
     "NVlabs/stylegan2's training/networks_stylegan2.py"),
], ids=["conditional", "progressive", "G resnet", "wide mapping",
        "fmap_decay", "no minibatch layer", "D narrower", "unknown argument"])
def test_tensorflow_stylegan2_that_ours_cannot_compute_is_named(
    tmp_path, changes, message):
  with pytest.raises(networks.UnsupportedNetwork, match=message):
    _plan(tmp_path, _snapshot("stylegan2_tf1_r16", **changes))


def test_tensorflow_stylegan2_reads_with_the_tensorflow_defaults(tmp_path):
  # Unrecorded, D's minibatch groups are the TensorFlow code's 4 (legacy.py
  # reads the whole batch) and the mapping's width its 512.
  snapshot = _snapshot("stylegan2_tf1_r16")
  gs, d = snapshot[2].state["static_kwargs"], snapshot[1].state[
      "static_kwargs"]
  del d["mbstd_group_size"]
  plan = _plan(tmp_path, snapshot)
  assert (plan.kind, plan.fields["mbstd_group"],
          plan.fields["mbstd_groups"]) == ("stylegan2-tf", 4, "strided")
  assert plan.sources == {"G": "G", "D": "D", "G_ema": "Gs"}
  del gs["mapping_fmaps"]
  with pytest.raises(networks.UnsupportedNetwork,
                     match=r"Gs.mapping_fmaps=512 cannot be converted"):
    _plan(tmp_path, snapshot)


def _stylegan3_layout(name: str) -> dict:
  """The case as StyleGAN3's networks_stylegan2 records it: the synthesis
  arguments flat in G's, and a setting of speed alone."""
  _, config = reference.case(name)
  g_kwargs = dict(config["G"]["kwargs"])
  g_kwargs.update(g_kwargs.pop("synthesis_kwargs"),
                  fused_modconv_default="inference_only")
  return {"G.kwargs": g_kwargs}


def test_stylegan3_layout_of_stylegan2_converts_with_its_defaults(tmp_path):
  _, config = reference.case("stylegan2_r32_cond")
  changes = _stylegan3_layout("stylegan2_r32_cond")
  plan = _plan(tmp_path, _snapshot("stylegan2_r32_cond", **changes))
  assert {k: plan.fields[k] for k in config["trainer_model"]} == (
      config["trainer_model"])
  conversion.check(plan)
  # Its defaults are StyleGAN3's: fp16 in the top 4 resolutions, clamp 256.
  for key in ("num_fp16_res", "conv_clamp"):
    del changes["G.kwargs"][key]
  changes["D.kwargs.num_fp16_res"] = 4
  plan = _plan(tmp_path, _snapshot("stylegan2_r32_cond", **changes))
  assert (plan.fields["num_fp16_res"], plan.fields["conv_clamp"],
          plan.fields["w_avg_beta"]) == (4, 256.0, 0.995)


def test_a_pickle_of_g_ema_alone_gives_g_and_g_ema(tmp_path):
  snapshot = _snapshot("stylegan2_r16_uncond")
  del snapshot["G"], snapshot["D"]
  plan = _plan(tmp_path, snapshot)

  assert plan.sources == {"G": "G_ema", "G_ema": "G_ema"}
  # D's fields are the architecture's defaults; G's the pickle's.
  assert (plan.config.model.d_architecture, plan.config.model.mbstd_group,
          plan.config.model.mapping_layers) == ("resnet", 4, 2)
  conversion.check(plan)
  lines = conversion.describe(plan).splitlines()
  assert "  G     <- G_ema" in lines
  assert ("  D     <- nothing (the pickle has no D): the config's D, with "
          "random weights") in lines


def test_a_write_that_fails_half_way_leaves_no_workdir(tmp_path,
                                                      monkeypatch):
  plan = _plan(tmp_path, _snapshot("r3gan_r16_uncond"))
  workdir = tmp_path / "run"

  def fail(path, data):
    del path, data
    raise OSError("disk full")

  monkeypatch.setattr(conversion.files, "write_atomically", fail)
  with pytest.raises(OSError, match="disk full"):
    conversion.create(plan, str(workdir), cpu_strategy(1))
  assert not workdir.exists()


@pytest.mark.parametrize("name", ["stylegan2_r16_uncond", "r3gan_r32_cond"])
def test_init_from_a_pickle_starts_the_networks_from_it(name, tmp_path):
  # init.from=<pickle>: G from its G, D from its D, G_ema from its G_ema,
  # loaded into a new run's state without a workdir of the pickle's.
  data, config = reference.case(name)
  path = writers.write(tmp_path, _snapshot(name))
  fields = {f"model.{k}": v for k, v in config["trainer_model"].items()}
  if config["family"] == "stylegan2":
    fields["model.mbstd_groups"] = "strided"
  run = load_config(**fields, **{"init.from": path})
  state = state_lib.build_state(run, cpu_strategy(1))
  conversion.warm_start(state, run, path)
  reference_check = (reference.assert_stylegan2_generator
                     if config["family"] == "stylegan2"
                     else reference.assert_r3gan_generator)
  reference_check(state.generator_ema, data, config)
  reference.assert_discriminator(state.discriminator, data, config)
  for ours, ema in zip(state.generator.trainable_variables,
                       state.generator_ema.trainable_variables):
    np.testing.assert_allclose(ours.numpy(), ema.numpy() * _G_SCALE,
                               rtol=1e-6)
  assert state.step.numpy() == 0
  # A config of another model is named, with the field.
  size = config["trainer_model"]["image_size"]
  other = load_config(**{**fields, "model.image_size": 2 * size,
                         "init.from": path})
  state = state_lib.build_state(other, cpu_strategy(1))
  with pytest.raises(UserError, match=r"holds another model: model.image_"
                     rf"size is {size} there and {2 * size} here"):
    conversion.warm_start(state, other, path)
