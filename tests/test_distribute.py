"""The strategies by name, made in this process (trainer/distribute.py).

Several workers of one training need processes: tests/launch and
tests/test_preemption.py start them (marked slow).
"""

import pytest

from trainer import distribute
from trainer.errors import UserError


# conftest splits the CPU into two logical devices.
@pytest.mark.parametrize("name,devices", [
    ("default", None), ("one_device", ["CPU:0"]),
    ("mirrored", ["CPU:0", "CPU:1"])])
def test_a_local_strategy_has_a_replica_per_device_it_takes(name, devices):
  strategy = distribute.create_strategy(name)
  assert distribute.is_chief(strategy)
  if devices is None:  # TensorFlow's default: one replica, no device list
    assert strategy.num_replicas_in_sync == 1
    return
  assert strategy.num_replicas_in_sync == len(devices)
  assert [d.split("/device:")[1]
          for d in strategy.extended.worker_devices] == devices


@pytest.mark.parametrize("tf_config,message", [
    (None, "--strategy=multi_worker needs the cluster: set TF_CONFIG"),
    ("{'cluster': {}}", "TF_CONFIG is not valid JSON")],
    ids=["no_cluster", "tf_config_not_json"])
def test_multi_worker_without_a_cluster_is_refused(monkeypatch, tf_config,
                                                   message):
  monkeypatch.delenv("SLURM_STEP_NUM_TASKS", raising=False)
  if tf_config is None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
  else:
    monkeypatch.setenv("TF_CONFIG", tf_config)
  with pytest.raises(UserError, match=message):
    distribute.create_strategy("multi_worker")


def test_an_unknown_strategy_lists_the_registered_ones():
  with pytest.raises(UserError) as error:
    distribute.create_strategy("mirorred")
  assert str(error.value) == (
      "unknown strategy 'mirorred' in --strategy; valid: default, mirrored, "
      "multi_worker, one_device, tpu")
