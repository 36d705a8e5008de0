"""Scheduled config values: their curve, and the step using them on time.

A scheduled run is compared with constant runs switched by hand at the step
where the schedule reaches its end: the two must end with the same weights.
"""

import numpy as np
import pytest

from tests.conftest import cpu_strategy, load_config
from tests.test_step import TINY, _synthetic
from trainer import checkpoint as checkpoint_lib
from trainer import phases as phases_lib
from trainer import schedules
from trainer import state as state_lib
from trainer import step as step_lib


@pytest.mark.parametrize("kind,halfway", [("linear", 3.0), ("cosine", 3.0)])
def test_a_schedule_goes_from_the_value_to_its_end_then_stays(kind, halfway):
  schedule = schedules.parse("optim.g_lr", f"{kind}(5.0, 2)", 1.0)
  values = [float(schedule(images)) for images in (0, 1000, 2000, 9000)]
  assert values == pytest.approx([1.0, halfway, 5.0, 5.0])
  if kind == "cosine":  # flat at both ends
    near_start, near_end = float(schedule(100)), float(schedule(1900))
    assert near_start - 1.0 < 0.1 and 5.0 - near_end < 0.1


def test_every_schedulable_value_is_in_the_default_config():
  config = load_config()
  assert set(schedules.specs(config)) == set()
  for path in schedules.SCHEDULABLE:
    config = load_config(**{f"schedules.{path}": "linear(0.5, 1)"},
                         resolved=False)
    assert schedules.specs(config) == {path: "linear(0.5, 1)"}


# (the scheduled value's path, its start and end). Each schedule reaches its
# end after one step of 4 images.
_SWITCHED = [
    ("optim.d_lr", 2e-4, 1e-3),
    ("optim.g_lr", 2e-4, 1e-3),
    ("optim.beta2", 0.999, 0.9),
    ("optim.beta1", 0.5, 0.0),
    ("penalties.r1.weight", 0.1, 10.0),
    ("model.ema_kimg", 0.002, 0.1),
    ("augment.p", 0.0, 0.8),
]
# What every run here has: an eager R1 and a fixed ADA p (two of its groups:
# the p is what is scheduled, not the pipeline).
_BASE = {**TINY, "model.d_dropout": 0.0, "penalties.names": "r1",
         "penalties.r1.interval": 1, "augment.name": "ada",
         "augment.p_mode": "fixed", "augment.groups": "xflip,brightness"}


def _switch_by_hand(state, path: str, value: float) -> None:
  """What a constant run with `value` has in its state, where it has any."""
  if path.startswith("optim.") and path.endswith("_lr"):
    optimizer = {"g": state.g_optimizer, "d": state.d_optimizer}[path[6]]
    optimizer.learning_rate = value
  elif path.startswith("optim.beta"):
    for optimizer in (state.g_optimizer, state.d_optimizer):
      setattr(optimizer, "beta_" + path[-1], value)
  elif path == "augment.p":
    state.augment.p.assign(value)


def _everything(state) -> list[np.ndarray]:
  return [np.array(v.numpy()) for v in
          state.generator.variables + state.discriminator.variables
          + state.generator_ema.variables + state.g_optimizer.variables
          + state.d_optimizer.variables + [state.augment.p]]


def _trained(config, start_step: int = 0, steps: int = 3, state=None):
  strategy = cpu_strategy(1)
  state = state or state_lib.build_state(config, strategy)
  metrics, _ = step_lib.make_train_steps(config, strategy, state, _synthetic(),
                                      start_step)(steps)
  return state, metrics


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_scheduled_values_are_used_from_the_step_they_are_due():
  # Every schedulable value of the step at once, in one run: compared with
  # constant runs switched by hand after step 1, where the schedules end.
  starts = {path: start for path, start, _ in _SWITCHED}
  ends = {path: end for path, _, end in _SWITCHED}
  schedules_to_end = {f"schedules.{path}": f"linear({end}, 0.004)"
                      for path, _, end in _SWITCHED}
  state, metrics = _trained(load_config(**_BASE, **starts,
                                        **schedules_to_end))
  for path, _, end in _SWITCHED:
    assert metrics[f"schedule/{path}"] == pytest.approx(end), path

  by_hand, _ = _trained(load_config(**_BASE, **starts), steps=1)
  for path, _, end in _SWITCHED:
    _switch_by_hand(by_hand, path, end)
  _trained(load_config(**_BASE, **ends), start_step=1, steps=2,
           state=by_hand)
  for a, b in zip(_everything(state), _everything(by_hand), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

  # And each value mattered: the run with that one kept at its start ends
  # elsewhere.
  for path, _, _ in _SWITCHED:
    others = {k: v for k, v in schedules_to_end.items()
              if k != f"schedules.{path}"}
    constant, _ = _trained(load_config(**_BASE, **starts, **others))
    assert any(not np.allclose(a, b, rtol=1e-6, atol=1e-7) for a, b in
               zip(_everything(state), _everything(constant))), path


def test_a_half_life_scheduled_from_0_starts_with_g_ema_equal_to_g():
  # R3GAN ramps G_ema's half-life up from 0 images: at first G_ema is G.
  config = load_config(**TINY, **{
      "schedules.model.ema_kimg": "cosine(5000, 20000)"})
  state = state_lib.build_state(config, cpu_strategy(1))
  state.schedules.update(0)
  assert float(phases_lib.ema_rate(config, state.schedules, 0)) == 0.0
  state.schedules.update(2_500_000)  # 10 M images, halfway: 2,500 kimg
  half_life = 0.5 * 5000 * 1000
  assert float(phases_lib.ema_rate(config, state.schedules, 2_500_000)) == (
      pytest.approx(0.5 ** (4 / half_life), rel=1e-6))


def test_a_lazy_rate_schedule_keeps_the_lazy_correction():
  config = load_config(**TINY, **{
      "penalties.names": "r1", "penalties.r1.interval": 4,
      "schedules.optim.d_lr": "cosine(1e-3, 0.004)"})
  state = state_lib.build_state(config, cpu_strategy(1))
  step_lib.make_train_steps(config, cpu_strategy(1), state, _synthetic(), 0)(2)
  assert float(state.d_optimizer.learning_rate.numpy()) == pytest.approx(
      1e-3 * 4 / 5)


def test_scheduled_values_stay_out_of_the_checkpoint(tmp_path):
  # A schedule added to, or dropped from, a run that goes on restores its
  # checkpoint: the values are the step's and the config's.
  plain = load_config(**TINY)
  scheduled = load_config(**TINY, **{
      "schedules.optim.beta2": "linear(0.99, 10)",
      "schedules.optim.g_lr": "linear(1e-5, 10)"})
  for saved, restored in ((plain, scheduled), (scheduled, plain)):
    workdir = str(tmp_path / f"{id(saved)}")
    state = state_lib.build_state(saved, cpu_strategy(1))
    checkpoint_lib.Checkpointer(workdir, state.trackables(), keep=1,
                                is_chief=True).save(1)
    other = state_lib.build_state(restored, cpu_strategy(1))
    assert checkpoint_lib.Checkpointer(workdir, other.trackables(), keep=1,
                                       is_chief=True).restore_latest()
