"""Fine-tuning: a new run's networks from another run (init.from) and
Freeze-D (train.freeze_d), for every family.

Op by op (conftest's `eager`) on one device: what is checked is which
values are copied or trained, not the traced graph (every phase builds its
update with the same Python code, tests/test_step.py traces them).
"""

import logging
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import (TINY_STYLEGAN2, cpu_strategy,
                            functions_run_eagerly, load_config, synthetic_32)
from trainer import checkpoint
from trainer import config as config_lib
from trainer.errors import UserError
from trainer import loop
from trainer import models
from trainer.models import freezing
from trainer import state as state_lib
from trainer import step as step_lib

pytestmark = pytest.mark.usefixtures("eager")

# Tiny networks of each family at 32x32, on synthetic_32's images.
DCGAN = {"model.image_size": 32, "data.resize": True, "model.g_width": 4,
         "model.d_width": 4, "model.latent_dim": 8, "train.batch_size": 4}
STYLEGAN2 = TINY_STYLEGAN2
R3GAN = {"model.architecture": "r3gan", "model.image_size": 32,
         "data.resize": True, "model.channel_base": 128,
         "model.channel_max": 16, "model.cardinality": 4,
         "model.blocks_per_stage": 1, "model.latent_dim": 8,
         "train.batch_size": 4}
# The DCGAN's run of loop.run, on the real digits at 28x28.
TINY = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 8,
        "train.image_every": 100, "train.log_every": 100}


def _d(overrides: dict):
  config = load_config(**overrides)
  _, d = models.ARCHITECTURES.get(config.model.architecture)(config.model,
                                                              "float32")
  return config, d


# Freeze-D ------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [
    DCGAN, {**DCGAN, "model.num_classes": 10, "model.d_spectral_norm": True},
    STYLEGAN2, {**STYLEGAN2, "model.num_classes": 10},
    {**STYLEGAN2, "model.d_architecture": "orig"},
    R3GAN, {**R3GAN, "model.num_classes": 10}],
    ids=["dcgan", "dcgan_conditional_sn", "stylegan2", "stylegan2_conditional",
         "stylegan2_orig", "r3gan", "r3gan_conditional"])
def test_every_layer_of_d_with_weights_is_counted_once(overrides):
  config, d = _d(overrides)
  ordered = freezing.d_layers(config.model, d)
  assert len({id(layer) for layer in ordered}) == len(ordered)
  assert {id(layer) for layer in ordered} == {
      id(layer) for layer in d.layers if layer.trainable_weights}


def test_every_architecture_has_its_ds_order():
  assert freezing.D_LAYERS.names() == models.ARCHITECTURES.names()


def test_stylegan2_counts_as_stylegan2_ada_then_through_the_epilogue():
  config, d = _d({**STYLEGAN2, "model.num_classes": 10})
  assert [layer.name for layer in freezing.d_layers(config.model, d)] == [
      "fromrgb", "conv32_0", "conv32_1", "skip32", "conv16_0", "conv16_1",
      "skip16", "conv8_0", "conv8_1", "skip8", "conv4", "fc", "logits",
      "label_mapping"]


def test_the_label_comes_last_and_the_images_first_in_a_dcgan():
  config, d = _d({**DCGAN, "model.num_classes": 10})
  kinds = [type(layer).__name__ for layer in freezing.d_layers(config.model,
                                                                d)]
  assert kinds == ["Conv2D", "Conv2D", "Dense", "Embedding"]


def _values(variables) -> list[np.ndarray]:
  return [np.array(v.numpy()) for v in variables]


@pytest.mark.parametrize("overrides,freeze", [
    (DCGAN, 1), ({**DCGAN, "train.simultaneous": True}, 2),
    ({**DCGAN, "model.num_classes": 10}, 3),
    # Lazy R1 every other step: its phase (on step 0) freezes them too.
    ({**STYLEGAN2, "penalties.names": "r1", "penalties.r1.interval": 2}, 4),
    (R3GAN, 2), (DCGAN, 3)],
    ids=["dcgan", "dcgan_simultaneous", "dcgan_conditional",
         "stylegan2_lazy_r1", "r3gan", "dcgan_all_of_d"])
