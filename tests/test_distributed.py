from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from audioae.config import config_dir
from audioae.distributed import env_from_slurm, process_rank
from audioae.errors import AudioAEError
from audioae.train import collectives
from audioae.train.collectives import tensor_digests


def test_slurm_variables_become_torch_distributed_ones():
    slurm = {
        "SLURM_NTASKS": "8",
        "SLURM_PROCID": "5",
        "SLURM_LOCALID": "1",
        "SLURM_LAUNCH_NODE_IPADDR": "10.0.0.7",
        "SLURM_JOB_ID": "123456",
    }
    assert env_from_slurm(slurm) == {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "10.0.0.7",
        "MASTER_PORT": "23456",
    }


def test_no_change_for_single_tasks_or_existing_launchers():
    assert env_from_slurm({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) == {}
    assert env_from_slurm({"SLURM_NTASKS": "4", "SLURM_PROCID": "0", "RANK": "0"}) == {}
    assert env_from_slurm({}) == {}


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the [slurm] extra")
    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == 4  # one process per GPU, one job per sweep point
    assert launcher.nodes == 1


def test_process_rank_from_torch_or_slurm_variables():
    assert process_rank({}) == 0
    assert process_rank({"RANK": "3", "SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) == 3
    assert process_rank({"SLURM_PROCID": "2", "SLURM_NTASKS": "4"}) == 2
    assert process_rank({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == 0


@pytest.mark.parametrize("procid, subdir", [("0", ".hydra"), ("1", None)])
def test_only_the_first_slurm_task_writes_hydra_files(monkeypatch, procid, subdir):
    # every SLURM task of a submitit job runs Hydra's job set-up, which writes output_subdir
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", procid)
    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = compose("train", return_hydra_config=True)
    assert cfg.hydra.output_subdir == subdir


def equal_sums_different_values() -> tuple[nn.Module, nn.Module]:
    a, b = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[1.0, 2.0]]))
        b.weight.copy_(torch.tensor([[2.0, 1.0]]))  # same sum, other weights
        a.bias.zero_()
        b.bias.zero_()
    return a, b


def test_tensor_digests_tell_apart_weights_with_equal_sums():
    a, b = equal_sums_different_values()
    da, db = tensor_digests([a]), tensor_digests([b])
    assert da.keys() == db.keys() == {"0.weight", "0.bias"}
    assert da["0.weight"] != db["0.weight"] and da["0.bias"] == db["0.bias"]
    norm = nn.BatchNorm1d(2)  # buffers too, integer ones included
    before = tensor_digests([norm])["0.num_batches_tracked"]
    norm.num_batches_tracked += 1
    assert tensor_digests([norm])["0.num_batches_tracked"] != before


def test_replica_check_reports_drifted_tensors_by_name(monkeypatch):
    a, b = equal_sums_different_values()
    acc = SimpleNamespace(num_processes=2)
    # process 1 holds b: what accelerate's gather_object would return on process 0
    monkeypatch.setattr(collectives, "gather_object", lambda obj: [obj[0], tensor_digests([b])])
    with pytest.raises(AudioAEError, match=r"step 7: .* in 1 tensors \(0\.weight\)"):
        collectives.check_replicas(acc, [a], step=7)
    monkeypatch.setattr(collectives, "gather_object", lambda obj: [obj[0], tensor_digests([a])])
    collectives.check_replicas(acc, [a], step=7)  # identical: passes
