"""Device-side preprocessing: what background and ink become, and the paper's padding."""

import pytest
import torch


def test_preprocessing_maps_background_and_ink_as_specified() -> None:
    from lenet.data.transforms import Preprocessing, scaled

    half = Preprocessing(mean=0.5, std=0.5)
    x = half(torch.tensor([[[0, 255]]], dtype=torch.uint8))
    assert x.flatten().tolist() == [-1.0, 1.0]
    paper = scaled(-0.1, 1.175, pad=2)
    y = paper(torch.full((1, 28, 28), 255, dtype=torch.uint8))
    assert y.shape == (1, 1, 32, 32)
    assert y[0, 0, 0, 0].item() == pytest.approx(-0.1)  # padded border is background
    assert y[0, 0, 16, 16].item() == pytest.approx(1.175)