def test_freeze_d_trains_all_but_ds_first_layers(overrides, freeze):
  config = load_config(**overrides, **{"train.freeze_d": freeze})
  strategy = cpu_strategy(1)
  state = state_lib.build_state(config, strategy)
  ordered = freezing.d_layers(config.model, state.discriminator)
  frozen = [v for layer in ordered[:freeze] for v in layer.trainable_variables]
  trained = [v for layer in ordered[freeze:]
             for v in layer.trainable_variables]
  before = {"frozen": _values(frozen), "trained": _values(trained)}

  metrics, _ = step_lib.make_train_steps(config, strategy, state,
                                         synthetic_32(), 0)(2)

  assert all(np.array_equal(b, a)
             for b, a in zip(before["frozen"], _values(frozen)))
  # Every kernel of the others moved (a bias may get a zero gradient).
  moved = [not np.array_equal(b, a) for b, a, v in
           zip(before["trained"], _values(trained), trained)
           if "kernel" in v.path or "embeddings" in v.path]
  assert all(moved) and (len(moved) > 0) == (freeze < len(ordered))
  assert (float(metrics["grad_norm/d"]) > 0) == (freeze < len(ordered))


@pytest.mark.parametrize("freeze,words", [
    (4, ["train.freeze_d=4", "dcgan D has 3 layers", "0 to 3"]),
    (-1, ["train.freeze_d=-1", ">= 0"])])
def test_freeze_d_out_of_range_is_refused(freeze, words, tmp_path, mnist_dir):
  config = load_config(**TINY, **{"data.source": f"idx:{mnist_dir}",
                                  "train.freeze_d": freeze}, resolved=False)
  with pytest.raises(UserError) as raised:
    loop.run(config, str(tmp_path / "run"), cpu_strategy(1))
  assert all(word in str(raised.value) for word in words), raised.value
  assert not (tmp_path / "run").exists()


# init.from -----------------------------------------------------------------


def _randomized_source(overrides: dict, workdir) -> state_lib.GanState:
  """A saved run whose networks, optimizers, step and p are all moved."""
  config = load_config(**overrides)
  state = state_lib.build_state(config, cpu_strategy(1))
  rng = np.random.default_rng(1)
  for network in (state.generator, state.discriminator, state.generator_ema):
    for variable in network.variables:
      if "float" in variable.dtype:
        variable.assign(rng.normal(size=variable.shape).astype(
            variable.dtype))
  state.step.assign(7)
  state.augment.p.assign(0.5)
  for optimizer in (state.g_optimizer, state.d_optimizer):
    optimizer.iterations.assign(7)
  config_lib.log_and_write(config, str(workdir), write=True)
  checkpoint.Checkpointer(str(workdir), state.trackables(), keep=1,
                          is_chief=True).save(7)
  return state


def _network_values(state: state_lib.GanState) -> dict[str, list]:
  """Every variable of G, D and G_ema but the dropout's random state."""
  return {name: _values(v for v in getattr(state, name).variables
                        if "seed_generator" not in v.path)
          for name in ("generator", "discriminator", "generator_ema")}


# Batch norm's statistics in G, spectral normalization's vectors.
DCGAN_SN = {**DCGAN, "model.d_spectral_norm": True,
            "model.g_spectral_norm": True}


@pytest.mark.parametrize("overrides,changes", [
    (DCGAN_SN, {}),
    # The optimizers' loss scale is not the networks'.
    (DCGAN_SN, {"runtime.mixed_precision": "mixed_float16"}),
    # w_avg and the constant noise.
    (STYLEGAN2, {}), (R3GAN, {})],
    ids=["dcgan_sn", "dcgan_sn_to_float16", "stylegan2", "r3gan"])
def test_init_from_copies_the_networks_and_nothing_else(overrides, changes,
                                                        tmp_path):
  source = _randomized_source(overrides, tmp_path / "source")
  config = load_config(**{**overrides, **changes,
                          "init.from": str(tmp_path / "source")})
  state = state_lib.build_state(config, cpu_strategy(1))

  path = checkpoint.warm_start(state, config)

  assert path == str(tmp_path / "source" / "checkpoints" / "ckpt-7")
  copied, expected = _network_values(state), _network_values(source)
  for name, values in expected.items():
    assert all(np.array_equal(a, b) for a, b in zip(values, copied[name])), (
        name)
  assert int(state.step.numpy()) == 0
  assert float(state.augment.p.numpy()) == config.augment.p == 0.0
  for optimizer in (state.g_optimizer, state.d_optimizer):
    assert int(optimizer.iterations.numpy()) == 0
    assert all(not np.any(v.numpy()) for v in optimizer.variables
               if "momentum" in v.path or "velocity" in v.path)


