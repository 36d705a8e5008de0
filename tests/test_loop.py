"""The train step, replica equivalence, resume and divergence handling."""

import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from tests.conftest import checkpoint_values, cpu_strategy, load_config
from trainer import checkpoint
from trainer import config as config_lib
from trainer.data import sources
from trainer import errors
from trainer.errors import UserError
from trainer import loop
from trainer import losses
from trainer import models
from trainer import random_streams
from trainer import state as state_lib
from trainer import step as step_lib

# Small networks: these tests check behaviour, not image quality.
TINY = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 8}


def _strategy(name: str) -> tf.distribute.Strategy:
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy("/cpu:0")
  return cpu_strategy(2)


@pytest.fixture(scope="module")
def mnist(mnist_dir) -> sources.Source:
  return sources.load(f"idx:{mnist_dir}", sources.Request(
      split="test", image_size=28, channels=1, resize=False))


def _values(variables) -> list[np.ndarray]:
  return [np.array(v.numpy()) for v in variables]


def _run_steps(strategy, config, source, num_steps):
  state = state_lib.build_state(config, strategy)
  before = {"g": _values(state.generator.trainable_variables),
            "d": _values(state.discriminator.trainable_variables)}
  train_steps = step_lib.make_train_steps(config, strategy, state, source, 0)
  metrics, first_bad = train_steps(num_steps)
  return state, before, {k: float(v) for k, v in metrics.items()}, first_bad


def _changed(before, variables) -> bool:
  """Whether every kernel moved (a bias may rightly get a zero gradient)."""
  return all(not np.array_equal(b, a)
             for b, a, v in zip(before, _values(variables), variables)
             if "kernel" in v.path)


# Every loss with every penalty set and augmentation is checked on small
# synthetic data in tests/test_step.py; these run real MNIST through the
# strategies with the losses whose steps differ in structure (rpgan's G
# reads D on the reals, wgan_gp adds its penalty).
_STRUCTURES = ["non_saturating", "rpgan", "wgan_gp"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy_name", ["one_device", "mirrored"])
@pytest.mark.parametrize("loss", _STRUCTURES)
def test_one_step_each_loss(strategy_name, loss, mnist):
  config = load_config(**TINY, **{"model.loss": loss})
  state, before, metrics, first_bad = _run_steps(
      _strategy(strategy_name), config, mnist, 1)
  assert first_bad == -1
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  assert metrics["grad_norm/d"] > 0 and metrics["grad_norm/g"] > 0
  assert 0 < metrics["d_output/real"] < 1 and 0 < metrics["d_output/fake"] < 1
  assert int(state.step.numpy()) == 1
  # Every kernel of both networks moved.
  assert _changed(before["d"], state.discriminator.trainable_variables)
  assert _changed(before["g"], state.generator.trainable_variables)


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize("loss", _STRUCTURES)
def test_one_conditional_step_each_loss(loss, mnist):
  config = load_config(**TINY, **{"model.loss": loss,
                                  "model.num_classes": 10})
  state, before, metrics, first_bad = _run_steps(cpu_strategy(2), config,
                                                 mnist, 1)
  assert first_bad == -1
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  # The label embeddings of both networks learn too.
  for net in (state.generator, state.discriminator):
    embeddings = [v for v in net.trainable_variables if "embedding" in v.path]
    assert len(embeddings) == 1, [v.path for v in net.trainable_variables]
  assert _changed(before["d"], state.discriminator.trainable_variables)
  assert _changed(before["g"], state.generator.trainable_variables)


def _g_norm_against_initial_d(config, strategy, source) -> tuple[float, float]:
  """(logged G gradient norm of step 1, the norm of G's loss gradient on the
  step's first noise draw against the initial D), from one state."""
  state = state_lib.build_state(config, strategy)
  initial = _values(state.generator.variables)
  z = tf.random.stateless_normal(
      [config.train.batch_size, config.model.latent_dim],
      random_streams.stream_seed(config.seed, random_streams.NOISE,
                            tf.constant(0, tf.int64), 0))
  with tf.GradientTape() as tape:
    logits = models.judge(
        state.discriminator,
        models.generate(state.generator, z, None, training=True), None,
        training=True)
    g_loss = tf.reduce_mean(losses.LOSSES.get(config.model.loss).generator(
        None, logits))
  expected = tf.linalg.global_norm(
      tape.gradient(g_loss, state.generator.trainable_variables))
  # The forward pass above moved G's batch-norm statistics: put them back.
  for variable, value in zip(state.generator.variables, initial):
    variable.assign(value)
  metrics, _ = step_lib.make_train_steps(config, strategy, state, source, 0)(1)
  return float(metrics["grad_norm/g"]), float(expected)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["non_saturating", "hinge"])
