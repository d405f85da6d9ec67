"""Benchmark: does the WSI encoder learn morphology or slides? Anti-shortcut options on unseen mice.

Needs a project whose ``data_engineering`` and ``measure_morphometry`` have run with ``split.mode: all``
(any preset; the README quotes ``demo`` and ``paper``)::

    kedro run --pipelines synthetic_cohort,data_engineering --params synthetic_cohort.preset=paper
    kedro run --nodes measure_morphometry --params synthetic_cohort.preset=paper
    python benchmarks/bench_generalisation.py --out benchmarks/results/bench_generalisation.json

For each variant (the ``wsi_encoding`` and ``patches`` parameters of the run with the four anti-shortcut options
set as the variant says: cross-mouse positives, stain mixing, morphometry distillation, mouse adversary) the encoder is trained
from scratch on the run's training patches (its own checkpoint folder: nothing is resumed) and scored by
1-NN lineage retrieval of the held-out patches of seen slides and of the unseen mice against the training
patches, beside the colour and pixel-morphometry baselines (1-NN on standardised features) of the same
split. Per variant: wall time, the figures, the last epochs' losses and, with ``--eval-every N``, the
1-NN accuracy on both held-out sets every N epochs and after the last (is it still improving at the last
epoch?), embedding each patch's windows only (``test_views: none``; the final figures use the configured
views and are also given windows-only). ``--set key=value`` changes any ``wsi_encoding`` parameter on top of every
variant (e.g. ``--set train.epochs=80 --set loss.morphometry_weight=1.0``; values are read as YAML); ``--set
patches.<key>=value`` a ``patches`` one (``--set patches.test_views=none``). The run's decoded patches
(``patch_pixels``) are read from the catalog.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from _common import open_project, write_result  # benchmarks/ is on sys.path when a script of it runs

OFF = {"loss": {"cross_mouse": False, "morphometry_weight": 0.0, "mouse_adversary": 0.0}}


def _variant(stain_mix: float = 0.0, **loss) -> dict:
    """The anti-shortcut options spelled out in full (independent of what conf/base sets); stain mixing is a
    ``patches.augment`` parameter (shared with the multimodal training)."""
    return {"loss": {**OFF["loss"], **loss}, "patches": {"augment": {"stain_mix": stain_mix}}}


VARIANTS = {
    "none": _variant(),
    "cross_mouse": _variant(cross_mouse=True),
    "stain_mix_half": _variant(0.5),
    "morphometry_aux": _variant(morphometry_weight=1.0),
    "mouse_adversary": _variant(mouse_adversary=0.5),
    "stain_mix": _variant(1.0),  # the default (conf/base)
    "stain_mix_half_morphometry": _variant(0.5, morphometry_weight=1.0),
    "stain_mix_half_adversary": _variant(0.5, mouse_adversary=0.5),
    "all": _variant(0.5, cross_mouse=True, morphometry_weight=1.0, mouse_adversary=0.5),
}


def merge(base: dict, change: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in change.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and key in out else copy.deepcopy(value)
    return out


def dotted(assignments: list[str]) -> dict:
    """``["train.epochs=80", "loss.cross_mouse=true"]`` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in assignments:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def cohort_of(raw_dir: Path, manifest) -> dict:
    """What the data are (not what conf/base says): the synthetic preset from the generator's marker (None on
    real data) and the mice per lineage of the slide manifest."""
    marker = raw_dir / ".gb_kedro_synthetic.json"
    preset = json.loads(marker.read_text())["preset"] if marker.exists() else None
    mice = manifest.groupby("lineage_id")["mouse_id"].nunique()
    return {"preset": preset, "lineages": int(len(mice)), "mice_per_lineage": sorted(set(mice.astype(int).tolist()))}


