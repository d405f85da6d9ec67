import numpy as np
import pandas as pd
import pytest

from gb_kedro.errors import InputDataError
from gb_kedro.slides.color import brown_mask, brown_mask_float
from gb_kedro.slides.tiling import TilingOptions, choose_level, open_slide, score_slide, score_slides
from gb_kedro.synthetic.slides import SlideSpec, make_scene, write_pyramid_tiff
from tests.helpers import base_options


def opts(**overrides) -> TilingOptions:
    return TilingOptions.from_dict(base_options("data_engineering.tiling", **overrides))


CODE = {"nucleus_size": 0, "elongation": 1, "arrangement": -1, "chromatin_texture": 0, "cell_density": 1, "invasion": 0}


@pytest.fixture(scope="module")
def synthetic_slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("slides") / "s.tif"
    write_pyramid_tiff(path, make_scene(SlideSpec("S1", "M1", "L1", "P1", CODE, seed=3, width=1536, height=1536)))
    return path


def test_synthetic_pyramid_opens_with_levels_and_mpp(synthetic_slide):
    slide = open_slide(synthetic_slide)
    assert slide.properties["openslide.vendor"] == "generic-tiff"
    assert slide.level_count == 3 and slide.level_dimensions[0] == (1536, 1536)
    assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(1.0)
    assert choose_level(slide, 1.0, 0.25) == (0, 1.0)
    assert choose_level(slide, 4.0, 0.25) == (1, 4.0)
    slide.close()


def test_tiler_keeps_exactly_the_patches_of_a_naive_per_patch_float_loop(synthetic_slide):
    patches, summary = score_slide(synthetic_slide, opts(prefilter="none"))
    slide = open_slide(synthetic_slide)
    naive = []
    for y in range(0, 1536, 256):
        for x in range(0, 1536, 256):
            rgb = np.asarray(slide.read_region((x, y), 0, (256, 256)).convert("RGB"))
            naive.append((x, y, brown_mask_float(rgb).mean()))
    naive = pd.DataFrame(naive, columns=["x", "y", "ratio"])
    merged = patches.merge(naive, on=["x", "y"])
    assert len(merged) == 36
    np.testing.assert_allclose(merged["brown_ratio"], merged["ratio"], atol=1e-6)
    assert summary["tumour_patches"] == int((naive["ratio"] > 0.2).sum()) > 0
    for prefilter in ("tissue", "brown"):
        kept, _ = score_slide(synthetic_slide, opts(prefilter=prefilter))
        assert set(map(tuple, kept.loc[kept["tumour"], ["x", "y"]].to_numpy())) == set(
            map(tuple, patches.loc[patches["tumour"], ["x", "y"]].to_numpy())
        )


def test_real_he_slide_keeps_almost_nothing(shared):
    patches, summary = score_slide(shared("slides/cmu_small_region_he.svs"), opts(prefilter="tissue"))
    assert summary["candidate_patches"] > 30  # tissue patches
    assert summary["tumour_patches"] < 0.02 * summary["candidate_patches"]


def test_real_ki67_slide_brown_pixels_lie_on_dab_stained_nuclei(shared):
    from skimage.color import rgb2hed

    path = shared("slides/ki67_ihc_os2_generic_tiled.tif")
    patches, summary = score_slide(path, opts(prefilter="none"))
    assert summary["scored_patches"] == 16 and patches["brown_ratio"].between(0, 1).all()
    slide = open_slide(path)
    rgb = np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB"))
    dab = rgb2hed(rgb)[..., 2]
    mask = brown_mask(rgb)
    tissue = rgb.min(axis=-1) < 215
    # Brown pixels carry several times the DAB density of the other (blue-stained) tissue.
    assert dab[mask].mean() > 3 * dab[tissue & ~mask].mean()
    assert 0.005 < mask.mean() < 0.2


def test_corrupt_and_missing_slides_are_named(shared, synthetic_slide):
    with pytest.raises(InputDataError, match=r"slide B1 \(.*broken\.svs\): not a slide format OpenSlide can read"):
        score_slide(shared("slides/broken.svs"), opts(), "B1")
    with pytest.raises(InputDataError, match=r"slide M \(.*nope\.tif\): file not found"):
        score_slide("/nonexistent/nope.tif", opts(), "M")
    slides = pd.DataFrame(
        {
            "slide_id": ["good", "bad", "missing"],
            "path": [str(synthetic_slide), str(shared("slides/broken.svs")), "/x/nope.tif"],
        }
    )
    with pytest.raises(InputDataError, match="slide bad"):
        score_slides(slides, opts(), on_error="raise")
    patches, summary = score_slides(slides, opts(), n_workers=2, on_error="skip")
    status = summary.set_index("slide_id")["status"]
    assert status.to_dict() == {"good": "ok", "bad": "failed", "missing": "failed"}
    assert set(patches["slide_id"]) == {"good"} and patches["tumour"].sum() > 0
    assert "file not found" in summary.set_index("slide_id").at["missing", "error"]


def test_a_slide_without_tumour_is_reported_not_fatal(shared):
    slides = pd.DataFrame({"slide_id": ["he"], "path": [str(shared("slides/cmu_small_region_he.svs"))]})
    patches, summary = score_slides(slides, opts(prefilter="tissue"))
    assert summary.at[0, "status"] == "no_tumour" and summary.at[0, "tumour_patches"] == 0


def test_raw_tile_reader_gives_openslides_scores_and_falls_back(synthetic_slide, shared):
    fast, summary = score_slide(synthetic_slide, opts(prefilter="none", reader="auto"))
    slow, slow_summary = score_slide(synthetic_slide, opts(prefilter="none", reader="openslide"))
    assert (summary["reader"], slow_summary["reader"]) == ("tifffile", "openslide")
    np.testing.assert_array_equal(fast["brown_ratio"].to_numpy(), slow["brown_ratio"].to_numpy())
    svs = shared("slides/cmu_small_region_he.svs")  # 240-px tiles: not the patches
    assert score_slide(svs, opts(prefilter="none"))[1]["reader"] == "openslide"
    with pytest.raises(ValueError, match="not stored as 256x256 RGB tiles"):
        score_slide(svs, opts(reader="tifffile"))