def test_simultaneous_g_update_uses_ds_fakes_and_d_before_its_update(
    loss, mnist):
  config = load_config(**TINY, **{"model.loss": loss, "model.d_dropout": 0.0,
                                  "train.simultaneous": True})
  logged, expected = _g_norm_against_initial_d(config, cpu_strategy(1), mnist)
  assert logged == pytest.approx(expected, rel=1e-4)
  # The control: alternating updates take G's gradient on other noise,
  # against the updated D.
  config.train.simultaneous = False
  logged, expected = _g_norm_against_initial_d(config, cpu_strategy(1), mnist)
  assert logged != pytest.approx(expected, rel=1e-2)


# rpgan's (G reads D on the reals) is the inner loop's simultaneous step.
@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize("loss", [
    pytest.param("non_saturating", marks=pytest.mark.slow), "rpgan",
    pytest.param("wgan_gp", marks=pytest.mark.slow)])
def test_one_simultaneous_step_each_loss_on_two_replicas(loss, mnist):
  config = load_config(**TINY, **{"model.loss": loss,
                                  "train.simultaneous": True})
  state, before, metrics, first_bad = _run_steps(cpu_strategy(2), config,
                                                 mnist, 2)
  assert first_bad == -1
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  assert _changed(before["d"], state.discriminator.trainable_variables)
  assert _changed(before["g"], state.generator.trainable_variables)


@pytest.mark.slow
def test_a_config_without_the_simultaneous_field_trains_alternating(mnist):
  # Config files written before train.simultaneous existed still run, with
  # the update order they had: G's gradient is not the one on D's fakes.
  config = load_config(**TINY, resolved=False, **{"model.d_dropout": 0.0})
  del config.train["simultaneous"]
  config = config_lib.resolve(config)
  logged, expected = _g_norm_against_initial_d(config, cpu_strategy(1), mnist)
  assert np.isfinite(logged) and logged > 0
  assert logged != pytest.approx(expected, rel=1e-2)


def test_simultaneous_needs_one_d_update(mnist_dir, tmp_path):
  config = load_config(**TINY, resolved=False,
                       **{"train.simultaneous": True, "train.n_disc": 2})
  with pytest.raises(UserError, match="needs train.n_disc=1 \\(got 2\\)"):
    loop.run(config, str(tmp_path), cpu_strategy(1))
  assert not list(tmp_path.iterdir())


def test_a_conditional_model_needs_labelled_data(mnist_dir, tmp_path):
  config = load_config(**TINY, **{"model.num_classes": 7,
                                  "data.source": f"idx:{mnist_dir}",
                                  "data.split": "test"})
  with pytest.raises(UserError, match="model.num_classes=7 but .* has 10"):
    loop.run(config, str(tmp_path), cpu_strategy(1))
  assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("strategy_name,policy,jit", [
    ("mirrored", "mixed_bfloat16", False), ("mirrored", "mixed_float16", False),
    ("one_device", "float32", True), ("one_device", "mixed_bfloat16", True)])
def test_precision_and_xla(strategy_name, policy, jit, mnist):
  config = load_config(**TINY, **{"runtime.mixed_precision": policy,
                                  "runtime.jit_compile": jit,
                                  "train.n_disc": 2})
  state, before, metrics, first_bad = _run_steps(_strategy(strategy_name),
                                                 config, mnist, 2)
  assert first_bad == -1
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  assert _changed(before["g"], state.generator.trainable_variables)
  # Weights stay float32 under mixed precision; images come out float32.
  assert all(v.dtype == "float32" for v in state.generator.trainable_variables)
  assert state.generator(tf.zeros([1, 100])).dtype == tf.float32
  if policy == "mixed_float16":
    assert state.g_optimizer.scale_loss(1.0) > 1  # loss scaling is on


