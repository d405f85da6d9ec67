"""Benchmark: does the WSI encoder learn morphology or slides? Anti-shortcut options on unseen mice.

Needs a project whose ``data_engineering`` and ``measure_morphometry`` have run with ``split.mode: all``
(any preset; the README quotes ``demo`` and ``paper``)::

    kedro run --pipelines data_engineering --params synthetic_cohort.preset=paper
    kedro run --nodes measure_morphometry
    python benchmarks/bench_generalisation.py --out benchmarks/results/bench_generalisation.json

For each variant (the ``wsi_encoding`` parameters of ``conf/base`` with the four anti-shortcut options set as
the variant says: cross-mouse positives, stain mixing, morphometry distillation, mouse adversary) the encoder is trained
from scratch on the run's training patches (its own checkpoint folder: nothing is resumed) and scored by
1-NN lineage retrieval of the held-out patches of seen slides and of the unseen mice against the training
patches, beside the colour and pixel-morphometry baselines (1-NN on standardised features) of the same
split. Per variant: wall time, the figures, and the per-epoch history (is it still improving at the last
epoch: the unseen-mouse accuracy measured every ``--eval-every`` epochs).
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs

OFF = {"loss": {"cross_mouse": False, "morphometry_weight": 0.0, "mouse_adversary": 0.0}, "augment": {"stain_mix": 0.0}}


def _variant(stain_mix: float = 0.0, **loss) -> dict:
    """The anti-shortcut options spelled out in full (independent of what conf/base sets)."""
    return {"loss": {**OFF["loss"], **loss}, "augment": {"stain_mix": stain_mix}}


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
        out[key] = merge(out[key], value) if isinstance(value, dict) else value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=None, help="override wsi_encoding.train.epochs")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_generalisation.json"))
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from gb_kedro import wsi_encoding as wsi
    from gb_kedro.config import SplitConfig, WSIEncodingConfig

    bootstrap_project(args.project)
    with KedroSession.create(project_path=args.project) as session:
        context = session.load_context()
        catalog, params = context.catalog, context.params
        index = catalog.load("patch_index")
        manifest = catalog.load("slide_manifest")
        morph = catalog.load("morphometry_features")
    split = SplitConfig.from_dict(params["split"])
    result = {
        "project": str(args.project.resolve()),
        "preset": params["synthetic_cohort"]["preset"],
        "split": split.to_dict(),
        "patches": {k or "train": int(v) for k, v in index["held_out"].value_counts().items()},
        "threads": torch.get_num_threads(),
        "variants": {},
    }
    base = params["wsi_encoding"]
    if args.epochs:
        base = merge(base, {"train": {"epochs": args.epochs}})
    for name in args.variants:
        with tempfile.TemporaryDirectory(prefix=f"bench_gen_{name}_") as tmp:
            options = merge(base, VARIANTS[name])
            cache_dir = options["checkpoint_dir"]  # the decoded-patch cache of the run is reused
            options["checkpoint_dir"] = tmp
            for f in Path(cache_dir).glob("wsi_patches_*.npy"):
                os.symlink(f.resolve(), Path(tmp) / f.name)
            cfg = WSIEncodingConfig.from_dict(options)
            start = time.perf_counter()
            model, history = wsi.train_encoder(index, manifest, cfg, morph)
            train_s = time.perf_counter() - start
            emb = wsi.embed_patches(model, index, manifest, cfg)
            metrics, _ = wsi.evaluate_embeddings(emb, index, manifest, model, split, cfg, morph)
        last = history.tail(5)
        result["variants"][name] = {
            "change": VARIANTS[name],
            "train_seconds": round(train_s, 1),
            "epochs": int(len(history)),
            **{k: round(float(v), 4) for k, v in metrics.items() if k.endswith(("_accuracy", "_chance"))},
            "last_epochs_train_loss": [round(float(v), 4) for v in last["train/loss"]],
            "last_epochs_val_loss": [round(float(v), 4) for v in last.get("val/loss", last["train/loss"] * np.nan)],
        }
        write_result(result, args.out)


if __name__ == "__main__":
    main()
