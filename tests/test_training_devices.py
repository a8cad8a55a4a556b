"""The device-dependent branches of training, run with the device as a parameter: the random
state saved in checkpoints (dropout masks of a resumed run) and page-locked batches.

Each test runs on the CPU everywhere and on CUDA where there is a GPU (``devices.DEVICES``);
where a branch's logic needs no GPU to run, it is also run here with a CUDA device object.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from devices import DEVICES
from training_fixtures import make_tiny_cache

from video_eleatt.training.data import FeatureDataModule, pin_memory_for
from video_eleatt.training.module import capture_rng_state, restore_rng_state


@pytest.mark.parametrize("device", DEVICES)
def test_restored_rng_state_repeats_the_dropout_masks(device):
    device = torch.device(device)
    torch.manual_seed(3)
    ones = torch.ones(64, 32, device=device)
    state = capture_rng_state(device)
    assert sorted(state) == (["cuda", "torch"] if device.type == "cuda" else ["torch"])
    assert all(
        value.dtype == torch.uint8 and value.device.type == "cpu" for value in state.values()
    )
    first = torch.nn.functional.dropout(ones, 0.5, training=True)
    second = torch.nn.functional.dropout(ones, 0.5, training=True)
    assert not torch.equal(first, second)  # the generator moved on
    restore_rng_state(state, device)
    assert torch.equal(torch.nn.functional.dropout(ones, 0.5, training=True), first)
    assert torch.equal(torch.nn.functional.dropout(ones, 0.5, training=True), second)


@pytest.mark.parametrize("device", ["cpu", "cuda"])  # no GPU needed: the GPU's setter is a spy
def test_a_checkpoints_gpu_state_is_restored_only_on_a_gpu(device, monkeypatch):
    """A run checkpointed on a GPU holds the GPU generator's state too: resumed on a GPU it is
    put back on that device, resumed on a CPU it is left alone and the CPU state restored."""
    device = torch.device(device, 0) if device == "cuda" else torch.device(device)
    restored_on_gpu = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda *args: restored_on_gpu.append(args))
    torch.manual_seed(11)
    cpu_state = torch.get_rng_state()
    expected = torch.rand(4)
    gpu_state = torch.arange(16, dtype=torch.uint8)  # stands for a CUDA generator's bytes
    restore_rng_state({"torch": cpu_state, "cuda": gpu_state}, device)
    assert torch.equal(torch.rand(4), expected)
    if device.type == "cuda":
        ((state, target),) = restored_on_gpu
        assert state is gpu_state and target == device
    else:
        assert restored_on_gpu == []


def test_batches_are_page_locked_only_for_a_cuda_device():
    assert pin_memory_for(torch.device("cuda", 1)) is True
    assert pin_memory_for(torch.device("cpu")) is False
    assert pin_memory_for(None) is torch.cuda.is_available()  # no trainer: what the machine has


@pytest.mark.parametrize("device", DEVICES)
def test_loaders_pin_their_batches_for_the_trainers_device(device, tmp_path):
    info = make_tiny_cache(tmp_path, num_classes=3, train_per_class=2, test_per_class=1)
    data = FeatureDataModule(str(info["cache"]), batch_size=2, num_workers=0, num_steps=4)
    data.trainer = pl.Trainer(
        accelerator=device, devices=1, logger=False, enable_progress_bar=False
    )
    data.setup("fit")
    on_cuda = device == "cuda"
    for loader in (data.train_dataloader(), data.val_dataloader()):
        assert loader.pin_memory is on_cuda
        batch = next(iter(loader))
        assert batch["features"].is_pinned() is on_cuda