def _weights_after(replicas: int, sync_batchnorm: bool, mnist,
                   num_classes: int = 0) -> list:
  config = load_config(**TINY, **{"model.d_dropout": 0.0,
                                  "model.sync_batchnorm": sync_batchnorm,
                                  "model.num_classes": num_classes})
  state, _, _, _ = _run_steps(cpu_strategy(replicas), config, mnist, 2)
  return (_values(state.generator.variables)
          + _values(state.discriminator.variables)
          + _values(state.generator_ema.variables)
          + _values(state.g_optimizer.variables)
          + _values(state.d_optimizer.variables))


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize("num_classes", [0, 10],
                         ids=["unconditional", "conditional"])
def test_one_and_two_replicas_agree_with_sync_batchnorm(mnist, num_classes):
  one = _weights_after(1, True, mnist, num_classes)
  two = _weights_after(2, True, mnist, num_classes)
  assert len(one) == len(two)
  for a, b in zip(one, two):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_per_replica_batchnorm_makes_two_replicas_differ(mnist):
  # The control for the test above: it can tell the difference.
  one = _weights_after(1, False, mnist)
  two = _weights_after(2, False, mnist)
  assert any(not np.allclose(a, b, rtol=1e-4, atol=1e-5)
             for a, b in zip(one, two))


# The modern parts whose state a resume must carry: ADA's p and its running
# r_t (adjusted every 2 steps, fast), a lazy R1 (its schedule follows the
# step), the power-iteration vectors of spectral normalization; scheduled
# values (from the step) for a rate, a beta, a penalty weight and G_ema's
# half-life, which ramps up with the images seen.
MODERN = {"model.loss": "rpgan", "penalties.names": "r1,r2,pl",
          "penalties.r1.interval": 2, "penalties.r2.interval": 1,
          "penalties.pl.interval": 2,
          "augment.name": "ada", "augment.p": 0.2, "augment.interval": 2,
          "augment.speed_kimg": 0.08, "model.d_spectral_norm": True,
          "model.g_spectral_norm": True,
          "schedules.optim.d_lr": "cosine(5e-5, 0.04)",
          "schedules.optim.beta2": "linear(0.99, 0.04)",
          "schedules.penalties.r2.weight": "linear(0.1, 0.04)",
          "model.ema_kimg": 0.5, "model.ema_rampup": 0.05,
          "schedules.model.ema_kimg": "linear(1.0, 0.04)"}
# StyleGAN2, tiny, on the digits resized to 32x32: w's average, noise and
# style mixing beside MODERN's parts.
STYLE = {**{k: v for k, v in MODERN.items() if "spectral" not in k},
         "model.architecture": "stylegan2", "model.image_size": 32,
         "data.resize": True, "model.channel_base": 128,
         "model.channel_max": 16, "model.w_dim": 16,
         "model.mapping_layers": 2, "model.latent_dim": 8}
# R3GAN, tiny (widths 16, 16, 8, 4; groups 4, 4, 2, 1), beside MODERN's parts.
R3 = {**{k: v for k, v in MODERN.items() if "spectral" not in k},
      "model.architecture": "r3gan", "model.image_size": 32,
      "data.resize": True, "model.channel_base": 128,
      "model.channel_max": 16, "model.cardinality": 4,
      "model.blocks_per_stage": 1, "model.latent_dim": 8}


def _scalar_tags(logdir) -> set[str]:
  reader = event_accumulator.EventAccumulator(
      str(logdir), size_guidance={event_accumulator.SCALARS: 0,
                                  event_accumulator.TENSORS: 0})
  reader.Reload()
  return set(reader.Tags()["scalars"]) | set(reader.Tags()["tensors"])


