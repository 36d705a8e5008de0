"""The config resolver: defaults of later fields, and bad values refused
with one message before anything is written; the saved config.json of every
version, migrated to today's layout."""

import hashlib
import itertools
import json
import shutil
import sys

import ml_collections
import pytest

from tests.conftest import (REPO, assert_ended_with_line, cpu_strategy,
                            load_config, run_command, smoke_flags)
from trainer import config as config_lib
from trainer.errors import UserError
from trainer import loop
from trainer.models import ARCHITECTURES

TINY = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 8}


def test_resolving_twice_changes_nothing():
  once = load_config()
  assert config_lib.resolve(once).to_dict() == once.to_dict()


def _resolved(saved: dict) -> ml_collections.ConfigDict:
  """A saved config as the readers of config.json see it."""
  return config_lib.resolve(
      ml_collections.ConfigDict(config_lib.migrate_saved(saved)))


def test_a_config_saved_before_penalties_and_augmentation_resolves():
  # A run's config.json from before them: wgan_gp with its weight in
  # model.gp_weight, no penalties or augment sections, no spectral norm.
  old = load_config(resolved=False).to_dict()
  for section in ("penalties", "augment"):
    del old[section]
  for field in ("d_spectral_norm", "g_spectral_norm"):
    del old["model"][field]
  del old["data"]["on_bad_image"]
  old["model"].update(loss="wgan_gp", gp_weight=5.0)
  resolved = _resolved(old)
  assert resolved.penalties.names == "gp"  # the loss's own penalty
  assert resolved.penalties.gp.weight == 5.0
  assert resolved.augment.name == ""
  assert not resolved.model.d_spectral_norm
  assert resolved.data.on_bad_image == "stop"


FIXTURES = REPO / "tests" / "fixtures" / "configs"
# config.json files that today's code wrote before config.json had a
# version (trainer.config.to_json of the resolved config), and the config
# file and variant of each.
SAVED_TODAY = {
    "dcgan_mnist": ("dcgan_mnist", None),
    "cgan_mnist": ("cgan_mnist", None),
    "stylegan2_smoke": ("stylegan2", "smoke"),
    "stylegan2_mnist32": ("stylegan2", "mnist32"),
    "r3gan_smoke": ("r3gan", "smoke"),
}


def _saved(name: str) -> dict:
  return json.loads((FIXTURES / f"{name}.json").read_text())


