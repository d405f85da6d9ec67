import numpy as np
import pandas as pd
import pytest

from gb_kedro.config import TilingOptions
from gb_kedro.datasets.patch_store import PatchStore
from gb_kedro.errors import InputDataError
from gb_kedro.slides.color import brown_mask, brown_mask_float
from gb_kedro.slides.tiling import (
    LevelChoice,
    choose_level,
    open_slide,
    otsu_threshold,
    score_slide,
    score_slides,
    threshold_effects,
)
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
    assert choose_level(slide, 1.0, 0.25, 256) == LevelChoice(0, 1.0, "metadata", 256)
    assert choose_level(slide, 4.0, 0.25, 256) == LevelChoice(1, 4.0, "metadata", 256)
    # no level at 2 um/px: read 512 px of level 0 per 256-px patch; 8 um/px from level 1 (4 um/px)
    assert choose_level(slide, 2.0, 0.25, 256) == LevelChoice(0, 1.0, "metadata", 512)
    assert choose_level(slide, 8.0, 0.25, 256) == LevelChoice(1, 4.0, "metadata", 512)
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
    # 0.499 um/px, one level: each 256-px patch is 513 px of the slide resampled to 1 um/px (4 x 5 patches)
    assert (summary["level"], summary["read_size"], summary["mpp_source"]) == (0, 513, "metadata")
    assert summary["grid_patches"] == 20 and summary["candidate_patches"] > 12  # tissue patches
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


def test_corrupt_and_missing_slides_are_named(shared, synthetic_slide, tmp_path):
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
        score_slides(slides, opts(), PatchStore(tmp_path / "a"), on_error="raise")
    patches, summary = score_slides(slides, opts(), PatchStore(tmp_path / "b"), n_workers=2, on_error="skip")
    status = summary.set_index("slide_id")["status"]
    assert status.to_dict() == {"good": "ok", "bad": "failed", "missing": "failed"}
    assert set(patches["slide_id"]) == {"good"} and patches["tumour"].sum() > 0
    assert "file not found" in summary.set_index("slide_id").at["missing", "error"]


def test_a_slide_without_tumour_is_reported_not_fatal(shared, tmp_path):
    slides = pd.DataFrame({"slide_id": ["he"], "path": [str(shared("slides/cmu_small_region_he.svs"))]})
    patches, summary = score_slides(slides, opts(prefilter="tissue"), PatchStore(tmp_path))
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


def _level0(path) -> np.ndarray:
    slide = open_slide(path)
    try:
        return np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB"))
    finally:
        slide.close()


def test_a_half_micron_one_level_slide_is_tiled_over_the_same_field_as_a_one_micron_slide(synthetic_slide, tmp_path):
    """A 20x scan (0.5 um/px, one level) of the same tissue: the same patch grid in microns, 256 um per patch,
    and nearly the same pixels once resampled."""
    import tifffile

    from gb_kedro.slides.dataset import PatchDataset

    pixels = _level0(synthetic_slide)
    fine = tmp_path / "fine.tif"
    tifffile.imwrite(
        fine,
        pixels.repeat(2, axis=0).repeat(2, axis=1),
        tile=(256, 256),
        photometric="rgb",
        compression="jpeg",
        resolution=(2e4, 2e4),  # px per cm: 0.5 um/px
        resolutionunit="CENTIMETER",
    )
    coarse, s1 = score_slide(synthetic_slide, opts(prefilter="none"))
    resampled, s2 = score_slide(fine, opts(prefilter="none"))
    assert (s1["mpp"], s1["read_size"]) == (1.0, 256)
    assert (s2["mpp"], s2["read_size"], s2["reader"]) == (0.5, 512, "openslide")
    # the same grid in microns, each patch 256 um wide, 256 px out
    np.testing.assert_array_equal(resampled[["x", "y"]].to_numpy() * 0.5, coarse[["x", "y"]].to_numpy() * 1.0)
    assert (resampled["size_level0"] * 0.5 == 256).all() and (resampled["size"] == 256).all()
    assert np.abs(resampled["brown_ratio"].to_numpy() - coarse["brown_ratio"].to_numpy()).max() < 0.05
    a = PatchDataset(coarse.assign(slide_id="c"), {"c": str(synthetic_slide)}).read(7)
    b = PatchDataset(resampled.assign(slide_id="f"), {"f": str(fine)}).read(7)
    assert a.shape == b.shape == (256, 256, 3)
    assert np.abs(a.astype(float) - b.astype(float)).mean() < 6  # JPEG twice, box filter