@pytest.mark.slow
@pytest.mark.parametrize("parts", [{}, MODERN], ids=["dcgan", "modern"])
def test_stop_and_restart_matches_an_uninterrupted_run(tmp_path, mnist_dir,
                                                       parts):
  # The DCGAN's run stops at its last step (train.steps=3) and is started
  # again, on two replicas; the modern parts' restart from the uninterrupted
  # run's step-3 checkpoint (the same saved state, one training run fewer),
  # on one replica of the mirrored strategy: the same cross-replica code,
  # half the graph to build (tests/test_step.py checks that 1 and 2 replicas
  # agree with these parts).
  check_stop_and_restart(tmp_path, mnist_dir, parts,
                         cpu_strategy(1 if parts else 2),
                         stop_at_the_end=not parts)


def check_stop_and_restart(tmp_path, mnist_dir, parts: dict,
                           strategy: tf.distribute.Strategy, *,
                           stop_at_the_end: bool = False) -> None:
  """6 steps straight and 3 + 3 with a restart end in the same state.

  The restart resumes from a step-3 checkpoint: that of a run that stopped at
  its last step (`stop_at_the_end`), or the uninterrupted run's own, put
  alone into a fresh workdir, as a preempted run leaves it.
  tests/test_resume_families.py runs it for StyleGAN2 and R3GAN.
  """
  overrides = {**TINY, "data.source": f"idx:{mnist_dir}",
               "data.split": "test", "train.checkpoint_every": 3,
               "train.steps_per_loop": 2, "train.log_every": 3,
               "train.image_every": 100, **parts}
  straight = tmp_path / "straight"
  loop.run(load_config(**overrides, **{"train.steps": 6}), str(straight),
            strategy)
  a = checkpoint_values(str(straight / "checkpoints" / "ckpt-6"))
  resumed = tmp_path / "resumed"
  if stop_at_the_end:
    first = loop.run(load_config(**overrides, **{"train.steps": 3}),
                      str(resumed), strategy)
    assert int(first.step.numpy()) == 3
  else:
    shutil.copytree(straight, resumed)
    saved_dir = resumed / "checkpoints"
    for path in saved_dir.glob("ckpt-6*"):
      path.unlink()
    tf.compat.v1.train.update_checkpoint_state(
        str(saved_dir), str(saved_dir / "ckpt-3"),
        all_model_checkpoint_paths=[str(saved_dir / "ckpt-3")])
  saved = checkpoint_values(str(resumed / "checkpoints" / "ckpt-3"))
  second = loop.run(load_config(**overrides, **{"train.steps": 6}),
                     str(resumed), strategy)
  assert int(second.step.numpy()) == 6
  # The restart began from the saved state ...
  assert saved["step/.ATTRIBUTES/VARIABLE_VALUE"] == 3
  # ... and ended where the uninterrupted run did: weights, G_ema, both
  # optimizers' moments and iterations, the dropout seed, the step.
  b = checkpoint_values(str(resumed / "checkpoints" / "ckpt-6"))
  assert a.keys() == b.keys()
  # The optimizers' moments are there (Keras 3 names them _variables/N).
  assert any(k.startswith("d_optimizer/_variables/") for k in a)
  assert any(k.startswith("g_optimizer/_variables/") for k in a)
  for name in a:
    np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6,
                               err_msg=name)
  assert any(not np.array_equal(saved[k], b[k]) for k in saved)
  if parts:
    # p moved, and it and the vectors are in the checkpoint.
    assert a["augment/p/.ATTRIBUTES/VARIABLE_VALUE"] != 0.2
    assert "augment/rt_sum/.ATTRIBUTES/VARIABLE_VALUE" in a
    assert a["penalties/variables_of/pl/mean/.ATTRIBUTES/VARIABLE_VALUE"] > 0
    if parts is STYLE:
      assert any("w_avg" in k for k in a)
    elif parts is MODERN:
      assert any("spectral_u" in k for k in a)
    # TensorBoard shows each penalty and ADA's p and r_t beside the losses.
    tags = _scalar_tags(straight / "train")
    assert {"penalties/r1", "penalties/r2", "grad_norm/d_r1", "augment/p",
            "augment/rt", "losses/d", "losses/g", "schedule/optim.d_lr",
            "schedule/optim.beta2", "schedule/penalties.r2.weight",
            "schedule/model.ema_kimg", "penalties/pl", "penalties/pl_mean",
            "grad_norm/g_pl"} <= tags, tags


