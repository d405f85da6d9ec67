import colorsys

import numpy as np
import pytest
from scipy.stats import spearmanr

from gb_kedro.slides.color import brown_mask, brown_mask_float, brown_ratio, patch_brown_ratios


def test_integer_rule_equals_float_hsl_on_all_kinds_of_pixels():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(400_000, 3)).astype(np.uint8)
    # plus pixels right on the hue and lightness boundaries
    edges = np.array(
        [
            [255, 85, 0],
            [255, 212, 0],
            [255, 213, 0],
            [255, 84, 0],
            [13, 13, 12],
            [204, 204, 203],
            [205, 205, 204],
            [128, 128, 128],
        ],
        np.uint8,
    )
    pixels = np.vstack([pixels, edges])
    np.testing.assert_array_equal(brown_mask(pixels), brown_mask_float(pixels))


@pytest.mark.parametrize(
    ("rgb", "expected"),
    [
        ((150, 103, 54), True),
        ((90, 80, 150), False),
        ((240, 236, 231), False),
        ((230, 180, 200), False),
        ((14, 10, 6), False),
        ((20, 14, 8), True),
    ],
)
def test_hue_is_in_degrees(rgb, expected):
    # Check against the standard library's HLS (hue in [0, 1) -> degrees).
    h, lightness, _ = colorsys.rgb_to_hls(*(c / 255 for c in rgb))
    assert (abs(h * 360 - 35) <= 15 and 0.05 <= lightness <= 0.8) == expected
    assert bool(brown_mask(np.array([[rgb]], np.uint8))[0, 0]) == expected


def test_patch_ratios_of_a_strip():
    rng = np.random.default_rng(1)
    strip = rng.integers(0, 256, size=(32, 4 * 32, 3)).astype(np.uint8)
    ratios = patch_brown_ratios(strip, 32)
    assert ratios == pytest.approx([brown_ratio(strip[:, k * 32 : (k + 1) * 32]) for k in range(4)])


def test_brown_score_follows_dab_optical_density_on_real_ihc():
    skimage = pytest.importorskip("skimage")
    from skimage.color import rgb2hed

    image = skimage.data.immunohistochemistry()  # real DAB IHC, 512 x 512
    dab = rgb2hed(image)[..., 2]
    scores, density = [], []
    for y in range(0, 512, 64):
        for x in range(0, 512, 64):
            scores.append(brown_ratio(image[y : y + 64, x : x + 64]))
            density.append(dab[y : y + 64, x : x + 64].mean())
    rho = spearmanr(scores, density).statistic
    assert rho >= 0.8, rho