def test_a_slide_without_resolution_needs_the_fallback(synthetic_slide, tmp_path):
    import tifffile

    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, _level0(synthetic_slide), tile=(256, 256), photometric="rgb", compression="jpeg")
    with pytest.raises(InputDataError, match=r"bare\.tif\): no microns-per-pixel, objective power or fallback"):
        score_slide(bare, opts(), "B")
    patches, summary = score_slide(bare, opts(fallback_mpp=0.5, prefilter="none"), "B")
    assert (summary["mpp_source"], summary["read_size"]) == ("parameter", 512) and len(patches) == 9


def test_pyramidal_ome_tiff_is_tiled_through_tifffile(synthetic_slide, tmp_path):
    """An OME-TIFF as QuPath / bfconvert write it: the pyramid in SubIFDs, mpp in the OME-XML."""
    import tifffile

    pixels = _level0(synthetic_slide)
    path = tmp_path / "slide.ome.tif"
    options = dict(tile=(256, 256), photometric="rgb", compression="jpeg")
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        metadata = {
            "axes": "YXS",
            "PhysicalSizeX": 1.0,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 1.0,
            "PhysicalSizeYUnit": "µm",
        }
        tif.write(pixels, subifds=2, metadata=metadata, **options)
        tif.write(pixels[::2, ::2], subfiletype=1, **options)
        tif.write(pixels[::4, ::4], subfiletype=1, **options)
    slide = open_slide(path)
    assert slide.level_count == 3 and slide.level_dimensions[2] == (384, 384)
    assert float(slide.properties["openslide.mpp-x"]) == 1.0
    assert choose_level(slide, 4.0, 0.25, 256) == LevelChoice(2, 4.0, "metadata", 256)
    region = np.asarray(slide.read_region((300, 200), 0, (400, 300)).convert("RGB"))
    assert region.shape == (300, 400, 3)
    assert np.abs(region.astype(float) - pixels[200:500, 300:700]).mean() < 4  # the same pixels (re-encoded once)
    slide.close()
    ome, summary = score_slide(path, opts(prefilter="none"))
    generic, _ = score_slide(synthetic_slide, opts(prefilter="none"))
    assert summary["scored_patches"] == 36 and summary["mpp_source"] == "metadata"
    assert summary["reader"] == "tifffile"  # its tiles are the patches: decoded directly
    _, regions = score_slide(path, opts(prefilter="none", reader="openslide"))
    assert regions["reader"] == "tifffile (OME-TIFF)"  # read by regions, still not by OpenSlide (one level at most)
    assert np.abs(ome["brown_ratio"].to_numpy() - generic["brown_ratio"].to_numpy()).max() < 0.03


def test_a_nuclear_ki67_stain_keeps_nothing_at_the_default_threshold_and_auto_finds_its_tumour(shared, tmp_path):
    """The real Ki67 IHC slide: nuclear DAB covers a few % of a field, so the default threshold (0.20, for a stain
    that browns every tumour cell) keeps no patch. The slide summary gives the brown-ratio distribution, the log
    what each threshold would keep, and ``threshold: auto`` (Otsu over the scored patches) keeps the stained ones."""
    slides = pd.DataFrame({"slide_id": ["ki67"], "path": [str(shared("slides/ki67_ihc_os2_generic_tiled.tif"))]})
    _, fixed = score_slides(slides, opts(), PatchStore(tmp_path / "fixed"))
    assert fixed.at[0, "tumour_patches"] == 0 and fixed.at[0, "status"] == "no_tumour"
    assert 0 < fixed.at[0, "brown_p90"] < 0.2 and fixed.at[0, "brown_max"] < 0.2
    patches, auto = score_slides(slides, opts(threshold="auto"), PatchStore(tmp_path / "auto"))
    threshold = auto.at[0, "threshold"]
    assert 0 < threshold < 0.2 and auto.at[0, "tumour_patches"] == int((patches["brown_ratio"] > threshold).sum()) > 0
    assert patches["tumour"].sum() == auto.at[0, "tumour_patches"]


def test_otsu_and_the_threshold_report():
    ratios = np.r_[np.full(50, 0.001), np.full(30, 0.05)]
    assert 0.001 < otsu_threshold(ratios) < 0.05
    with pytest.raises(ValueError, match="same brown ratio"):
        otsu_threshold(np.zeros(10))
    text = threshold_effects(ratios, 0.2)
    assert "0.2 -> 0 (used)" in text and "0.02 -> 30" in text and "Otsu" in text
    with pytest.raises(InputDataError, match=r"threshold must be in \[0, 1\) or auto"):
        opts(threshold=1.5)
    with pytest.raises(InputDataError, match="allowed: auto"):
        opts(threshold="otsu")