@pytest.mark.parametrize("parts", [
    pytest.param({}, id="dcgan"), pytest.param(MODERN, id="modern"),
    pytest.param(STYLE, id="stylegan2", marks=pytest.mark.slow),
    pytest.param(R3, id="r3gan", marks=pytest.mark.slow)])
def test_a_checkpoint_restores_every_variable_of_every_network(tmp_path,
                                                               parts):
  # G_ema has no optimizer holding its variables: only the network's own
  # tracking brings them into the checkpoint (Keras 3 list attributes once
  # left StyleGAN2's G_ema out, so evaluation read an untrained G_ema).
  config = load_config(**TINY, **parts)
  strategy = tf.distribute.get_strategy()
  networks = ("generator", "discriminator", "generator_ema")
  saved = state_lib.build_state(config, strategy)
  rng = np.random.default_rng(0)
  for name in networks:
    for variable in getattr(saved, name).variables:
      variable.assign(rng.normal(size=variable.shape).astype(
          variable.dtype))
  path = checkpoint.Checkpointer(str(tmp_path), saved.trackables(), keep=1,
                                 is_chief=True).save(1)
  restored = state_lib.build_state(config, strategy)
  checkpoint.Checkpointer(str(tmp_path), restored.trackables(), keep=1,
                          is_chief=True).restore(path)
  for name in networks:
    a, b = getattr(saved, name).variables, getattr(restored, name).variables
    # (Keras numbers unnamed layers per process: the paths may differ.)
    assert [v.shape for v in a] == [v.shape for v in b]
    wrong = [x.path for x, y in zip(a, b)
             if not np.array_equal(x.numpy(), y.numpy())]
    assert not wrong, f"{name}: not restored: {wrong}"


@pytest.mark.slow
def test_nan_stops_at_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path, mnist_dir):
  overrides = {**TINY, "data.source": f"idx:{mnist_dir}",
               "data.split": "test", "train.checkpoint_every": 2,
               "train.image_every": 100, "train.log_every": 1}
  strategy = cpu_strategy(2)
  loop.run(load_config(**overrides, **{"train.steps": 2}), str(tmp_path),
            strategy)
  good = checkpoint_values(str(tmp_path / "checkpoints" / "ckpt-2"))
  # An absurd learning rate drives the weights to overflow within a few steps.
  reported = []
  for steps_per_loop in (1, 8):
    config = load_config(**{
        **overrides, "train.steps": 40, "optim.d_lr": 1e30,
        "optim.g_lr": 1e30, "train.steps_per_loop": steps_per_loop,
        "train.checkpoint_every": 40, "train.log_every": 40})
    with pytest.raises(loop.NonFiniteLoss, match=r"at step (\d+)") as error:
      loop.run(config, str(tmp_path), strategy)
    reported.append(int(error.value.args[0].split("at step ")[1].split(";")[0]))
    assert "ckpt-2" in str(error.value)
  # The step is exact: the same whether checked after every step or once
  # per call of 8 steps.
  assert reported[0] == reported[1] and 2 < reported[0] <= 40
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()
                if p.name.startswith("ckpt-2")) != []
  after = checkpoint_values(str(tmp_path / "checkpoints" / "ckpt-2"))
  assert all(np.array_equal(good[k], after[k]) for k in good)
  assert not any(p.name.startswith("ckpt-40")
                 for p in (tmp_path / "checkpoints").iterdir())


@pytest.mark.parametrize("on_bad_image", [
    "stop", pytest.param("skip", marks=pytest.mark.slow)])
