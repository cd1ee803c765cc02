"""Augmentation of training batches: "none", or "crop-flip", CIFAR-10's random padded crop and horizontal flip.

`advlogits.train` applies `augment` to every training batch when a config asks for it, drawing from a generator of
the batch's epoch, so that a resumed run sees the same augmented batches.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from .accel import to_device
from .checks import check_choice, describe, fail

AugmentName = Literal["none", "crop-flip"]
AUGMENTATIONS: tuple[str, ...] = get_args(AugmentName)  # the kinds of `augment` (and of TrainConfig.augment)
CROP_PADDING = 4  # "crop-flip": zero pixels added on each side before the random crop of the original size


def augment(x: Tensor, kind: AugmentName, *, generator: torch.Generator) -> Tensor:
    """A training batch ``x`` (N, C, H, W) augmented by ``kind``, one random draw per image.

    ``"none"`` returns ``x`` itself (nothing drawn from ``generator``). ``"crop-flip"`` is the standard CIFAR-10
    recipe: every image is zero-padded by `CROP_PADDING` pixels on each side, a window of its original size
    (H, W) is cropped at a uniformly random offset (each of the ``(2 * CROP_PADDING + 1) ** 2`` positions equally
    likely), and the crop is flipped left-right with probability 1/2. Vectorised over the batch: the offsets
    (rows then columns, one ``randint`` of shape (2, N)) and then the flips (``rand(N) < 0.5``) are drawn on the
    CPU from ``generator`` and moved to x's device, so the result depends only on the generator's state and N,
    not on the device. Returns a new tensor with x's shape, dtype and device (``x`` is never modified); pixel
    values stay in x's range, plus the zeros of the padding.

    Examples::

        xb = augment(xb, "crop-flip", generator=torch.Generator().manual_seed(0))
    """
    check_choice("kind", kind, AUGMENTATIONS)
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        fail(
            "generator",
            "a CPU torch.Generator",
            generator,
            hint="pass torch.Generator().manual_seed(seed); the draws are moved to x's device",
        )
    if not isinstance(x, Tensor) or x.ndim != 4:
        fail("x", "a tensor of shape (N, C, H, W)", x, shown=describe(x) if isinstance(x, Tensor) else type(x).__name__)
    if kind == "none":
        return x
    n, _, h, w = x.shape
    p = CROP_PADDING
    offsets = torch.randint(0, 2 * p + 1, (2, n), generator=generator)
    flipped = torch.rand(n, generator=generator) < 0.5
    device = x.device
    top, left, flip = to_device(torch.cat([offsets, flipped[None].long()]), device)  # one copy, no host wait
    rows = top[:, None] + torch.arange(h, device=device)  # (N, H): the padded image's rows each crop takes
    cols = left[:, None] + torch.arange(w, device=device)  # (N, W): its columns, right to left where flipped
    cols = torch.where(flip[:, None].bool(), cols.flip(1), cols)
    padded = F.pad(x, (p, p, p, p))
    batch = torch.arange(n, device=device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C): the batch index dims come first
    return out.permute(0, 3, 1, 2).contiguous()
