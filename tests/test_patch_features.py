"""Patch encoders of the user's own: TRIDENT / CLAM feature folders and exported models, matched to the tumour
patches, stopped on another field of view or grid, scored with the image-only figures and the axis probe."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from gb_kedro import patch_features
from gb_kedro.config import (
    ImageAxisProbeConfig,
    LineageClassifierConfig,
    PatchFeaturesConfig,
    PipelineShape,
    SplitConfig,
    WSIEncodingConfig,
)
from gb_kedro.datasets.patch_pixels import PatchPixels
from gb_kedro.datasets.patch_store import PatchStore, write_features
from gb_kedro.errors import InputDataError
from gb_kedro.reporting import image_axis_probe
from gb_kedro.wsi_encoding import evaluate_embeddings, evaluate_patch_features
from tests.helpers import TINY_RUN_PARAMS, base_options

SIDE = 256


def _settings(path=None, **features):
    tree = base_options("patch_features")
    encoder = {"features": {"path": str(path), **features}} if path else {}
    return PatchFeaturesConfig.from_dict({**tree, "encoders": {"enc": encoder or {"features": {"path": "x"}}}})


def _index(slides=("S1", "S2"), per_slide=6) -> pd.DataFrame:
    rows = []
    for s, slide in enumerate(slides):
        for i in range(per_slide):
            rows.append(
                {
                    "slide_id": slide,
                    "x": SIDE * i,
                    "y": SIDE * (i % 2),
                    "size": SIDE,
                    "size_level0": SIDE,
                    "lineage_id": f"L{s}",
                    "patient_id": "P",
                    "mouse_id": f"M{s}",
                    "split": "train",
                    "held_out": "",
                }
            )
    return pd.DataFrame(rows)


def _store(tmp_path, index, mpp=0.5) -> PatchStore:
    store = PatchStore(tmp_path / "stores")
    for slide, part in index.groupby("slide_id"):
        frame = part.assign(brown_ratio=0.5, tumour=True)
        store.write_patches(slide, frame, {"mpp": mpp, "patch_size": SIDE, "patch_size_level0": SIDE}, {}, "k")
    return store


def _trident(folder, index, values, side=SIDE, shift=0, drop=0, **attrs):
    """``<job>/20x_256px_0px_overlap/features_enc/<slide>.h5`` as TRIDENT writes them (features, coords + attrs)."""
    target = folder / "job" / "20x_256px_0px_overlap" / "features_enc"
    for slide, rows in index.groupby("slide_id").indices.items():
        rows = rows[drop:]
        coords = index[["x", "y"]].to_numpy()[rows][::-1] + shift  # another order than ours
        write_features(
            target / f"{slide}.h5",
            coords,
            values[rows][::-1],
            {
                "patch_size_level0": side,
                "patch_size": 256,
                "target_magnification": 20,
                "level0_magnification": 40,
                **attrs,
            },
        )
    return folder / "job"


def test_a_trident_job_folder_is_found_and_matched_by_coordinates(tmp_path):
    index = _index()
    values = np.random.default_rng(0).normal(size=(len(index), 5)).astype(np.float32)
    job = _trident(tmp_path, index, values)
    frame, report = patch_features.read_patch_features(
        index, _store(tmp_path, index), _settings(job).encoder("enc"), "enc"
    )
    assert report["layout"] == "trident" and report["folder"].endswith("features_enc")
    assert report["matched"] == len(index) and report["missing"] == 0 and report["dim"] == 5
    np.testing.assert_array_equal(frame[[f"e{i}" for i in range(5)]].to_numpy(), values)
    assert frame[["slide_id", "x", "y"]].equals(index[["slide_id", "x", "y"]])


def test_a_clam_folder_is_read_with_its_patch_size_or_the_setting(tmp_path):
    index = _index()
    values = np.arange(len(index) * 3, dtype=np.float32).reshape(-1, 3)
    h5_files = tmp_path / "clam" / "h5_files"
    h5_files.mkdir(parents=True)
    for slide, rows in index.groupby("slide_id").indices.items():
        with h5py.File(h5_files / f"{slide}.h5", "w") as h5:  # extract_features_fp: [N, D] + coords, no size
            h5["features"] = values[rows]
            h5["coords"] = index[["x", "y"]].to_numpy()[rows]
    store = _store(tmp_path, index)
    with pytest.raises(InputDataError, match="patch_size_level0"):
        patch_features.read_patch_features(index, store, _settings(tmp_path / "clam").encoder("enc"), "enc")
    settings = _settings(tmp_path / "clam", patch_size_level0=SIDE).encoder("enc")
    frame, report = patch_features.read_patch_features(index, store, settings, "enc")
    assert report["layout"] == "clam" and report["matched"] == len(index)
    np.testing.assert_array_equal(frame[["e0", "e1", "e2"]].to_numpy(), values)


def test_another_magnification_or_patch_size_stops_with_one_line(tmp_path):
    index = _index()
    values = np.zeros((len(index), 4), np.float32)
    store = _store(tmp_path, index)
    job = _trident(tmp_path / "a", index, values, side=2 * SIDE)  # 20x patches of 512 level-0 px: not ours
    with pytest.raises(InputDataError) as stop:
        patch_features.read_patch_features(index, store, _settings(job).encoder("enc"), "enc")
    line = str(stop.value)
    assert "\n" not in line and "S1.h5" in line and "slide S1" in line
    assert "512 level-0 px = 256 um (20x, 256 px)" in line and "256 level-0 px = 128 um" in line
    clam = tmp_path / "b" / "h5_files"
    clam.mkdir(parents=True)
    for slide, rows in index.groupby("slide_id").indices.items():
        with h5py.File(clam / f"{slide}.h5", "w") as h5:
            h5["features"] = values[rows]
            h5["coords"] = index[["x", "y"]].to_numpy()[rows]
            h5["coords"].attrs.update(patch_size=224, patch_level=0)
    with pytest.raises(InputDataError, match=r"slide S1: feature patches of 224 level-0 px = 112 um, but"):
        patch_features.read_patch_features(index, store, _settings(tmp_path / "b").encoder("enc"), "enc")


def test_another_grid_stops_and_missing_patches_are_counted(tmp_path):
    index = _index()
    values = np.ones((len(index), 4), np.float32)
    store = _store(tmp_path, index)
    shifted = _trident(tmp_path / "a", index, values, shift=SIDE // 2)
    with pytest.raises(InputDataError, match="none of its 6 feature patches lies on this project's grid"):
        patch_features.read_patch_features(index, store, _settings(shifted).encoder("enc"), "enc")
    within = _trident(tmp_path / "b", index, values, shift=3)  # a few px off: the same patches
    assert patch_features.read_patch_features(index, store, _settings(within).encoder("enc"), "enc")[1]["matched"] == 12
    partial = _trident(tmp_path / "c", index, values, drop=2)  # two patches of each slide without a row
    with pytest.raises(InputDataError, match="8 of the 12 tumour patches have a feature row, fewer than min_matched"):
        patch_features.read_patch_features(index, store, _settings(partial).encoder("enc"), "enc")
    frame, report = patch_features.read_patch_features(
        index, store, _settings(partial, min_matched=0.5).encoder("enc"), "enc"
    )
    assert report["missing"] == 4 and [s["matched"] for s in report["per_slide"]] == [4, 4]
    assert frame["e0"].isna().sum() == 4


def test_names_and_paths_of_patch_encoders_are_checked_before_a_run():
    tree = base_options("patch_features")
    assert PatchFeaturesConfig.from_dict(tree).encoders == {}  # none by default: the default run is unchanged
    with pytest.raises(InputDataError, match=r"patch_features.encoders.uni.features.path is not set: .*--params"):
        PatchFeaturesConfig.from_dict({**tree, "encoders": {"uni": {}}})
    with pytest.raises(InputDataError, match="lower-case letters"):
        PatchFeaturesConfig.from_dict({**tree, "encoders": {"UNI v1": {"features": {"path": "/x"}}}})
    with pytest.raises(InputDataError, match=r"'patch_features.encoders.uni.source' is 'timm'; allowed: features"):
        PatchFeaturesConfig.from_dict({**tree, "encoders": {"uni": {"source": "timm"}}})
    params = {"rna_encoding": base_options("rna_encoding"), "multimodal": base_options("multimodal")}
    shape = PipelineShape.of({**params, "patch_features": {**tree, "encoders": {"uni": {}, "conch": {}}}})
    assert shape.patch_encoders == ("conch", "uni")
    with pytest.raises(InputDataError, match="patch_encoders"):
        PipelineShape.of(params).require_within(shape)


def test_the_pipelines_grow_one_namespace_per_patch_encoder():
    from gb_kedro.pipelines import reporting, wsi_encoding

    params = {"rna_encoding": base_options("rna_encoding"), "multimodal": base_options("multimodal")}
    shape = PipelineShape.of({**params, "patch_features": {"encoders": {"uni": {}}}})
    wsi = wsi_encoding.create_pipeline(shape=shape)
    assert {"uni.embed_patch_features", "uni.evaluate_patch_features", "train_wsi_encoder"} <= {
        n.name for n in wsi.nodes
    }
    assert {"uni.patch_metrics", "uni.patch_feature_match", "uni.patch_embeddings"} <= wsi.all_outputs()
    assert not {n.name for n in wsi_encoding.create_pipeline(shape=PipelineShape.of(params)).nodes} & {
        "uni.embed_patch_features"
    }
    probe = next(n for n in reporting.create_pipeline(shape=shape).nodes if n.name == "probe_image_axes")
    assert "uni.patch_embeddings" in probe.inputs


class _Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 7, stride=4)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def test_an_exported_model_is_embedded_cached_per_slide_and_read_back(tmp_path):
    index = _index()
    images = np.random.default_rng(1).integers(0, 256, (len(index), 3, 32, 32), dtype=np.uint8)
    pixels = PatchPixels(images, "key")
    store = _store(tmp_path, index)
    torch.manual_seed(0)
    model = _Encoder().eval()
    program = torch.export.export(
        model, (torch.zeros(2, 3, 48, 48),), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=1024)}}
    )
    path = tmp_path / "enc.pt2"
    torch.export.save(program, str(path))
    tree = base_options("patch_features")
    exported = {"path": str(path), "input_px": 48, "batch_size": 5}
    settings = PatchFeaturesConfig.from_dict(
        {**tree, "encoders": {"enc": {"source": "exported", "exported": exported, "cache_dir": str(tmp_path / "c")}}}
    ).encoder("enc")
    frame, report = patch_features.patch_embeddings(index, pixels, store, settings, "enc")
    assert report["matched"] == len(index) and report["dim"] == 8
    x = torch.nn.functional.interpolate(
        torch.from_numpy(images).float() / 255, size=(48, 48), mode="bilinear", antialias=True
    )
    mean, std = (
        torch.tensor(v).view(1, 3, 1, 1)
        for v in (tree["defaults"]["exported"]["mean"], tree["defaults"]["exported"]["std"])
    )
    with torch.no_grad():
        expected = model((x - mean) / std).numpy()
    np.testing.assert_allclose(frame[[f"e{i}" for i in range(8)]].to_numpy(), expected, rtol=1e-5, atol=1e-5)
    cached = sorted((tmp_path / "c" / "features_enc").glob("*.h5"))
    assert [p.name for p in cached] == ["S1.h5", "S2.h5"]
    stamps = [p.stat().st_mtime_ns for p in cached]
    again, _ = patch_features.patch_embeddings(index, pixels, store, settings, "enc")  # reused, not redone
    assert [p.stat().st_mtime_ns for p in cached] == stamps and again.equals(frame)
    path.write_bytes(b"not a program")
    other = PatchFeaturesConfig.from_dict(
        {**tree, "encoders": {"enc": {"source": "exported", "exported": exported, "cache_dir": str(tmp_path / "d")}}}
    ).encoder("enc")
    with pytest.raises(InputDataError, match="not a torch.export program"):
        patch_features.patch_embeddings(index, pixels, store, other, "enc")


def test_patches_without_a_feature_row_are_left_out_of_the_figures():
    rng = np.random.default_rng(0)
    lineages = [f"L{i}" for i in range(4)]
    rows = []
    for lab_i, lab in enumerate(lineages):
        for m in range(3):
            for p in range(8):
                rows.append(
                    {
                        "slide_id": f"{lab}-{m}",
                        "x": p,
                        "y": 0,
                        "lineage_id": lab,
                        "patient_id": f"P{lab_i // 2}",
                        "mouse_id": f"{lab}-{m}",
                        "split": "test" if m == 2 else "train",
                        "held_out": "mouse" if m == 2 else "",
                    }
                )
    index = pd.DataFrame(rows)
    code = index["lineage_id"].str[1:].astype(int).to_numpy()
    emb = index.copy()
    for i in range(6):
        emb[f"e{i}"] = (code == i % 4) * 3.0 + rng.normal(size=len(index))
    morph = index[["slide_id", "x", "y"]].copy()
    from gb_kedro.slides.morphometry import ALL_FEATURES

    for f in ALL_FEATURES:
        morph[f] = rng.normal(size=len(index))
    colour = index[["slide_id", "x", "y"]].assign(**{f"colour_r_{i}": rng.random(len(index)) for i in range(4)})
    args = (
        SplitConfig.from_dict(base_options("split")),
        WSIEncodingConfig.from_dict(base_options("wsi_encoding")),
    )
    classifier = LineageClassifierConfig.from_dict(base_options("lineage_classifier"))
    full, _ = evaluate_embeddings(emb, colour, *args, morph, classifier)
    holes = emb.copy()
    gone = rng.random(len(index)) < 0.2
    holes.loc[gone, [f"e{i}" for i in range(6)]] = np.nan  # patches without a feature row
    match = {"matched": int((~gone).sum()), "missing": int(gone.sum())}
    metrics, _ = evaluate_patch_features(holes, colour, *args, morph, classifier, "enc", match)
    kept, _ = evaluate_embeddings(
        emb[~gone].reset_index(drop=True),
        colour[~gone].reset_index(drop=True),
        *args,
        morph[~gone].reset_index(drop=True),
        classifier,
    )
    assert metrics["missing"] == match["missing"] and metrics["mouse/model_n_test"] == kept["mouse/model_n_test"]
    assert metrics["mouse/model_n_test"] < full["mouse/model_n_test"]
    for key in ("mouse/model_accuracy", "mouse/morphometry_classifier_accuracy", "mouse/colour_baseline_accuracy"):
        assert metrics[key] == kept[key]  # the baselines on the same patches
    truth = pd.DataFrame({"lineage_id": lineages, "size": [0, 1, 0, 1]})
    reps = {"full": emb[[f"e{i}" for i in range(6)]].to_numpy(), "holes": holes[[f"e{i}" for i in range(6)]].to_numpy()}
    table = image_axis_probe.image_axis_probe(
        reps, index, truth, ImageAxisProbeConfig.from_dict(base_options("reporting")["image_axis_probe"]), 0
    )
    patches = table[table["held_out"] == "mouse"].set_index("representation")["patches"]
    assert patches["holes"] == int(((index["held_out"] == "mouse") & ~gone).sum()) < patches["full"]
    per_slide = table[table["held_out"] == "mouse_slides"].set_index("representation")["patches"]
    assert per_slide["holes"] == patches["holes"]  # the slide means leave the same patches out


def test_a_trident_folder_of_the_wsi_encoders_own_embeddings_gives_its_figures(tiny_project, tmp_path, monkeypatch):
    """The acceptance check on the tiny cohort: the ViT's embeddings written as a TRIDENT job folder, read back by
    the pipeline's nodes (shape from an environment's conf), give the same image-only figures; a model exported to
    a local file runs through the same nodes end to end on the CPU."""
    import json

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    data = tiny_project / "data"
    index = pd.read_parquet(data / "03_primary" / "patch_index.parquet")
    embeddings = pd.read_parquet(data / "07_model_output" / "wsi_embeddings.parquet")
    store = PatchStore(data / "02_intermediate" / "patch_stores")
    job = tmp_path / "trident_job"
    patch_features.export_embeddings(embeddings, index, store, job / "10x_256px_0px_overlap", "vit")
    env = tiny_project / "conf" / "byo_encoder"
    env.mkdir(exist_ok=True)
    torch.manual_seed(0)  # and a model of one's own, exported to a local file (what a UNI export is, in small)
    program = torch.export.export(
        _Encoder().eval(),
        (torch.zeros(2, 3, 64, 64),),
        dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
    )
    torch.export.save(program, str(tmp_path / "mine.pt2"))
    (env / "parameters.yml").write_text(
        "patch_features:\n  encoders:\n"
        f"    vit_export:\n      features: {{path: {job}}}\n"
        f"    mine:\n      source: exported\n      exported: {{path: {tmp_path / 'mine.pt2'}, input_px: 64}}\n"
        f"      cache_dir: {tmp_path / 'cache'}\n"
    )
    monkeypatch.setenv("KEDRO_ENV", "byo_encoder")
    monkeypatch.chdir(tiny_project)
    bootstrap_project(tiny_project)
    with KedroSession.create(project_path=tiny_project, env="byo_encoder", runtime_params=TINY_RUN_PARAMS) as session:
        session.run(
            node_names=[
                "vit_export.embed_patch_features",
                "vit_export.evaluate_patch_features",
                "vit_export_adapter.train_multimodal",
                "vit_export_adapter.evaluate_multimodal",
                "mine.embed_patch_features",
                "mine.evaluate_patch_features",
                "mine_adapter.train_multimodal",
                "mine_adapter.evaluate_multimodal",
            ]
        )
    ours = json.loads((data / "08_reporting" / "wsi_metrics.json").read_text())
    theirs = json.loads((data / "08_reporting" / "patch_metrics_vit_export.json").read_text())
    match = json.loads((data / "08_reporting" / "patch_feature_match_vit_export.json").read_text())
    assert match["matched"] == len(index) and match["layout"] == "trident" and theirs["missing"] == 0
    numbers = [k for k, v in ours.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    assert numbers and pd.Series({k: theirs[k] for k in numbers}).equals(pd.Series({k: ours[k] for k in numbers}))

    # the Table 1 row on the features: adapter + the frozen-encoders row's losses, scored on the same held-out sets
    adapter = json.loads((data / "08_reporting" / "retrieval_metrics_vit_export_adapter.json").read_text())
    frozen = json.loads((data / "08_reporting" / "retrieval_metrics_frozen_encoders.json").read_text())
    assert adapter["row"] == "vit_export_adapter" and adapter["configuration"].startswith("vit_export features")
    assert set(adapter["sets"]) == set(frozen["sets"])
    for name, scores in adapter["sets"].items():
        assert scores["n_patches"] == frozen["sets"][name]["n_patches"] and 0 <= scores["lineage_accuracy"] <= 1
    predictions = pd.read_parquet(data / "07_model_output" / "retrieval_predictions_vit_export_adapter.parquet")
    assert len(predictions) == int((index["split"] == "test").sum())
    from gb_kedro.datasets.torch_model import TorchModelDataset

    model = TorchModelDataset(str(data / "06_models" / "multimodal_vit_export_adapter.pt")).load()
    assert model.config.image == "features" and model.meta["patch_encoder"] == "vit_export"
    assert not any(k.startswith("wsi_encoder.blocks") for k in model.state_dict())  # no ViT inside: the adapter

    # the exported model: every tumour patch embedded on the CPU, cached per slide, its figures and Table 1 row
    mine = json.loads((data / "08_reporting" / "patch_feature_match_mine.json").read_text())
    assert mine["matched"] == len(index) and mine["dim"] == 8 and mine["source"] == "exported"
    assert len(list((tmp_path / "cache" / "features_mine").glob("*.h5"))) == index["slide_id"].nunique()
    assert "mouse/model_accuracy" in json.loads((data / "08_reporting" / "patch_metrics_mine.json").read_text())
    row = json.loads((data / "08_reporting" / "retrieval_metrics_mine_adapter.json").read_text())
    assert row["row"] == "mine_adapter" and set(row["sets"]) == set(frozen["sets"])

    # the morphology link scores the encoder beside the configured representations, the configured ones unchanged
    from gb_kedro.config import ReportingConfig
    from gb_kedro.reporting import morphology_link

    with KedroSession.create(project_path=tiny_project, env="byo_encoder", runtime_params=TINY_RUN_PARAMS) as session:
        catalog = session.load_context().catalog
        names = ("morphometry_features", "cohort_features", "cohort_samples", "gene_groups_ppi")
        read = {n: catalog.load(n) for n in names}
    link_inputs = (
        embeddings,
        *(read[n] for n in names),
        ReportingConfig.from_dict(base_options("reporting")).morphology_link,
        0,
    )
    plain, _ = morphology_link.link_table(*link_inputs)
    both, summary = morphology_link.link_table(*link_inputs, {"vit_export": embeddings})
    assert both[plain.columns].equals(plain) and "vit_export" in summary["representations"]
    np.testing.assert_array_equal(both["r2_vit_export"], both["r2_wsi"])  # the same embeddings, the same genes


def test_the_multimodal_model_takes_an_adapter_on_features_as_its_image_side():
    from gb_kedro.config import FeatureAdapterRow, MultimodalConfig
    from gb_kedro.models.adapter import FeatureAdapter
    from gb_kedro.models.multimodal import MultimodalModel
    from gb_kedro.models.rna_mae import RNAMaskedAutoencoder
    from gb_kedro.multimodal import build_feature_model

    adapter = FeatureAdapterRow.from_dict(base_options("feature_adapter"))
    row = adapter.row("uni")
    assert row.name == "uni_adapter" and row.label.startswith("uni features (frozen) + adapter")
    assert row.freeze_encoders and row.recon_weight == base_options("frozen_encoders")["table1_row"]["recon_weight"]
    rna = RNAMaskedAutoencoder.from_config({"group_of_gene": [0] * 4 + [1] * 4 + [2] * 4, "dim": 32, "depth": 1})
    model = build_feature_model(rna, 1024, MultimodalConfig.from_dict(base_options("multimodal")), row, adapter)
    assert isinstance(model.wsi_encoder, FeatureAdapter) and model.config.image == "features"
    assert not any(p.requires_grad for p in model.rna_encoder.parameters())  # frozen, as the frozen row's
    assert all(p.requires_grad for p in model.wsi_encoder.parameters())  # the adapter trains
    torch.testing.assert_close(model.rna_encoder.state_dict(), rna.state_dict())
    z, tokens = model.encode_image(torch.randn(5, 1024))
    assert z.shape == (5, model.config.embed_dim) and tokens.shape == (5, 1, adapter.width)
    out = model(torch.randn(5, 1024), torch.randn(5, 12))
    assert out["itm_logits"].shape == (5, 2) and out["recon"].shape == (5, 12)
    again = MultimodalModel.from_config(model.config_dict())  # how the catalog rebuilds a saved model
    again.load_state_dict(model.state_dict())
    model.eval(), again.eval()
    x = torch.randn(3, 1024)
    torch.testing.assert_close(again.encode_image(x)[0], model.encode_image(x)[0])


def test_the_tumour_patches_are_written_as_trident_coordinates(tmp_path):
    index = _index()
    store = _store(tmp_path, index, mpp=0.25)  # a 40x slide tiled at 1 um/px: 256 px patches, 1024 level-0 px
    index["size_level0"] = 4 * SIDE
    with h5py.File(store.path("S1"), "a") as h5:
        h5["coords"].attrs["target_mpp"] = 1.0
    with h5py.File(store.path("S2"), "a") as h5:
        h5["coords"].attrs["target_mpp"] = 1.0
    folder = patch_features.export_trident_coords(index, store, tmp_path / "job" / "10x_256px_0px_overlap")
    with h5py.File(folder / "patches" / "S1_patches.h5") as h5:
        attrs = dict(h5["coords"].attrs)
        coords = h5["coords"][...]
    assert attrs["patch_size"] == 256 and attrs["patch_size_level0"] == 1024
    assert attrs["level0_magnification"] == 40 and attrs["target_magnification"] == 10 and attrs["overlap"] == 0
    np.testing.assert_array_equal(coords, index.loc[index["slide_id"] == "S1", ["x", "y"]].to_numpy())
    bare = PatchStore(tmp_path / "bare")
    bare.write_patches("S1", index[index["slide_id"] == "S1"].assign(brown_ratio=0.5, tumour=True), {}, {}, "k")
    with pytest.raises(InputDataError, match="no mpp / target_mpp"):
        patch_features.export_trident_coords(index[index["slide_id"] == "S1"], bare, tmp_path / "x")


def test_kedro_trident_coords_writes_the_run_s_tumour_patches(tiny_project, tmp_path):
    out = tmp_path / "coords"
    done = _project_command(tiny_project, "trident-coords", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    index = pd.read_parquet(tiny_project / "data" / "03_primary" / "patch_index.parquet")
    files = sorted((out / "patches").glob("*_patches.h5"))
    assert len(files) == index["slide_id"].nunique() and f"{len(index)} tumour patches" in done.stdout


def _project_command(project, *args):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.helpers import PROJECT_ROOT

    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(PROJECT_ROOT / "src")}
    kedro = Path(sys.executable).with_name("kedro")
    return subprocess.run([str(kedro), *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)