def test_a_corrupt_folder_image_stops_at_its_step_or_is_skipped_and_counted(
    tmp_path, on_bad_image):
  # Unshuffled batches of 8 from 24 files: index 20 is read by step 3.
  images = tmp_path / "images"
  images.mkdir()
  for i in range(24):
    tf.io.write_file(str(images / f"{i:02d}.png"), tf.io.encode_png(
        tf.fill([28, 28, 1], tf.constant(i * 10, tf.uint8))))
  (images / "20.png").write_bytes(b"not a PNG")
  config = load_config(**TINY, **{
      "data.source": f"folder:{images}", "data.shuffle": False,
      "data.on_bad_image": on_bad_image, "train.histogram_samples": 8,
      "train.steps": 4, "train.checkpoint_every": 2, "train.log_every": 1,
      "train.image_every": 100, "train.steps_per_loop": 4})
  workdir = tmp_path / "run"
  if on_bad_image == "stop":
    with pytest.raises(errors.BadImage, match=(
        r"cannot read image .*20\.png .* at step 3; training stopped, the "
        r"last good checkpoint is .*ckpt-2.*data\.on_bad_image=skip")):
      loop.run(config, str(workdir), cpu_strategy(1))
  else:
    assert int(loop.run(config, str(workdir),
                         cpu_strategy(1)).step.numpy()) == 4
    assert "data/skipped_images" in _scalar_tags(workdir / "train")


def test_an_action_is_due_at_its_interval_the_start_and_the_end():
  every_3 = loop.Action("a", lambda session, stop: None, every=3)
  assert [s for s in range(1, 10) if every_3.due(loop.Stop(s))] == [3, 6, 9]
  assert every_3.due(loop.Stop(7, last=True))
  assert not every_3.due(loop.Stop(0, start=True))
  at_start = loop.Action("b", lambda session, stop: None, at_start=True,
                         at_end=False)
  assert at_start.due(loop.Stop(0, start=True))
  assert not at_start.due(loop.Stop(5, last=True))
  each = loop.Action("c", lambda session, stop: None, every_stop=True)
  assert each.due(loop.Stop(1)) and not each.due(loop.Stop(0, start=True))


def test_the_next_stop_is_the_nearest_due_action():
  config = load_config(**{"train.steps": 100, "train.steps_per_loop": 50})
  actions = [loop.Action("a", lambda session, stop: None, every=7),
             loop.Action("b", lambda session, stop: None, every=5),
             loop.Action("c", lambda session, stop: None, every_stop=True)]
  assert loop.next_stop(0, actions, config.train) == 5
  assert loop.next_stop(5, actions, config.train) == 7
  assert loop.next_stop(70, actions, config.train) == 75
  assert loop.next_stop(98, actions, config.train) == 100
  assert loop.next_stop(0, [], config.train) == 50


@pytest.mark.slow
def test_a_new_action_is_one_registration(tmp_path, mnist_dir, monkeypatch):
  # A second periodic job, every 3 steps and at the end: the loop stops
  # for it (and for nothing else here) and hands it the metrics it reads.
  monkeypatch.setattr(loop, "ACTIONS", list(loop.ACTIONS))
  seen = []

  @loop.action(order=35)
  def _probe(config, session):
    del session
    return loop.Action("probe", lambda session, stop: seen.append(
        (stop.step, int(session.state.step.numpy()), "losses/d" in
         stop.metrics)), every=config.train.steps // 2 - 1,
                       reads_metrics=True)

  config = load_config(**TINY, **{
      "data.source": f"idx:{mnist_dir}", "train.steps": 8,
      "train.log_every": 100, "train.image_every": 100,
      "train.checkpoint_every": 100, "train.steps_per_loop": 100})
  loop.run(config, str(tmp_path), cpu_strategy(1))
  assert seen == [(3, 3, True), (6, 6, True), (8, 8, True)]


def test_the_log_holds_the_means_since_the_last_log(tmp_path, mnist_dir):
  # Stops at steps 2, 4, 6 and 8, a log only at 8. A lazy R1 runs at steps 0
  # and 4, in none of the last call's steps (6, 7): logged all the same, as
  # the mean over its steps since the last log.
  config = load_config(**TINY, **{
      "data.source": f"idx:{mnist_dir}", "train.steps": 8,
      "train.log_every": 8, "train.image_every": 100,
      "train.checkpoint_every": 100, "train.steps_per_loop": 2,
      "penalties.names": "r1", "penalties.r1.interval": 4})
  loop.run(config, str(tmp_path), cpu_strategy(1))
  reader = event_accumulator.EventAccumulator(
      str(tmp_path / "train"), size_guidance={event_accumulator.TENSORS: 0})
  reader.Reload()
  for tag in ("penalties/r1", "grad_norm/d_r1", "losses/d"):
    assert [event.step for event in reader.Tensors(tag)] == [8], tag
