"""Each worker process gets its own GPU set: the assignment (pure), and real Dask workers started with it.

There is no GPU here: the assignment is what is tested, through the variable each
worker process really sees.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from autoglm_cli.config import parse_config
from autoglm_cli.errors import ConfigError
from autoglm_cli.runtime.workers.gpus import ENV, ENV_GPUS, ENV_PER_WORKER, gpu_set, host_gpus, worker_index


def test_two_workers_on_a_two_gpu_host_get_one_gpu_each():
    gpus = ["0", "1"]
    assert [gpu_set(i, gpus) for i in range(3)] == ["0", "1", "0"]  # a third shares with the first


def test_gpu_sets_and_hosts_with_fewer_than_two_gpus():
    assert [gpu_set(i, list("0123"), per_worker=2) for i in range(3)] == ["0,1", "2,3", "0,1"]
    assert [gpu_set(i, list("012"), per_worker=2) for i in range(2)] == ["0,1", "0,1"]
    assert gpu_set(0, ["GPU-aaaa", "GPU-bbbb"]) == "GPU-aaaa"  # UUIDs pass through
    assert gpu_set(1, ["0"]) is None and gpu_set(0, []) is None  # nothing to choose: left alone


def test_host_gpus_from_config_environment_and_driver(tmp_path):
    driver = tmp_path / "gpus"
    driver.mkdir()
    for pci in ("0000:01:00.0", "0000:02:00.0"):
        (driver / pci).mkdir()
    assert host_gpus("auto", environ={}, driver_dir=driver) == ["0", "1"]
    assert host_gpus("auto", environ={}, driver_dir=tmp_path / "missing") == []
    assert host_gpus("auto", environ={ENV: "2,3"}, driver_dir=driver) == ["2", "3"]
    assert host_gpus("auto", environ={ENV: "-1"}, driver_dir=driver) == []
    assert host_gpus("none", environ={}, driver_dir=driver) == []
    assert host_gpus(" 4, 5 ", environ={}, driver_dir=driver) == ["4", "5"]
    with pytest.raises(ConfigError, match="workers.gpus"):
        host_gpus("0,,1")


def test_worker_index_from_dask_names():
    assert worker_index(3) == 3 and worker_index("3") == 3
    assert worker_index("autoglm-gpu-host-1") == 1
    assert worker_index("tcp://10.0.0.5:40231") is None


def test_autoglm_worker_names_its_processes_and_shares_out_the_gpus():
    from autoglm_cli.ops.worker import plan
    from autoglm_cli.runtime.workers.plugin import pin_gpus

    config = parse_config(
        "model_pool: {default: sim}\nmodels: {sim: {backend: simulated}}\nworkers: {gpus: '0,1'}\n"
    )
    worker_plan = plan(config, scheduler="tcp://h:8786", nworkers=2)
    assert worker_plan.env[ENV_GPUS] == "0,1" and worker_plan.env[ENV_PER_WORKER] == "1"
    name = worker_plan.command[worker_plan.command.index("--name") + 1]
    # `dask worker --nworkers 2 --name NAME` names its workers NAME-0 and NAME-1.
    seen = []
    for i in range(2):
        environ = dict(worker_plan.env)
        pin_gpus(f"{name}-{i}", environ)
        seen.append(environ[ENV])
    assert seen == ["0", "1"]
    alone = parse_config(
        "model_pool: {default: sim}\nmodels: {sim: {backend: simulated}}\nworkers: {gpus: none}\n"
    )
    untouched = plan(alone, scheduler="tcp://h:8786", nworkers=2)
    assert ENV_GPUS not in untouched.env and "--name" not in untouched.command


@pytest.mark.slow
def test_local_cluster_workers_start_with_their_own_gpu():
    from distributed import Client

    from autoglm_cli.runtime.workers.clusters import pinned_local_cluster

    def visible() -> str | None:
        return os.environ.get(ENV)

    async def run() -> tuple[list, list]:
        cluster_class = pinned_local_cluster(["0", "1"])
        async with (
            cluster_class(
                n_workers=2, threads_per_worker=1, processes=True, asynchronous=True, dashboard_address=None
            ) as cluster,
            Client(cluster, asynchronous=True) as client,
        ):
            first = sorted((await client.run(visible)).values())
            cluster.scale(3)
            await client.wait_for_workers(3)
            return first, sorted((await client.run(visible)).values())

    first, grown = asyncio.run(run())
    assert first == ["0", "1"]
    assert grown == ["0", "0", "1"]
