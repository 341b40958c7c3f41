import pytest
from hydra import compose, initialize_config_dir

from audioae.config import config_dir
from audioae.distributed import env_from_slurm


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
