"""Does the features path read what it is given? The WSI encoder's own embeddings as a TRIDENT folder, through it.

Needs a finished default run (``wsi_embeddings``, ``patch_index``, the patch stores, ``colour_features``,
``morphometry_features``, ``multimodal_patch_embeddings``, ``truth_lineages``)::

    python benchmarks/patch_features.py --out benchmarks/results/patch_features.json

Writes ``wsi_embeddings`` as ``<folder>/features_vit_export/<slide>.h5`` (TRIDENT's layout:
:func:`gb_kedro.patch_features.export_embeddings`), reads it back as a patch encoder would be read
(:func:`gb_kedro.patch_features.patch_embeddings`: folder found, files matched by level-0 coordinates and patch side),
then scores both with the same functions the pipeline runs -- the image-only 1-NN and lineage classifier beside the
strong baseline (:func:`gb_kedro.wsi_encoding.evaluate_patch_features`) and the image axis probe -- and reports
every figure of both, their largest difference and the seconds each step took.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--folder", type=Path, default=None, help="where the TRIDENT folder goes (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/patch_features.json"))
    args = parser.parse_args()

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from gb_kedro.config import (
        LineageClassifierConfig,
        PatchFeaturesConfig,
        ReportingConfig,
        SplitConfig,
        WSIEncodingConfig,
    )
    from gb_kedro.patch_features import export_embeddings, patch_embeddings
    from gb_kedro.reporting.image_axis_probe import image_axis_probe, representations
    from gb_kedro.wsi_encoding import evaluate_patch_features

    bootstrap_project(args.project)
    with KedroSession.create(project_path=args.project) as session:
        context = session.load_context()
        catalog, params = context.catalog, context.params
        names = [
            "wsi_embeddings",
            "patch_index",
            "patch_stores",
            "colour_features",
            "morphometry_features",
            "multimodal_patch_embeddings",
            "truth_lineages",
            "wsi_metrics",
        ]
        data = {name: catalog.load(name) for name in names}
    folder = args.folder or Path(tempfile.mkdtemp(prefix="trident_"))
    seconds = {}
    start = time.perf_counter()
    exported = export_embeddings(
        data["wsi_embeddings"], data["patch_index"], data["patch_stores"], folder, "vit_export"
    )
    seconds["export"] = time.perf_counter() - start
    settings = PatchFeaturesConfig.from_dict(
        {**params["patch_features"], "encoders": {"vit_export": {"features": {"path": str(folder)}}}}
    ).encoder("vit_export")
    start = time.perf_counter()
    embeddings, match = patch_embeddings(data["patch_index"], None, data["patch_stores"], settings, "vit_export")
    seconds["read_and_match"] = time.perf_counter() - start
    start = time.perf_counter()
    metrics, _ = evaluate_patch_features(
        embeddings,
        data["colour_features"],
        SplitConfig.from_dict(params["split"]),
        WSIEncodingConfig.from_dict(params["wsi_encoding"]),
        data["morphometry_features"],
        LineageClassifierConfig.from_dict(params["lineage_classifier"]),
        "vit_export",
        match,
    )
    seconds["evaluate"] = time.perf_counter() - start
    in_memory = data["wsi_metrics"]
    shared = sorted(k for k, v in in_memory.items() if isinstance(v, int | float) and k in metrics)
    differences = {k: float(metrics[k]) - float(in_memory[k]) for k in shared}
    index = data["patch_index"].reset_index(drop=True)
    reps = representations(
        index,
        data["wsi_embeddings"],
        data["multimodal_patch_embeddings"],
        data["morphometry_features"],
        data["colour_features"],
        {"vit_export": embeddings},
    )
    reps = {k: reps[k] for k in ("wsi_encoder", "vit_export")}
    probe = image_axis_probe(
        reps, index, data["truth_lineages"], ReportingConfig.from_dict(params["reporting"]).image_axis_probe
    )
    wide = probe.pivot_table(index=["held_out", "axis"], columns="representation", values="accuracy")
    column = [c for c in embeddings.columns if c.startswith("e")]
    result = {
        "project": str(args.project.resolve()),
        "folder": str(exported),
        "match": {k: v for k, v in match.items() if k != "per_slide"},
        "embeddings_identical": bool(
            np.array_equal(embeddings[column].to_numpy(), data["wsi_embeddings"][column].to_numpy())
        ),
        "wsi_metrics_max_abs_difference": max((abs(v) for v in differences.values()), default=None),
        "wsi_metrics": {k: {"in_memory": in_memory[k], "features_path": metrics[k]} for k in shared},
        "axis_probe": {f"{h}/{a}": row.to_dict() for (h, a), row in wide.iterrows()},
        "axis_probe_max_abs_difference": float((wide["vit_export"] - wide["wsi_encoder"]).abs().max()),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
