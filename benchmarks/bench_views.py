"""Which test-time views pay for their cost? Every trained image model of a run, scored with fewer views.

Needs a finished run (any preset; the README quotes ``demo`` and ``paper``)::

    python benchmarks/bench_views.py --out benchmarks/results/bench_views.json

Inference embeds each patch's ``model_px`` windows (4 of a 256-px patch), each in its 8 flips / 90-degree
rotations with ``patches.test_views: dihedral`` (32 forward passes per patch), and averages the embeddings. Here
every image model of the run -- the WSI encoder and each trained multimodal model (Table 1 rows, seeds, nulls) --
embeds the patches ONCE with all 32 views kept apart; each view set (``windows``: 4, ``windows_flip``: 8,
``rotations``: 16, ``dihedral``: 32) is then the mean over its views, exactly as the pipeline's
``embed`` / ``embed_images`` average them. Per view set and model: the WSI encoder's 1-NN and classifier lineage
accuracy on held-out patches and unseen mice (``wsi_encoding.evaluate_embeddings``), each multimodal model's
Table 1 accuracy per held-out set (``multimodal.score_sets``), and each minus the ``dihedral`` figure on the same
patches with a bootstrap that resamples the same slides (``evaluation.paired_difference`` / ``paired_rows``), and
the forward passes per patch (the cost: inference time is proportional to them). Nothing of the run is written.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs

# indices into a window's 8 dihedral views (gb_kedro.slides.patches.dihedral: rotations of the image, then of its
# mirror image)
VIEW_SETS = {"windows": [0], "windows_flip": [0, 4], "rotations": [0, 1, 2, 3], "dihedral": list(range(8))}


@torch.no_grad()
def per_view(encode, images: np.ndarray, crop: int, batch_size: int) -> np.ndarray:
    """``encode(views [B, 3, s, s]) -> [B, D]`` of every window x dihedral view of uint8 patches -> [N, W, 8, D]."""
    from gb_kedro.slides.patches import window_batches

    out = []
    for parts in window_batches(images, crop, batch_size, "dihedral"):
        z = torch.stack([encode(v).float() for v in parts], 1)  # [B, W * 8, D], window-major
        out.append(z.reshape(z.shape[0], -1, 8, z.shape[-1]).numpy())
    return np.concatenate(out)


def averaged(z: np.ndarray, views: list[int], normalise_each: bool) -> np.ndarray:
    """The pipeline's average of the selected views (all windows), normalised; the WSI encoder normalises each
    view first (``wsi_encoding.embed``), the multimodal model averages the projections (``embed_images``)."""
    t = torch.from_numpy(z[:, :, views].reshape(len(z), -1, z.shape[-1]))
    if normalise_each:
        t = F.normalize(t, dim=-1)
    return F.normalize(t.mean(1), dim=-1).numpy()


def wsi_figures(catalog, params: dict, n_boot: int, seed: int) -> dict:
    from gb_kedro import wsi_encoding as wsi
    from gb_kedro.config import LineageClassifierConfig, PatchesConfig, SplitConfig, WSIEncodingConfig
    from gb_kedro.evaluation import nearest_neighbour_eval, paired_difference
    from gb_kedro.slides.morphometry import feature_frame

    index, pixels = catalog.load("patch_index"), catalog.load("patch_pixels")
    model = catalog.load("wsi_encoder").eval()
    patches = PatchesConfig.from_dict(params["patches"])
    cfg = WSIEncodingConfig.from_dict(params["wsi_encoding"])
    split = SplitConfig.from_dict(params["split"])
    classifier = LineageClassifierConfig.from_dict(params["lineage_classifier"])
    colour, morphometry = catalog.load("colour_features"), catalog.load("morphometry_features")
    start = time.perf_counter()
    z = per_view(lambda v: model(v)["cls"], pixels.images, patches.geometry[1], patches.inference_batch_size)
    seconds = time.perf_counter() - start
    y, slide = index["lineage_id"].to_numpy(), index["slide_id"].to_numpy()
    train = (index["split"] == "train").to_numpy()
    patient_of = dict(zip(index["lineage_id"], index["patient_id"], strict=False))
    out, hits = {"dihedral_seconds": round(seconds, 1)}, {}
    for name, views in VIEW_SETS.items():
        emb = feature_frame(index, averaged(z, views, True), [f"e{i}" for i in range(z.shape[-1])])
        metrics, _ = wsi.evaluate_embeddings(emb, colour, split, cfg, morphometry, classifier)
        x, held = emb[[f"e{i}" for i in range(z.shape[-1])]].to_numpy(), emb["held_out"].to_numpy()
        hits[name] = {
            s: nearest_neighbour_eval(x[train], y[train], x[held == s], y[held == s], patient_of)["predicted"]
            == y[held == s]
            for s in ("patch", "mouse")
        }
        out[name] = {
            "forward_passes_per_patch": len(views) * z.shape[1],
            **{
                f"{s}/{k}": round(metrics[f"{s}/{k}"], 4)
                for s in ("patch", "mouse")
                for k in ("model_accuracy", "model_classifier_accuracy", "model_minus_morphometry_classifier")
            },
        }
    for name in VIEW_SETS:
        for s in ("patch", "mouse"):
            d = paired_difference(hits[name][s], hits["dihedral"][s], slide[held == s], n_boot, seed)
            out[name][f"{s}/1nn_minus_dihedral"] = [
                round(d[k], 4) for k in ("difference", "difference_ci_low", "difference_ci_high")
            ]
    return out


def multimodal_figures(catalog, params: dict, models: list[str], n_boot: int, seed: int) -> dict:
    from gb_kedro import multimodal as mm
    from gb_kedro.config import MultimodalConfig, PatchesConfig
    from gb_kedro.evaluation import paired_rows, retrieval

    patches = PatchesConfig.from_dict(params["patches"])
    cfg = MultimodalConfig.from_dict(params["multimodal"])
    data = mm.PairedCohort(
        catalog.load("patch_index"),
        catalog.load("patch_pixels"),
        catalog.load("cohort_features"),
        catalog.load("cohort_samples"),
    )
    out = {}
    for name in models:
        model = catalog.load(f"{name}.multimodal_model").eval()
        if not model.meta.get("trained", True) and name.startswith(("seed_", "null_")):
            continue
        samples, rna, index, test_rows, test = mm.held_out_pairs(data, model.meta["genes"])
        start = time.perf_counter()
        images = data.pixels.rows(test_rows)
        z = per_view(lambda v, m=model: m.encode_image(v)[0], images, patches.geometry[1], patches.inference_batch_size)
        seconds = time.perf_counter() - start
        rna_z = mm.embed_rna(model, rna, cfg.evaluation.rna_batch_size)
        predictions, row = {}, {"dihedral_seconds": round(seconds, 1)}
        for views_name, views in VIEW_SETS.items():
            sim, ranked = retrieval(averaged(z, views, False), rna_z, top=min(cfg.evaluation.top_k, len(samples)))
            sets = mm.score_sets(sim, test, samples, index, cfg)
            row[views_name] = {s: round(m["lineage_accuracy"], 4) for s, m in sets.items()}
            predictions[views_name] = mm._predictions(test, samples, sim, ranked)
        paired = paired_rows(predictions, "dihedral", n_boot, seed)
        for rec in paired.to_dict(orient="records"):
            row[rec["row"]][f"{rec['held_out']}_minus_dihedral"] = [
                round(rec[k], 4) for k in ("difference", "difference_ci_low", "difference_ci_high")
            ]
        out[name] = row
        print(name, {k: v for k, v in row.items() if k != "dihedral_seconds"}, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-wsi", action="store_true", help="only the multimodal models")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_views.json"))
    args = parser.parse_args()

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from gb_kedro.pipeline_registry import pipeline_shape

    bootstrap_project(args.project)
    with KedroSession.create(project_path=args.project) as session:
        context = session.load_context()
        catalog, params = context.catalog, context.params
        shape = pipeline_shape()
        trained = [r for r in shape.rows if r != "random_init"]
        retrained = [f"seed_{k}" for k in range(1, shape.seeds)] + [f"null_{k}" for k in range(shape.permutations)]
        result = {
            "project": str(args.project.resolve()),
            "n_patches": int(len(index := catalog.load("patch_index"))),
            "n_slides": int(index["slide_id"].nunique()),
            "n_lineages": int(index["lineage_id"].nunique()),
            "view_sets": VIEW_SETS,
            "torch_threads": torch.get_num_threads(),
            "multimodal": multimodal_figures(
                catalog, params, [*trained, "random_init", *retrained], args.n_boot, args.seed
            ),
        }
        if not args.skip_wsi:
            result["wsi_encoder"] = wsi_figures(catalog, params, args.n_boot, args.seed)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
