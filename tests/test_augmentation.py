"""Tests for advlogits.augmentation: crop-flip equals the documented recipe image by image, every output is a crop
of the padded image, "none" changes and draws nothing, and bad arguments are refused."""

from __future__ import annotations

import pytest
import torch

from advlogits import augmentation, profiles, train


def _crop_of_padded(image: torch.Tensor, top: int, left: int, flip: bool) -> torch.Tensor:
    """Loop-free reference for one image (C, H, W): the crop at (top, left) of its zero-padded copy, maybe flipped."""
    c, h, w = image.shape
    p = augmentation.CROP_PADDING
    padded = torch.zeros(c, h + 2 * p, w + 2 * p, dtype=image.dtype)
    padded[:, p : p + h, p : p + w] = image
    crop = padded[:, top : top + h, left : left + w]
    return crop.flip(-1) if flip else crop


def _all_crops(image: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int, bool]]]:
    """Every crop-flip output of one image, built one by one: candidates (M, C, H, W) and their (top, left, flip)."""
    positions = [
        (top, left, flip)
        for top in range(2 * augmentation.CROP_PADDING + 1)
        for left in range(2 * augmentation.CROP_PADDING + 1)
        for flip in (False, True)
    ]
    return torch.stack([_crop_of_padded(image, *pos) for pos in positions]), positions


def _batch(n: int, shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0) -> torch.Tensor:
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))


def test_augmentations_are_one_registry() -> None:
    assert augmentation.AUGMENTATIONS == ("none", "crop-flip") and augmentation.CROP_PADDING == 4
    assert train.AUGMENTATIONS is augmentation.AUGMENTATIONS, "train and profiles check against one tuple"
    assert profiles.AUGMENTATIONS is augmentation.AUGMENTATIONS


def test_crop_flip_keeps_shape_dtype_range_and_is_seeded() -> None:
    x = _batch(16)
    before = x.clone()
    for dtype in (torch.float32, torch.float64):
        out = augmentation.augment(x.to(dtype), "crop-flip", generator=torch.Generator().manual_seed(0))
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device and out.is_contiguous()
        assert float(out.min()) >= 0.0 and float(out.max()) <= float(x.max())
    assert torch.equal(x, before), "the input is never modified"
    first = augmentation.augment(x, "crop-flip", generator=torch.Generator().manual_seed(1))
    again = augmentation.augment(x, "crop-flip", generator=torch.Generator().manual_seed(1))
    other = augmentation.augment(x, "crop-flip", generator=torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.data_ptr() != x.data_ptr()
    generator = torch.Generator().manual_seed(1)
    assert not torch.equal(
        augmentation.augment(x, "crop-flip", generator=generator),
        augmentation.augment(x, "crop-flip", generator=generator),
    ), "the generator moves on"
    assert augmentation.augment(x[:0], "crop-flip", generator=generator).shape == (0, 3, 32, 32)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (2, 10, 13)])
def test_crop_flip_equals_a_loop_over_images(shape: tuple[int, int, int]) -> None:
    """The vectorised batch equals the documented recipe written one image at a time, with the documented draws
    (offsets as one randint of shape (2, N): rows then columns; then flips as rand(N) < 0.5)."""
    x = _batch(6, shape, seed=3)
    out = augmentation.augment(x, "crop-flip", generator=torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    offsets = torch.randint(0, 2 * augmentation.CROP_PADDING + 1, (2, len(x)), generator=generator)
    flips = torch.rand(len(x), generator=generator) < 0.5
    for i in range(len(x)):
        expected = _crop_of_padded(x[i], int(offsets[0, i]), int(offsets[1, i]), bool(flips[i]))
        assert torch.equal(out[i], expected), i


def test_every_crop_flip_output_is_a_crop_of_the_padded_image_and_about_half_are_flipped() -> None:
    """Over 4000 copies of one image (distinct pixel values, so every crop and flip is distinguishable), each output
    is one of the 81 x 2 candidates built image by image; about half are flipped and every offset occurs."""
    h, w = 12, 16
    image = (torch.arange(h * w, dtype=torch.float32).reshape(1, h, w) + 1) / (h * w + 1)
    candidates, positions = _all_crops(image)
    x = image.expand(4000, 1, h, w)
    out = augmentation.augment(x, "crop-flip", generator=torch.Generator().manual_seed(0))
    distance = torch.cdist(out.flatten(1).double(), candidates.flatten(1).double())
    best = distance.argmin(dim=1)  # the nearest candidate (cdist rounds); then compared exactly
    assert torch.equal(out, candidates[best]), "every output is a candidate exactly"
    drawn = [positions[i] for i in best.tolist()]
    flipped = sum(f for _, _, f in drawn) / len(drawn)
    assert 0.46 < flipped < 0.54, flipped  # 1/2 within 5 standard deviations (0.008)
    assert {(top, left) for top, left, _ in drawn} == {(top, left) for top, left, _ in positions}, (
        "all 81 offsets occur"
    )


def test_augment_none_returns_the_input_and_draws_nothing() -> None:
    x = _batch(4)
    generator = torch.Generator().manual_seed(5)
    state = generator.get_state()
    assert augmentation.augment(x, "none", generator=generator) is x
    assert torch.equal(generator.get_state(), state)


def test_augment_refuses_bad_arguments() -> None:
    x, generator = _batch(2), torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"^kind must be one of 'none', 'crop-flip' \(got 'flip'\)$"):
        augmentation.augment(x, "flip", generator=generator)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^generator must be a CPU torch\.Generator \(got None\); pass "):
        augmentation.augment(x, "crop-flip", generator=None)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"^x must be a tensor of shape \(N, C, H, W\) \(got torch\.float32 tensor "
        r"of shape \(3, 32, 32\)\)$",
    ):
        augmentation.augment(x[0], "crop-flip", generator=generator)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_crop_flip_on_a_gpu_equals_the_cpu() -> None:
    x = _batch(64)
    cpu = augmentation.augment(x, "crop-flip", generator=torch.Generator().manual_seed(3))
    gpu = augmentation.augment(x.cuda(), "crop-flip", generator=torch.Generator().manual_seed(3))
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
