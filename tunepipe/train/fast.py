"""The GPU fast path: mixed precision, channels-last, torch.compile, data kept on the device.

Small tuning trials use a small part of a modern GPU; what decides a study's wall time there is
per-trial overhead (start-up, data upload, cuDNN autotuning, compilation, per-batch syncs), not
kernel speed. `resolve` turns the study's `auto` settings into what this trial does, given where
it runs; on a CPU every `auto` resolves to the plain fp32 loop, so CPU results are unchanged.

Reused across the trials a Ray worker runs (Tune reuses actors): the training split uploaded to
the GPU (`device_tensors`) and cuDNN's autotuned algorithms (cudnn.benchmark caches per shape in
the process). A compiled graph is cached by torch per code object and shape as well.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from tunepipe.config import TrainConfig

# torch.compile costs tens of seconds per new model on a GPU; a trial repays it only when it runs
# many steps. Issue 18's reference figures (one H100, the case study's CNN): packed trials with
# compile were slower end to end (42.2 s) than without (27.2 s) for 8 trials × 10 epochs × 55
# steps = 550 steps each. Not re-measured here (no GPU was lent to this session): a trial with
# fewer optimizer steps than this keeps the eager model under `compile: auto`.
COMPILE_MIN_STEPS = 5000
# Keep the training split on the GPU when it takes at most this share of the free memory: several
# packed trials (resources.gpu: 0.25) each hold their own copy beside their activations.
DEVICE_DATA_SHARE = 0.15


@dataclass(frozen=True)
class FastPath:
    """What one trial does, resolved from the study's settings and its device."""

    device: torch.device
    precision: str = "fp32"  # fp32 | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    data_on_device: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for forward passes; a no-op in fp32."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> Any:
        """fp16 needs loss scaling (bf16 has fp32's range); None otherwise."""
        if self.precision != "fp16":
            return None
        return torch.amp.GradScaler(self.device.type)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in the layout the model was put in (NHWC for channels-last)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x


def resolve(
    train: TrainConfig,
    device: torch.device,
    *,
    steps: int,
    image_input: bool,
    train_bytes: int,
) -> FastPath:
    """The fast path for one trial: `auto` settings decided by the device and the trial's size.

    `steps` is the trial's optimizer steps at most (epochs × batches per epoch), `image_input`
    whether the model takes (C, H, W) images, `train_bytes` the training split's size.
    """
    gpu = device.type == "cuda"
    notes: list[str] = []
    precision = train.precision
    if precision == "auto":
        precision = "bf16" if gpu and torch.cuda.is_bf16_supported() else "fp32"
    channels_last = train.channels_last
    if channels_last == "auto":
        channels_last = gpu and image_input
    compile_ = train.compile
    if compile_ == "auto":
        compile_ = gpu and steps >= COMPILE_MIN_STEPS
        if gpu and not compile_:
            notes.append(f"compile off: {steps} steps < {COMPILE_MIN_STEPS} (would not repay it)")
    data_on_device = gpu and train_bytes <= DEVICE_DATA_SHARE * _free_gpu_bytes(device)
    return FastPath(
        device=device,
        precision=precision,
        channels_last=bool(channels_last),
        compile=bool(compile_),
        data_on_device=data_on_device,
        notes=tuple(notes),
    )


def steps_per_trial(n_train: int, batch_size: int, max_epochs: int) -> int:
    return max_epochs * math.ceil(n_train / max(batch_size, 1))


def prepare_model(model: torch.nn.Module, fast: FastPath) -> tuple[torch.nn.Module, Any]:
    """(model, forward): the model moved to its device and layout, and what to call for a forward.

    `model` stays the plain module, so its state_dict (checkpoints, best_model) carries no
    compile-wrapper prefixes and loads the same whether or not the trial was compiled; `forward`
    is the compiled wrapper when compiling (it shares the parameters).
    """
    model = model.to(fast.device)
    if fast.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if fast.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # autotuned once per shape, per worker process
    forward = torch.compile(model) if fast.compile else model
    return model, forward


_DEVICE_CACHE: dict[tuple, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}


def device_tensors(
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]], fast: FastPath
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The splits where batches are drawn: uploaded to the GPU once per worker when they fit
    (the next trial on this worker finds them there), else left in host memory, from where
    batches are gathered into pinned buffers and copied without blocking (data.GatherBuffers)."""
    if fast.device.type != "cuda" or not fast.data_on_device:
        return tensors
    key = _data_key(tensors, fast.device)
    if key not in _DEVICE_CACHE:
        _DEVICE_CACHE.clear()  # one dataset at a time: a worker serves one study
        _DEVICE_CACHE[key] = {
            k: (x.to(fast.device, non_blocking=True), y.to(fast.device, non_blocking=True))
            for k, (x, y) in tensors.items()
        }
    return _DEVICE_CACHE[key]


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on the trial's device (no copy when it is there already)."""
    return x if x.device == device else x.to(device, non_blocking=True)


def _data_key(tensors: dict[str, tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> tuple:
    """Identifies the data: its buffers' addresses (Ray's object store maps the same object at
    the same place in a worker), shapes and a few values, so another dataset never matches."""
    parts: list[Any] = [str(device)]
    for name in sorted(tensors):
        for t in tensors[name]:
            flat = t.reshape(-1)
            probe = flat[:: max(1, flat.numel() // 16)][:16].tolist() if flat.numel() else []
            parts += [name, t.data_ptr(), tuple(t.shape), str(t.dtype), tuple(probe)]
    return tuple(parts)


def _free_gpu_bytes(device: torch.device) -> int:
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)
