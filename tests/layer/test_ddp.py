"""DistributedDataParallel over two CPU processes (gloo, loopback) gives the single-process gradients: GoogLeNet's
fused blocks, and block programs (an Inception-v3 block and an Inception-ResNet one)."""
import datetime
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fastinception import ProgramBlock, googlenet
from fastinception.blocks import programs as P

from helpers import assert_close

WORLD = 2


def _data(model_name):
    g = torch.Generator().manual_seed(5)
    channels = 1 if model_name == "googlenet" else 8
    return torch.randn(4, channels, 24, 24, generator=g), torch.randint(0, 10, (4,), generator=g)


def _model(model_name):
    torch.manual_seed(11)
    if model_name == "googlenet":
        return googlenet(fast=True, backend="torch")
    a = P.inception_v3_a(8, 4)
    resnet = P.inception_resnet_block35(16)
    return nn.Sequential(ProgramBlock(a, backend="torch"), nn.Conv2d(a.out_channels, 16, 1),
                         ProgramBlock(resnet, backend="torch"), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


def _worker(rank, port, path, model_name):
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        model = DistributedDataParallel(_model(model_name))
        x, y = _data(model_name)
        shard = slice(rank * 2, rank * 2 + 2)
        F.cross_entropy(model(x[shard]), y[shard]).backward()
        if rank == 0:
            torch.save({n: p.grad for n, p in model.module.named_parameters()}, path)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("model_name", ["googlenet", "block programs"])
def test_ddp_gradients_equal_single_process(tmp_path, model_name):
    path = tmp_path / "grads.pt"
    ctx = mp.start_processes(_worker, args=(_free_port(), str(path), model_name), nprocs=WORLD, join=False,
                             start_method="spawn")
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=120)
    while not ctx.join(timeout=5):
        if datetime.datetime.now() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("DDP workers did not finish within 120 s")
    ddp_grads = torch.load(path)

    model = _model(model_name)
    x, y = _data(model_name)
    F.cross_entropy(model(x), y).backward()
    # DDP averages two half-batch gradients: another summation order than one batch, hence 1e-4 for fp32.
    for name, p in model.named_parameters():
        assert_close(ddp_grads[name], p.grad, torch.float32, name, tol=1e-4)
