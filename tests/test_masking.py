"""Block-wise masking: exact agreement with a literal transcription of the BEiT loop, and statistics."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from hf_beit.masking import MaskingGenerator

LOG_ASPECT = (math.log(0.3), math.log(1 / 0.3))


def reference_mask(height, width, budget_total, min_patches, uniform, randint):
    """Literal re-implementation of the paper's loop (cell-by-cell fill, python ints) with injectable randomness."""
    mask = [[0] * width for _ in range(height)]
    blocks = []
    count = 0
    while count < budget_total:
        budget = budget_total - count
        delta = 0
        for _attempt in range(10):
            area = uniform(min_patches, budget)
            aspect = math.exp(uniform(*LOG_ASPECT))
            h = round(math.sqrt(area * aspect))
            w = round(math.sqrt(area / aspect))
            if w < width and h < height:
                top = randint(0, height - h)
                left = randint(0, width - w)
                already = sum(mask[i][j] for i in range(top, top + h) for j in range(left, left + w))
                if 0 < h * w - already <= budget:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if mask[i][j] == 0:
                                mask[i][j] = 1
                                delta += 1
                if delta > 0:
                    break
        if delta == 0:
            break
        blocks.append(delta)
        count += delta
    return np.array(mask, dtype=bool), blocks


def numpy_reference(height, width, budget_total, min_patches, rng):
    return reference_mask(
        height,
        width,
        budget_total,
        min_patches,
        uniform=lambda a, b: a + (b - a) * rng.random(),
        randint=lambda a, b: int(rng.integers(a, b + 1)),
    )


@pytest.mark.parametrize(
    "grid,budget,min_patches", [((14, 14), 75, 16), ((8, 8), 24, 5), ((6, 10), 20, 4), ((3, 3), 4, 16)]
)
def test_identical_to_literal_loop_for_same_random_stream(grid, budget, min_patches):
    generator = MaskingGenerator(grid, num_masking_patches=budget, min_num_patches=min_patches, seed=123)
    rng = np.random.default_rng(123)
    for _ in range(300):
        expected, expected_blocks = numpy_reference(*grid, budget, min_patches, rng)
        mask, blocks = generator.sample_with_blocks()
        np.testing.assert_array_equal(mask, expected)
        assert [block.added for block in blocks] == expected_blocks


def test_batched_api_shape_dtype_and_reproducibility():
    masks = MaskingGenerator(seed=7).batch(6)
    assert masks.shape == (6, 196) and masks.dtype == torch.bool
    again = MaskingGenerator(seed=7)
    # Same seed -> same masks, and the batch split does not matter.
    rows = torch.cat([again(2), again(4)])
    assert torch.equal(rows, masks)
    assert not torch.equal(masks[0], masks[1])
    # Row-major flattening of the 2-D mask.
    single = MaskingGenerator(seed=3)
    grid = single.sample()
    assert torch.equal(MaskingGenerator(seed=3).batch(1)[0], torch.from_numpy(grid.reshape(-1)))


def _feasible(h, w, low_area, high_area):
    """Can round(sqrt(A*r)) == h and round(sqrt(A/r)) == w for some A in [low, high], r in the aspect range?"""
    area_lo, area_hi = (h - 0.5) * (w - 0.5), (h + 0.5) * (w + 0.5)
    ratio_lo, ratio_hi = (h - 0.5) / (w + 0.5), (h + 0.5) / max(w - 0.5, 1e-9)
    return (
        area_lo <= high_area + 1e-9
        and area_hi >= low_area - 1e-9
        and ratio_lo <= math.exp(LOG_ASPECT[1])
        and ratio_hi >= math.exp(LOG_ASPECT[0])
    )


def test_hand_derived_properties_over_many_draws():
    generator = MaskingGenerator(seed=0)
    counts = []
    frequency = np.zeros((14, 14))
    for _ in range(3000):
        mask, blocks = generator.sample_with_blocks()
        count = int(mask.sum())
        counts.append(count)
        frequency += mask
        assert count <= 75  # never above budget
        assert count == sum(block.added for block in blocks)
        union = np.zeros_like(mask)
        remaining = 75
        for block in blocks:
            assert block.height < 14 and block.width < 14  # strictly inside the grid
            assert 0 < block.added <= remaining
            # The rectangle must come from a target area in [min(16, budget), max(16, budget)].
            assert _feasible(block.height, block.width, min(16, remaining), max(16, remaining))
            if remaining >= 16:
                assert block.height * block.width >= 12  # smallest rounded rectangle of area >= 16, aspect >= 0.3
            union[block.top : block.top + block.height, block.left : block.left + block.width] = True
            remaining -= block.added
        np.testing.assert_array_equal(union, mask)  # mask = union of its blocks
        assert blocks[0].added == blocks[0].height * blocks[0].width  # first block lands on an empty grid
    counts = np.array(counts)
    assert 73.5 < counts.mean() <= 75
    assert (counts == 75).mean() > 0.5
    # Log-uniform aspect is symmetric around 1 and positions are uniform: the per-cell masking frequency is
    # invariant under transposition and flips (up to sampling noise).
    frequency /= len(counts)
    assert abs(frequency.sum() - counts.mean()) < 1e-9
    for transformed in (frequency.T, frequency[::-1], frequency[:, ::-1]):
        assert np.abs(transformed - frequency).max() < 0.06
    # Blocks favour the centre: a corner cell is covered less often than a central one.
    assert frequency[0, 0] < frequency[6:8, 6:8].mean()


def test_statistics_match_original_python_random_loop():
    """Compare against the literal loop driven by Python's `random` (the original's RNG): same distribution."""
    py_rng = random.Random(2021)
    reference_counts, reference_first, reference_nblocks = [], [], []
    reference_frequency = np.zeros((14, 14))
    for _ in range(2000):
        mask, blocks = reference_mask(14, 14, 75, 16, py_rng.uniform, py_rng.randint)
        reference_counts.append(mask.sum())
        reference_first.append(blocks[0])
        reference_nblocks.append(len(blocks))
        reference_frequency += mask
    generator = MaskingGenerator(seed=99)
    counts, first, nblocks = [], [], []
    frequency = np.zeros((14, 14))
    for _ in range(2000):
        mask, blocks = generator.sample_with_blocks()
        counts.append(mask.sum())
        first.append(blocks[0].added)
        nblocks.append(len(blocks))
        frequency += mask

    def close(a, b, tolerance_sigmas=5.0):
        a, b = np.asarray(a, float), np.asarray(b, float)
        standard_error = math.sqrt(a.var() / len(a) + b.var() / len(b))
        return abs(a.mean() - b.mean()) <= tolerance_sigmas * standard_error + 1e-12

    assert close(counts, reference_counts)
    assert close(first, reference_first)
    assert close(nblocks, reference_nblocks)
    assert abs(np.mean(np.array(counts) == 75) - np.mean(np.array(reference_counts) == 75)) < 0.06
    assert np.abs(frequency - reference_frequency).max() / 2000 < 0.07


def test_for_grid_scaling_and_validation():
    default = MaskingGenerator.for_grid(14)
    assert (default.num_masking_patches, default.min_num_patches) == (75, 16)
    small = MaskingGenerator.for_grid(8, seed=0)
    assert (small.num_masking_patches, small.min_num_patches) == (24, 5)
    assert small.batch(50).sum(dim=1).max() <= 24
    with pytest.raises(ValueError, match="num_masking_patches"):
        MaskingGenerator(4, num_masking_patches=17)
    with pytest.raises(ValueError, match="min_aspect"):
        MaskingGenerator(min_aspect=0)
