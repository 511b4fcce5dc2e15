"""k-means patch tokenizer: nearest-centre ids, row-major patch order, fit quality against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from hf_beit.tokenizers import KMeansPatchTokenizer, load_visual_tokenizer
from hf_beit.tokenizers.kmeans import extract_patches


def _images_from_prototypes(num_images: int, seed: int = 0):
    """Images whose 4x4 cells are noisy copies of 6 prototype patches; returns images and the true cell labels."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(6, 3, 4, 4, generator=generator)
    labels = torch.randint(6, (num_images, 4, 4), generator=generator)
    cells = prototypes[labels] + 0.02 * torch.randn(num_images, 4, 4, 3, 4, 4, generator=generator)
    images = cells.permute(0, 3, 1, 4, 2, 5).reshape(num_images, 3, 16, 16).clamp(0, 1)
    return images, labels.reshape(num_images, 16)


def test_indices_are_nearest_centres_in_row_major_order():
    tokenizer = KMeansPatchTokenizer(vocab_size=5, patch_size=2, image_size=6, num_channels=1)
    tokenizer.codebook.copy_(torch.linspace(0, 1, 5)[:, None].expand(5, 4))
    # A 3x3 grid of constant cells whose value is close to codebook entry grid[i, j].
    grid = torch.tensor([[0, 1, 2], [3, 4, 0], [4, 4, 1]])
    cell_values = torch.linspace(0, 1, 5)[grid] + 0.03
    image = cell_values.repeat_interleave(2, 0).repeat_interleave(2, 1)[None, None]
    assert torch.equal(tokenizer.get_codebook_indices(image), grid.reshape(1, 9))
    # Brute-force nearest centre on random inputs.
    random_images = torch.rand(3, 1, 6, 6)
    patches = extract_patches(random_images, 2)
    expected = torch.cdist(patches, tokenizer.codebook.expand(3, 5, 4)).argmin(-1)
    assert torch.equal(tokenizer.get_codebook_indices(random_images), expected)


def test_fit_recovers_prototype_clusters():
    images, labels = _images_from_prototypes(64)
    tokenizer = KMeansPatchTokenizer.fit(images, vocab_size=6, patch_size=4, steps=50, batch_size=256, progress=False)
    assert tokenizer.token_grid == (4, 4) and tokenizer.vocab_size == 6
    tokens = tokenizer.get_codebook_indices(images)
    # Perfect clustering up to a relabelling: every true class maps to exactly one token and vice versa.
    pairs = set(zip(labels.flatten().tolist(), tokens.flatten().tolist()))
    assert len(pairs) == 6 and len({t for _, t in pairs}) == 6


def test_fit_quality_close_to_sklearn_kmeans():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(200, 1, 8, 8, generator=generator) ** 3  # skewed, unclustered data
    points = extract_patches(images, 2).reshape(-1, 4)
    tokenizer = KMeansPatchTokenizer.fit(
        images, vocab_size=16, patch_size=2, steps=150, batch_size=1024, progress=False
    )
    ours = ((points - tokenizer.codebook[tokenizer.get_codebook_indices(images).flatten()]) ** 2).sum().item()
    reference = KMeans(n_clusters=16, n_init=3, random_state=0).fit(points.numpy().astype(np.float64)).inertia_
    assert ours < 1.1 * reference
    # And far better than a codebook of random data points.
    random_codebook = points[torch.randperm(len(points), generator=generator)[:16]]
    baseline = torch.cdist(points, random_codebook).min(1).values.pow(2).sum().item()
    assert ours < 0.8 * baseline


def test_fit_is_seeded_and_round_trips(tmp_path):
    images, _ = _images_from_prototypes(16, seed=1)
    first = KMeansPatchTokenizer.fit(images, vocab_size=8, patch_size=4, steps=5, seed=3, progress=False)
    second = KMeansPatchTokenizer.fit([images[:8], images[8:]], vocab_size=8, patch_size=4, steps=5, seed=3,
                                      progress=False)
    assert torch.equal(first.codebook, second.codebook)
    first.save_pretrained(tmp_path / "kmeans")
    loaded = load_visual_tokenizer(tmp_path / "kmeans")
    assert isinstance(loaded, KMeansPatchTokenizer) and loaded.get_config() == first.get_config()
    assert torch.equal(loaded.codebook, first.codebook)
    assert torch.equal(loaded.get_codebook_indices(images), first.get_codebook_indices(images))


def test_fit_validation():
    with pytest.raises(ValueError, match="patches for"):
        KMeansPatchTokenizer.fit(torch.rand(1, 3, 8, 8), vocab_size=10, patch_size=4, progress=False)
    with pytest.raises(ValueError, match="square"):
        KMeansPatchTokenizer.fit(torch.rand(4, 3, 8, 16), vocab_size=2, patch_size=4, progress=False)
    with pytest.raises(ValueError, match="multiple"):
        KMeansPatchTokenizer(vocab_size=4, patch_size=3, image_size=8)
