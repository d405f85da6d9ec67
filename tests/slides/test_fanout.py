"""Per-slide fan-out and patch stores: local and Dask give the same index, resume skips complete stores and
redoes truncated ones, a corrupt slide fails alone; CLAM/TRIDENT feature files are read."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from gb_kedro.config import TilingOptions
from gb_kedro.datasets.patch_store import PatchStore, read_features
from gb_kedro.errors import InputDataError
from gb_kedro.slides.tiling import score_slides
from gb_kedro.synthetic.slides import SlideSpec, make_scene, write_pyramid_tiff
from tests.helpers import base_options

CODE = {"nucleus_size": 1, "elongation": 0, "arrangement": 1, "chromatin_texture": -1, "cell_density": 0, "invasion": 1}


def opts(**overrides) -> TilingOptions:
    return TilingOptions.from_dict(base_options("data_engineering.tiling", **overrides))


@pytest.fixture(scope="module")
def slides(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("fanout")
    rows = []
    for i in range(3):
        path = folder / f"S{i}.tif"
        write_pyramid_tiff(
            path, make_scene(SlideSpec(f"S{i}", f"M{i}", "L1", "P1", CODE, seed=10 + i, width=1024, height=1024))
        )
        rows.append({"slide_id": f"S{i}", "path": str(path)})
    return pd.DataFrame(rows)


def test_local_and_dask_give_identical_patch_indexes(slides, tmp_path):
    local, s_local = score_slides(slides, opts(), PatchStore(tmp_path / "local"), executor="local", n_workers=2)
    dask, s_dask = score_slides(slides, opts(), PatchStore(tmp_path / "dask"), executor="dask", n_workers=2)
    pd.testing.assert_frame_equal(local, dask)
    assert local["tumour"].sum() > 0 and list(s_dask["slide_id"]) == ["S0", "S1", "S2"]
    with h5py.File(tmp_path / "dask" / "patches" / "S1.h5") as h5:  # the CLAM / TRIDENT layout
        assert h5["coords"].shape == (int((local["slide_id"] == "S1").sum()), 2)
        assert h5["coords"].attrs["patch_size"] == 256 and h5["coords"].attrs["patch_level"] == 0
        assert h5.attrs["complete"]


def test_resume_skips_complete_stores_and_redoes_a_truncated_one(slides, tmp_path):
    store = PatchStore(tmp_path)
    first, summary = score_slides(slides, opts(), store)
    assert not summary["resumed"].any()
    mtimes = {s: os.stat(store.path(s)).st_mtime_ns for s in slides["slide_id"]}
    # a killed worker's store: truncated in the middle
    data = store.path("S1").read_bytes()
    store.path("S1").write_bytes(data[: len(data) // 2])
    again, summary = score_slides(slides, opts(), store)
    assert summary.set_index("slide_id")["resumed"].to_dict() == {"S0": True, "S1": False, "S2": True}
    assert os.stat(store.path("S0")).st_mtime_ns == mtimes["S0"]  # not rewritten
    pd.testing.assert_frame_equal(first, again)
    # other parameters: every store is redone
    _, summary = score_slides(slides, opts(threshold=0.3), store)
    assert not summary["resumed"].any()


def test_a_corrupt_slide_fails_alone_and_on_raise_stops(slides, tmp_path, shared):
    bad = pd.concat([slides, pd.DataFrame([{"slide_id": "BAD", "path": str(shared("slides/broken.svs"))}])])
    patches, summary = score_slides(
        bad, opts(), PatchStore(tmp_path / "skip"), executor="dask", n_workers=2, on_error="skip"
    )
    status = summary.set_index("slide_id")["status"].to_dict()
    assert status["BAD"] == "failed" and {status[s] for s in ("S0", "S1", "S2")} <= {"ok", "no_tumour"}
    assert set(patches["slide_id"]) == {"S0", "S1", "S2"}
    with pytest.raises(InputDataError, match=r"slide BAD"):
        score_slides(bad, opts(), PatchStore(tmp_path / "raise"), executor="dask", n_workers=2, on_error="raise")


def test_clam_and_trident_feature_files_are_read(tmp_path):
    clam = tmp_path / "clam.h5"
    with h5py.File(clam, "w") as h5:  # CLAM extract_features_fp: features [N, D], coords [N, 2]
        h5["coords"] = np.array([[0, 0], [256, 0]])
        h5["coords"].attrs.update(patch_size=256, patch_level=0)
        h5["features"] = np.ones((2, 1024), np.float32)
    coords, features, attrs = read_features(clam)
    assert coords.shape == (2, 2) and features.shape == (2, 1024) and attrs["patch_size"] == 256
    trident = tmp_path / "trident.h5"
    with h5py.File(trident, "w") as h5:  # batch-first [1, N, D] as some versions write it
        h5["coords"] = np.zeros((1, 3, 2), np.int64)
        h5["features"] = np.zeros((1, 3, 768), np.float32)
    assert read_features(trident)[1].shape == (3, 768)
    broken = tmp_path / "broken.h5"
    shutil.copy(clam, broken)
    with h5py.File(broken, "a") as h5:
        del h5["features"]
    with pytest.raises(InputDataError, match=r"missing dataset\(s\) \['features'\]"):
        read_features(broken)


def test_decoding_slide_by_slide_local_dask_and_resume(slides, tmp_path, monkeypatch):
    from gb_kedro.slides import patches as patches_module
    from gb_kedro.slides.dataset import PatchDataset

    index, _ = score_slides(slides, opts(), PatchStore(tmp_path / "stores"))
    index = index[index["tumour"]].reset_index(drop=True)
    paths = dict(zip(slides["slide_id"], slides["path"], strict=True))
    direct = np.stack(
        [
            (PatchDataset(index, paths, output_size=64)[i][0] * 255).round().to(torch.uint8).numpy()
            for i in range(len(index))
        ]
    )
    local = patches_module.read_patches(index, paths, 64, 16, 2, None, "local")
    dask = patches_module.read_patches(index, paths, 64, 16, 2, None, "dask")
    np.testing.assert_array_equal(local, direct)
    np.testing.assert_array_equal(dask, direct)
    # a decoding killed after slide S0: its store is there, the rerun decodes only the other slides
    store = tmp_path / "stores" / "pixels_64"
    rows = index[index["slide_id"] == "S0"][["x", "y", "level", "size", "read_size"]]
    patches_module.decode_slide(("S0", paths["S0"], rows, 64, 16, store))
    opened = []

    class Counting(PatchDataset):
        def __init__(self, index, *args, **kwargs):
            opened.append(index["slide_id"].iloc[0])
            super().__init__(index, *args, **kwargs)

    monkeypatch.setattr(patches_module, "PatchDataset", Counting)
    resumed = patches_module.read_patches(index, paths, 64, 16, 0, store, "local")
    assert sorted(opened) == sorted(set(index["slide_id"]) - {"S0"})
    np.testing.assert_array_equal(resumed, direct)
    assert not store.exists()  # the per-slide stores are removed once the array is assembled


def test_a_broken_slide_among_several_stops_the_local_pool_with_one_line_naming_it(slides, tmp_path, shared):
    """On the default executor (a pool of spawned processes) a slide that fails in a worker comes back as the
    one-line error naming it (it used to end in BrokenProcessPool: the error could not be unpickled)."""
    bad = pd.concat([slides, pd.DataFrame([{"slide_id": "BAD", "path": str(shared("slides/broken.svs"))}])])
    with pytest.raises(InputDataError, match=r"slide BAD \(.*broken\.svs\): not a slide format OpenSlide can read"):
        score_slides(bad, opts(), PatchStore(tmp_path / "raise"), executor="local", n_workers=2, on_error="raise")


def test_worker_processes_log_through_the_run_and_print_nothing_themselves(shared, tmp_path, caplog, capfd):
    """The once-per-slide resampling message, logged in a worker, reaches the run's log (one line per slide)."""
    import logging

    svs = str(shared("slides/cmu_small_region_he.svs"))  # 0.499 um/px, one level: resampled to 1 um/px
    two = pd.DataFrame({"slide_id": ["A", "B"], "path": [svs, svs]})
    with caplog.at_level(logging.INFO, logger="gb_kedro"):
        score_slides(two, opts(), PatchStore(tmp_path), executor="local", n_workers=2)
    resampled = [r for r in caplog.records if "reading 513 px at level 0" in r.getMessage()]
    assert sorted(r.getMessage().split(":")[0] for r in resampled) == ["A", "B"]
    assert "Using '" not in capfd.readouterr().err  # no logging banner from the spawned workers
