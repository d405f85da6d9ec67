import numpy as np
import pytest

from gb_kedro.slides.morphometry import FEATURES, fill_missing, morphometry, patch_features
from tests.helpers import base_options

DAB = np.array([0.27, 0.57, 0.78])  # optical density per unit of DAB (R, G, B): brown
HEMATOXYLIN = np.array([0.65, 0.70, 0.29])  # blue


def _image(centres, radius: float, size: int = 256, host=()) -> np.ndarray:
    """Tan tumour cytoplasm (light DAB) with brown discs (tumour nuclei) and blue discs (host nuclei)."""
    yy, xx = np.mgrid[:size, :size]
    od = np.zeros((size, size, 3)) + 0.4 * DAB
    for cy, cx in centres:
        od[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 0.9 * DAB
    for cy, cx in host:
        od[(yy - cy) ** 2 + (xx - cx) ** 2 <= 3.0**2] = 0.9 * HEMATOXYLIN
    return np.clip(255 * 10 ** (-od), 0, 255).astype(np.uint8)


def _options():
    m = base_options("morphometry")
    return m["min_area"], m["neighbour_radius"], m["tumour_od_difference"], m["smooth_px"]


@pytest.mark.parametrize("radius", [4.0, 6.0])
def test_known_nuclei_are_counted_and_sized(radius):
    rng = np.random.default_rng(0)
    grid = [(y, x) for y in range(20, 240, 36) for x in range(20, 240, 36)]
    centres = [grid[i] for i in rng.choice(len(grid), 30, replace=False)]
    host = [(y + 18, x + 18) for y, x in grid[:5] if y + 18 < 250 and x + 18 < 250]
    f = dict(zip(FEATURES, patch_features(_image(centres, radius, host=host), *_options()), strict=True))
    assert f["nuclei_count"] == 30  # the brown ones; the blue (host) ones are not tumour nuclei
    true_area = float(((np.mgrid[-10:11, -10:11] ** 2).sum(0) <= radius**2).sum())
    assert abs(f["area_mean"] - true_area) <= 0.1 * true_area
    assert f["elongation_mean"] < 1.2 and f["solidity_mean"] > 0.8
    assert f["host_nuclei_fraction"] == pytest.approx(len(host) / (30 + len(host)))
    assert f["tumour_fraction"] > 0.9


def test_regular_grid_reads_as_regular_and_clusters_as_clustered():
    regular = [(y, x) for y in range(16, 250, 24) for x in range(16, 250, 24)]
    rng = np.random.default_rng(1)
    clusters = [
        (c[0] + dy, c[1] + dx) for c in [(60, 60), (180, 70), (120, 190)] for dy, dx in rng.integers(-20, 21, (30, 2))
    ]
    clusters = [
        (y, x) for i, (y, x) in enumerate(clusters) if all((y - a) ** 2 + (x - b) ** 2 >= 100 for a, b in clusters[:i])
    ]
    r = dict(zip(FEATURES, patch_features(_image(regular, 4.0), *_options()), strict=True))
    c = dict(zip(FEATURES, patch_features(_image(clusters, 4.0), *_options()), strict=True))
    assert r["clark_evans"] > 1.5 > c["clark_evans"]
    assert c["neighbours_within_radius"] > r["neighbours_within_radius"]


def test_stain_intensity_is_not_a_feature():
    """A darker scan of the same nuclei gives (almost) the same features: stain amount is slide identity."""
    centres = [(y, x) for y in range(20, 240, 30) for x in range(25, 240, 40)]
    light = _image(centres, 5.0)
    dark = np.clip(light.astype(float) * 0.8, 0, 255).astype(np.uint8)
    a, b = (patch_features(im, *_options()) for im in (light, dark))
    keep = np.isfinite(a) & np.isfinite(b)
    assert np.allclose(a[keep], b[keep], rtol=0.1, atol=0.02)


def test_batch_shape_and_missing_values():
    empty = np.full((256, 256, 3), 240, np.uint8)  # glass: no nucleus, no tumour
    batch = np.stack([_image([(50, 50), (100, 120)], 5.0), empty]).transpose(0, 3, 1, 2)
    out = morphometry(batch, *_options())
    assert out.shape == (2, len(FEATURES)) and np.isfinite(out).all()
    assert np.array_equal(
        fill_missing(np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]])), [[1, 0], [3, 0], [2, 0]]
    )