@pytest.fixture(scope="module")
def source_run(mnist_dir, tmp_path_factory):
  """(workdir, its config's overrides) of a 2-step DCGAN run."""
  overrides = {**TINY, "data.source": f"idx:{mnist_dir}", "train.steps": 2}
  workdir = tmp_path_factory.mktemp("source")
  with functions_run_eagerly():
    loop.run(load_config(**overrides), str(workdir), cpu_strategy(1))
  return workdir, overrides


def _saved_state(workdir, overrides: dict) -> state_lib.GanState:
  """The state of workdir's latest checkpoint."""
  state = state_lib.build_state(load_config(**overrides), cpu_strategy(1))
  checkpoint.Checkpointer(str(workdir), state.trackables(), keep=1,
                          is_chief=False).restore_latest()
  return state


def _distance(a: list, b: list) -> float:
  return float(np.sqrt(sum(np.sum((x - y)**2) for x, y in zip(a, b))))


def test_a_new_run_starts_from_init_from_and_a_resumed_one_ignores_it(
    source_run, tmp_path, caplog):
  caplog.set_level(logging.INFO)
  caplog.set_level(logging.INFO, logger="absl")
  source, overrides = source_run
  # Another seed: its own initial networks are far from the source's.
  overrides = {**overrides, "seed": 1}
  started = _network_values(_saved_state(source, overrides))["discriminator"]
  fresh = _network_values(state_lib.build_state(
      load_config(**overrides), cpu_strategy(1)))["discriminator"]

  state = loop.run(load_config(**{
      **overrides, "train.steps": 1, "init.from": str(source)}),
                   str(tmp_path), cpu_strategy(1))

  # One step on from the source's networks, with fresh counters.
  assert int(state.step.numpy()) == 1
  assert int(state.d_optimizer.iterations.numpy()) == 1
  after = _network_values(state)["discriminator"]
  assert _distance(after, started) < 0.1 * _distance(fresh, started)
  assert "Started G, D and G_ema from" in caplog.text

  # The workdir's own checkpoint wins, even over a source that is gone.
  caplog.clear()
  state = loop.run(load_config(**{
      **overrides, "train.steps": 2, "init.from": str(tmp_path / "gone")}),
                   str(tmp_path), cpu_strategy(1))
  assert int(state.step.numpy()) == 2
  assert int(state.d_optimizer.iterations.numpy()) == 2
  assert caplog.text.count(f"init.from={tmp_path / 'gone'} is ignored") == 1


def _bare_copy(workdir, directory):
  """workdir's latest checkpoint alone in `directory`: no config beside it."""
  path = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
  directory.mkdir()
  for file in tf.io.gfile.glob(path + ".*"):
    shutil.copy(file, directory)
  return directory / path.rsplit("/", 1)[1]


@pytest.mark.parametrize("source,changes,pattern", [
    # Its config.json says it is another model.
    ("workdir", {"model.d_width": 4},
     r"holds a run of a different model \(model.d_width: saved 8, now 4\)"),
    # A checkpoint without a config: the first variable that does not fit.
    ("bare", {"model.d_width": 4},
     r"does not fit this model \(D's [\w/]+ is \([\d, ]+\) there and "
     r"\([\d, ]+\) in this model\)"),
    ("pickle", {}, r"init.from=\S+\.pkl: cannot read network pickle "
     r"\S+: No such file"),
    ("nothing", {}, r"no such checkpoint .* nor a workdir with one"),
], ids=["other_models_workdir", "bare_checkpoint_of_other_shapes", "pickle",
        "nothing"])
def test_init_from_another_model_or_nothing_is_one_line(
    source, changes, pattern, source_run, tmp_path):
  workdir, overrides = source_run
  path = {"workdir": lambda: workdir,
          "bare": lambda: _bare_copy(workdir, tmp_path / "bare"),
          "pickle": lambda: tmp_path / "network.pkl",
          "nothing": lambda: tmp_path / "nothing"}[source]()
  config = load_config(**{**overrides, **changes, "init.from": str(path)})

  with pytest.raises(UserError, match=pattern) as raised:
    loop.run(config, str(tmp_path / "run"), cpu_strategy(1))

  assert "\n" not in str(raised.value)
  assert not (tmp_path / "run").exists()