def one_nn(embeddings, sets=("patch", "mouse")) -> dict:
    """1-NN lineage accuracy of each held-out set of seen lineages against the training patches."""
    from gb_kedro.evaluation import nearest_neighbour_eval

    x = embeddings[[c for c in embeddings.columns if c.startswith("e")]].to_numpy()
    y = embeddings["lineage_id"].to_numpy()
    train = (embeddings["split"] == "train").to_numpy()
    patient_of = dict(zip(embeddings["lineage_id"], embeddings["patient_id"], strict=False))
    out = {}
    for name in sets:
        test = (embeddings["held_out"] == name).to_numpy()
        if test.any():
            ev = nearest_neighbour_eval(x[train], y[train], x[test], y[test], patient_of)
            out[name] = round(float(ev["accuracy"]), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=None, help="override wsi_encoding.train.epochs")
    parser.add_argument("--eval-every", type=int, default=0, help="score 1-NN every N epochs (0: only at the end)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="wsi_encoding override")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_generalisation.json"))
    args = parser.parse_args()
    catalog, params = open_project(args.project)

    from gb_kedro import wsi_encoding as wsi
    from gb_kedro.config import LineageClassifierConfig, PatchesConfig, SplitConfig, WSIEncodingConfig

    index = catalog.load("patch_index")
    pixels = catalog.load("patch_pixels")
    manifest = catalog.load("slide_manifest")
    morph = catalog.load("morphometry_features")
    colour = catalog.load("colour_features")
    split = SplitConfig.from_dict(params["split"])
    classifier = LineageClassifierConfig.from_dict(params["lineage_classifier"])
    result = {
        "project": str(args.project.resolve()),
        "cohort": cohort_of(Path(args.project) / params["synthetic_cohort"]["raw_dir"], manifest),
        "split": split.to_dict(),
        "patches": {k or "train": int(v) for k, v in index["held_out"].value_counts().items()},
        "threads": torch.get_num_threads(),
        "variants": {},
    }
    base = {**params["wsi_encoding"], "patches": params["patches"]}
    if args.epochs:
        base = merge(base, {"train": {"epochs": args.epochs}})
    extra = dotted(args.set)
    for name in args.variants:
        with tempfile.TemporaryDirectory(prefix=f"bench_gen_{name}_") as tmp:
            options = merge(merge(base, VARIANTS[name]), extra)
            options["checkpoint_dir"] = tmp
            views = PatchesConfig.from_dict(options.pop("patches"))
            pixels.require(index, views.geometry[0], "bench_generalisation")
            cfg = WSIEncodingConfig.from_dict(options)
            curve: list[dict] = []
            scoring = [0.0]
            # the curve embeds each patch's windows only (test_views none: 8x cheaper than dihedral views)
            plain = dataclasses.replace(views, test_views="none")

            def score(epoch: int, model, cfg=cfg, plain=plain, curve=curve, scoring=scoring) -> None:
                if args.eval_every and (epoch + 1) % args.eval_every == 0 and epoch + 1 < cfg.train.epochs:
                    tic = time.perf_counter()
                    curve.append({"epoch": epoch + 1, **one_nn(wsi.embed_patches(model, index, pixels, cfg, plain))})
                    scoring[0] += time.perf_counter() - tic

            start = time.perf_counter()
            model, history = wsi.train_encoder(index, pixels, cfg, views, morph, on_epoch=score)
            train_s = time.perf_counter() - start - scoring[0]
            emb = wsi.embed_patches(model, index, pixels, cfg, views)
            metrics, _ = wsi.evaluate_embeddings(emb, colour, split, cfg, morph, classifier)
            windows_only = one_nn(
                emb if views.test_views == "none" else wsi.embed_patches(model, index, pixels, cfg, plain)
            )
            if args.eval_every:
                curve.append({"epoch": int(len(history)), **windows_only})
        last = history.tail(5)
        key = name if not args.set else f"{name} " + " ".join(args.set)
        result["variants"][key] = {
            "change": merge(VARIANTS[name], extra),
            "train_seconds": round(train_s, 1),
            "epochs": int(len(history)),
            **{k: round(float(v), 4) for k, v in metrics.items() if k.endswith(("_accuracy", "_chance"))},
            "last_epochs_train_loss": [round(float(v), 4) for v in last["train/loss"]],
            "last_epochs_val_loss": [round(float(v), 4) for v in last.get("val/loss", last["train/loss"] * np.nan)],
            "keep": cfg.train.keep,
            "lowest_val_loss_epoch": int(history["val/loss"].idxmin()) + 1 if "val/loss" in history else None,
            "test_views": views.test_views,
            "windows_only_accuracy": windows_only,  # the same model embedded without the dihedral views
            **({"curve": curve} if curve else {}),
        }
        write_result(result, args.out)


if __name__ == "__main__":
    main()