def _round_trip(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Written as config.json is, read back and resolved."""
  return _resolved(json.loads(config_lib.to_json(config)))


@pytest.mark.parametrize("name", SAVED_TODAY)
def test_a_config_json_of_today_migrates_to_its_config_files_config(
    name, tmp_path):
  file, variant = SAVED_TODAY[name]
  config = config_lib.resolve(
      config_lib.from_file(str(REPO / "configs" / f"{file}.py"), variant))
  saved = _saved(name)
  # The layout of today's configs at the time, but for the fields that
  # StyleGAN2's D gained since, at the values it trained with.
  added = ({"d_architecture": "resnet", "mbstd_groups": "consecutive",
            "d_mapping_layers": 8} if file == "stylegan2" else {})
  expected = {**saved, "model": {**saved["model"], **added}}
  assert config_lib.migrate_saved(saved) == expected
  migrated = _resolved(saved)
  assert migrated.to_dict() == config.to_dict()
  assert _round_trip(migrated).to_dict() == migrated.to_dict()
  shutil.copy(FIXTURES / f"{name}.json", tmp_path / "config.json")
  config_lib.check_compatible(config, str(tmp_path))


def test_a_config_json_of_old_layouts_migrates_as_it_trained():
  # Hand-written, in the layouts the code once wrote: wgan_gp's weight in
  # model.gp_weight and no penalties section; ADA's p moved linearly
  # (augment.p_mode=linear, p_end, p_kimg) and no schedules; none of the
  # fields added since.
  saved = _saved("old_layout")
  migrated = config_lib.migrate_saved(saved)
  assert "gp_weight" not in migrated["model"]
  assert not {"p_end", "p_kimg"} & set(migrated["augment"])
  resolved = _resolved(saved)
  assert resolved.penalties.names == "gp"
  assert (resolved.penalties.gp.weight, resolved.penalties.gp.interval) == (
      5.0, 1)
  assert resolved.augment.p_mode == "fixed"
  assert resolved.augment.p == 0.1
  assert resolved.schedules.augment.p == "linear(0.5, 40.0)"
  assert (resolved.model.num_classes, resolved.model.ema_kimg) == (0, 0.0)
  assert not (resolved.model.d_spectral_norm or resolved.model.g_spectral_norm
              or resolved.train.simultaneous or resolved.train.eval_at_start)
  assert resolved.data.on_bad_image == "stop"
  assert _round_trip(resolved).to_dict() == resolved.to_dict()


def test_a_workdir_of_old_layouts_is_told_apart_by_its_model(tmp_path):
  shutil.copy(FIXTURES / "old_layout.json", tmp_path / "config.json")
  # The default config has the saved run's model (none of the fields added
  # since changes it).
  config_lib.check_compatible(load_config(None), str(tmp_path))
  with pytest.raises(UserError, match=(
      "model.d_spectral_norm: saved False, now True")):
    config_lib.check_compatible(
        load_config(None, **{"model.d_spectral_norm": True}), str(tmp_path))


def test_config_json_holds_the_version_and_reads_back(tmp_path):
  config = load_config()
  config_lib.log_and_write(config, str(tmp_path), write=True)
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["version"] == config_lib.VERSION
  assert config_lib.read_saved(str(tmp_path)) == config.to_dict()


def test_a_config_json_of_a_newer_version_is_refused_in_one_line(tmp_path):
  saved = json.loads(config_lib.to_json(load_config()))
  saved["version"] = config_lib.VERSION + 1
  path = tmp_path / "config.json"
  path.write_text(json.dumps(saved))
  with pytest.raises(UserError) as error:
    config_lib.check_compatible(load_config(), str(tmp_path))
  assert str(error.value) == (
      f"cannot read the saved config {path}: it is of config version "
      f"{config_lib.VERSION + 1}, and this code reads versions up to "
      f"{config_lib.VERSION}: a newer version of the trainer wrote it")


def test_an_unknown_schedule_is_refused_with_the_valid_ones():
  config = load_config(resolved=False)
  config.schedules.optim["momentum"] = "linear(0.1, 10)"
  with pytest.raises(UserError, match=(
      "schedules.optim.momentum is not a schedulable value; valid: "
      "optim.g_lr, optim.d_lr, optim.beta1, optim.beta2, model.ema_decay")):
    config_lib.resolve(config)


def test_wgan_gp_adds_gp_once():
  assert load_config(**{"model.loss": "wgan_gp"}).penalties.names == "gp"
  assert load_config(**{"model.loss": "wgan_gp",
                        "penalties.names": "r1,gp"}).penalties.names == "r1,gp"


_BAD = [
    ({"model.loss": "lsgan"},
     "unknown loss 'lsgan' in model.loss; valid: hinge, minimax, "
     "non_saturating, rpgan, wgan, wgan_gp"),
    ({"penalties.names": "r1,r3"},
     "unknown penalty 'r3' in penalties.names; valid: gp, pl, r1, r2"),
    ({"penalties.names": "r1, r2,r1"},
     "penalties.names='r1, r2,r1' names r1 more than once"),
    ({"penalties.r1.weight": -1.0},
     r"penalties.r1.weight=-1.0 is out of range; it must be >= 0"),
    ({"penalties.r2.interval": 0},
     "penalties.r2.interval=0 is out of range; it must be >= 1"),
    ({"augment.name": "stylegan"},
     "unknown augmentation 'stylegan' in augment.name; valid: ada, "
     "diffaugment"),
    ({"augment.name": "ada", "augment.groups": "xflip,blur"},
     "unknown group 'blur' of augmentation 'ada' in augment.groups; valid: "
     "aniso, brightness"),
    ({"augment.name": "diffaugment", "augment.groups": "cutout,cutout"},
     "cutout"),
    ({"augment.target": 1.0},
     r"augment.target=1.0 is out of range; it must be in \(0, 1\)"),
    ({"augment.target": 0.0}, r"augment.target=0.0 is out of range"),
    ({"augment.p": 1.5}, r"augment.p=1.5 is out of range; it must be in"),
    ({"augment.p_mode": "cosine"},
     "augment.p_mode='cosine' is not valid; valid: adaptive, fixed"),
    ({"schedules.optim.g_lr": "exp(1e-5, 100)"},
     r"schedules.optim.g_lr='exp\(1e-5, 100\)': unknown kind 'exp'; valid: "
     "linear, cosine"),
    ({"schedules.optim.g_lr": "cosine to 1e-5"},
     r"schedules.optim.g_lr='cosine to 1e-5' is not a schedule; write "
     r"kind\(end, kimg\)"),
    ({"schedules.optim.g_lr": "linear(1e-5, lots)"}, "is not a schedule"),
    ({"schedules.optim.d_lr": "linear(1e-5, 0)"},
     r"schedules.optim.d_lr='linear\(1e-5, 0\)': kimg=0 is out of range; "
     "it must be > 0"),
    ({"schedules.optim.beta2": "linear(1.0, 100)"},
     r"schedules.optim.beta2='linear\(1.0, 100\)' ends out of range: "
     r"optim.beta2=1.0 is out of range; it must be in \[0, 1\)"),
    ({"schedules.penalties.r1.weight": "cosine(-0.5, 10)"},
     "ends out of range: penalties.r1.weight=-0.5 is out of range"),
    ({"schedules.augment.p": "linear(0.5, 100)"},
     "schedules.augment.p is set, but augment.p_mode='adaptive' moves p by "
     "its own rule; set augment.p_mode=fixed"),
    ({"model.ema_kimg": 10.0, "schedules.model.ema_decay": "linear(0.9, 1)"},
     "schedules.model.ema_decay is set, but G_ema has a half-life in images"),
    ({"model.ema_kimg": -1.0}, "model.ema_kimg=-1.0 is out of range"),
    ({"augment.interval": 0}, "augment.interval=0 is out of range"),
    ({"augment.speed_kimg": 0.0}, "augment.speed_kimg=0.0 is out of range"),
    ({"model.architecture": "resnet"},
     "unknown architecture 'resnet' in model.architecture; valid: dcgan"),
    ({"model.d_width": 0}, "model.d_width=0 is out of range"),
    ({"data.on_bad_image": "ignore"},
     "data.on_bad_image='ignore' is not valid; valid: stop, skip"),
]


@pytest.mark.parametrize("overrides,message", _BAD,
                         ids=[next(iter(o)) + "=" + str(next(iter(o.values())))
                              for o, _ in _BAD])
def test_a_bad_value_is_refused_by_name(overrides, message):
  with pytest.raises(UserError, match=message):
    load_config(**overrides)


def _snapshot(directory) -> dict[str, str]:
  return {str(p.relative_to(directory)): hashlib.sha256(
      p.read_bytes()).hexdigest()
          for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
  """A workdir with a finished run's checkpoints (2 steps)."""
  workdir = tmp_path_factory.mktemp("trained")
  loop.run(load_config(**TINY, **{
      "data.source": f"idx:{mnist_dir}", "data.split": "test",
      "train.steps": 2, "train.checkpoint_every": 1}), str(workdir),
            cpu_strategy(1))
  return workdir


@pytest.mark.parametrize("overrides,message", _BAD[:6])
def test_bad_values_leave_a_runs_workdir_alone(overrides, message, trained,
                                               mnist_dir):
  before = _snapshot(trained)
  config = load_config(resolved=False, **TINY, **{
      "data.source": f"idx:{mnist_dir}", "data.split": "test",
      "train.steps": 4, **overrides})
  with pytest.raises(UserError, match=message):
    loop.run(config, str(trained), cpu_strategy(1))
  assert _snapshot(trained) == before


@pytest.mark.slow
def test_the_command_line_prints_one_error_line(trained, mnist_dir):
  before = _snapshot(trained)
  code, _, stderr = run_command(
      sys.executable, "-m", "trainer.main", f"--workdir={trained}",
      "--strategy=one_device", *smoke_flags(mnist_dir,
                                            "--config.penalties.names=r1,r1"))
  assert code == 1
  assert stderr.strip().splitlines()[-1] == (
      "error: penalties.names='r1,r1' names r1 more than once; name each once")
  assert _snapshot(trained) == before
  saved = json.loads((trained / "config.json").read_text())
  assert saved["penalties"]["names"] == ""  # the run's own, untouched


def _config_of(architecture: str, **overrides):
  """The smoke config with `architecture`'s defaults (the modern ones at
  32x32)."""
  sized = {} if architecture == "dcgan" else {"model.image_size": 32}
  return load_config(**{"model.architecture": architecture, **sized,
                        **overrides})


@pytest.mark.parametrize("saved,asked",
                         itertools.permutations(ARCHITECTURES.names(), 2))
def test_a_workdir_of_another_architecture_is_named_in_one_line(saved, asked,
                                                                tmp_path):
  (tmp_path / "config.json").write_text(config_lib.to_json(
      _config_of(saved)))
  with pytest.raises(UserError) as error:
    config_lib.check_compatible(_config_of(asked), str(tmp_path))
  assert str(error.value) == (
      f"workdir {tmp_path} holds a run of a different model "
      f"(model.architecture: saved {saved!r}, now {asked!r}). Use another "
      "--workdir, or the same config.")


@pytest.mark.slow
def test_the_command_line_refuses_another_architectures_workdir(trained):
  before = _snapshot(trained)
  code, _, stderr = run_command(
      sys.executable, "-m", "trainer.main", f"--workdir={trained}",
      "--strategy=one_device", "--config=configs/stylegan2.py:smoke")
  assert_ended_with_line(
      code, stderr, 1,
      f"error: workdir {trained} holds a run of a different model "
      "(model.architecture: saved 'dcgan', now 'stylegan2'). Use another "
      "--workdir, or the same config.")
  assert _snapshot(trained) == before


@pytest.mark.parametrize("architecture,field,other", [
    ("dcgan", "g_width", 32), ("dcgan", "d_spectral_norm", True),
    ("stylegan2", "channel_base", 256), ("stylegan2", "w_dim", 64),
    ("r3gan", "blocks_per_stage", 1), ("r3gan", "cardinality", 48)])
def test_a_workdir_of_another_width_is_told_apart(architecture, field, other,
                                                  tmp_path):
  saved = _config_of(architecture)
  (tmp_path / "config.json").write_text(config_lib.to_json(saved))
  config_lib.check_compatible(saved, str(tmp_path))  # the same: accepted
  changed = _config_of(architecture, **{f"model.{field}": other})
  with pytest.raises(UserError, match=(
      f"holds a run of a different model .model.{field}: saved")):
    config_lib.check_compatible(changed, str(tmp_path))
