"""Data-parallel training: two gloo processes on CPU end with the weights of one process trained on the same
global batches, and the distributed batch norm pools its statistics over the processes."""

import os
import subprocess
import sys

import pytest
import torch
import yaml

from medseg.config import load_config
from medseg.engine import distributed
from medseg.engine.distributed import Distributed, average_gradients, setup_distributed, sync_batchnorm
from medseg.engine.trainer import train

TOLERANCE = 1e-4  # float32 weights after three AdamW steps; only the order of floating-point sums differs


def _config(phantom_config, tmp_path):
    config = phantom_config(
        epochs=1,
        steps_per_epoch=3,
        batch_size=8,
        amp=False,
        channels_last=False,
        sync_batchnorm=True,
        threads=1,
        device="cpu",  # gloo on CPU also where a GPU is present
    )
    config["model"] = {"name": "unet", "features": [4, 8, 16]}
    config["method"] = {"name": "supervised", "dice": "image"}  # per-image Dice: the loss is a mean over images
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path, phantom_config):
    config = _config(phantom_config, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "medseg", "train", str(config), "--run-dir", str(tmp_path / "ddp"), "--quiet", "--no-evaluate"]
    subprocess.run(command, check=True, env=env, timeout=300, capture_output=True)
    train(load_config(config), tmp_path / "single", show_progress=False)

    ddp = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    single = torch.load(tmp_path / "single" / "last.pt", weights_only=True)
    assert ddp["step"] == single["step"] == 3
    for name, value in single["model"].items():
        if value.is_floating_point():
            difference = (ddp["model"][name] - value).abs().max().item()
            assert difference < TOLERANCE, f"{name} differs by {difference}"
    lines = (tmp_path / "ddp" / "metrics.csv").read_text().splitlines()
    assert len(lines) == 2, "one metrics.csv, written by the main process only"


def test_batch_is_sharded_contiguously_and_batchnorm_converted_in_place():
    ctx = Distributed(rank=1, world_size=2)
    batch = {"image": torch.arange(8).view(8, 1), "unlabeled_image": torch.arange(4).view(4, 1)}
    shard = ctx.shard(batch)
    assert shard["image"].flatten().tolist() == [4, 5, 6, 7] and shard["unlabeled_image"].flatten().tolist() == [2, 3]
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    model[1].running_mean.fill_(3.0)
    converted = sync_batchnorm(model, torch.device("cpu"))
    assert type(converted[1]).__name__ == "DistributedBatchNorm2d" and converted[1].running_mean[0] == 3.0
    x = torch.randn(4, 1, 8, 8)
    reference = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    reference.load_state_dict(model.state_dict())
    torch.testing.assert_close(converted(x), reference(x))  # no process group: a plain batch norm


def test_averaged_gradients_keep_the_channels_last_layout_the_fused_optimiser_reads(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
        model(torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)).square().sum().backward()
        before = model.weight.grad.clone()
        average_gradients(model, world_size=1)
    finally:
        dist.destroy_process_group()
    assert model.weight.grad.stride() == model.weight.stride()
    torch.testing.assert_close(model.weight.grad, before)


def _torchrun_rank_1_of_2_on_a_node_with_one_gpu(monkeypatch) -> list[str]:
    """torchrun's variables for the second of two processes, CUDA present with one GPU, and a process group that
    only records its backend; returns that record."""
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: pytest.fail(f"set_device({index}) on a CPU run"))
    backends = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", backends.append)
    return backends


def test_a_cpu_run_under_torchrun_uses_gloo_even_where_a_gpu_is_present(monkeypatch):
    backends = _torchrun_rank_1_of_2_on_a_node_with_one_gpu(monkeypatch)
    ctx = setup_distributed("cpu")
    assert backends == ["gloo"] and (ctx.rank, ctx.world_size, ctx.local_rank) == (1, 2, 1)


def test_more_processes_than_gpus_is_refused_with_what_to_do(monkeypatch):
    backends = _torchrun_rank_1_of_2_on_a_node_with_one_gpu(monkeypatch)
    with pytest.raises(ValueError, match=r"1 GPU\(s\).*--nproc_per_node.*train.device=cpu"):
        setup_distributed("auto")
    assert backends == []
