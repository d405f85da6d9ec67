import numpy as np
import pytest

from gb_kedro.slides.morphometry import ALL_FEATURES, fill_missing, morphometry, patch_features
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
    f = dict(zip(ALL_FEATURES, patch_features(_image(centres, radius, host=host), *_options()), strict=True))
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
    r = dict(zip(ALL_FEATURES, patch_features(_image(regular, 4.0), *_options()), strict=True))
    c = dict(zip(ALL_FEATURES, patch_features(_image(clusters, 4.0), *_options()), strict=True))
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
    assert out.shape == (2, len(ALL_FEATURES)) and np.isfinite(out).all()
    assert np.array_equal(
        fill_missing(np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]])), [[1, 0], [3, 0], [2, 0]]
    )


def _nuclei(shapes, size: int = 256) -> np.ndarray:
    """Tan tumour cytoplasm with brown nuclei: ``shapes`` of (cy, cx, semi-axis a, semi-axis b, angle, polarised)."""
    yy, xx = np.mgrid[:size, :size]
    od = np.zeros((size, size, 3)) + 0.4 * DAB
    for cy, cx, a, b, angle, polarised in shapes:
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1
        od[inside] = 0.9 * DAB
        if polarised:  # the stain's mass on one side of the nucleus (the same stain amount overall)
            od[inside & (u > 0)] = 1.05 * DAB
            od[inside & (u <= 0)] = 0.75 * DAB
    return np.clip(255 * 10 ** (-od), 0, 255).astype(np.uint8)


def test_richer_features_read_what_they_name():
    """Aligned elongated nuclei read as coherent, randomly turned ones not; nuclei whose stain sits on one side
    (polarised chromatin) displace their mass, evenly stained ones do not; the base features are unchanged."""
    rng = np.random.default_rng(2)
    centres = [(y, x) for y in range(24, 240, 32) for x in range(24, 240, 32)]
    aligned = [(y, x, 9.0, 4.5, 0.3, False) for y, x in centres]
    turned = [(y, x, 9.0, 4.5, rng.uniform(0, np.pi), False) for y, x in centres]
    polarised = [(y, x, 7.0, 7.0, rng.uniform(0, 2 * np.pi), True) for y, x in centres]
    even = [(y, x, 7.0, 7.0, 0.0, False) for y, x in centres]
    f = {
        name: dict(zip(ALL_FEATURES, patch_features(_nuclei(shapes), *_options()), strict=True))
        for name, shapes in (("aligned", aligned), ("turned", turned), ("polarised", polarised), ("even", even))
    }
    assert f["aligned"]["orientation_coherence"] > 0.9 > 0.5 > f["turned"]["orientation_coherence"]
    assert f["aligned"]["elongation_median"] > 1.6 > 1.2 > f["even"]["elongation_median"]
    assert f["polarised"]["mass_displacement_mean"] > 3 * f["even"]["mass_displacement_mean"]
    assert f["polarised"]["mass_displacement_mean"] > 0.05
    assert f["even"]["nuclei_per_patch_area"] == pytest.approx(1e4 * len(centres) / 256**2)
    assert f["even"]["merged_share"] == 0.0 and f["even"]["tumour_components"] == 1.0
