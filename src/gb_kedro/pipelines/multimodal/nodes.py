"""Nodes of the ``multimodal`` pipeline: parameters into typed configs, then :mod:`gb_kedro.multimodal`."""

from __future__ import annotations

import pandas as pd

from gb_kedro import evaluation, provenance
from gb_kedro import multimodal as mm
from gb_kedro.config import (
    BASELINE_ROWS,
    FeatureAdapterRow,
    LineageClassifierConfig,
    MultimodalConfig,
    PatchesConfig,
    SplitConfig,
    Table1Row,
)
from gb_kedro.datasets.patch_pixels import PatchPixels
from gb_kedro.tracking import log_parent_metrics


def _cohort(
    patch_index: pd.DataFrame,
    pixels: PatchPixels,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    patches: dict,
) -> tuple[mm.PairedCohort, PatchesConfig]:
    """The patches (index + pixels, checked to belong together) and the cohort's RNA, and the patch settings."""
    cfg = PatchesConfig.from_dict(patches)
    pixels.require(patch_index, cfg.geometry[0], "multimodal")
    return mm.PairedCohort(patch_index, pixels, cohort_features, cohort_samples), cfg


def _trained(wsi_encoder, patch_index: pd.DataFrame, split: dict) -> dict:
    split_cfg = SplitConfig.from_dict(split).to_dict()
    provenance.require_split(patch_index, split_cfg, "patch_index", "multimodal")
    provenance.require_model(
        wsi_encoder.meta, split_cfg, patch_index, "wsi_encoder", "multimodal", "run wsi_encoding first"
    )
    return split_cfg


def trainer(kind: str = "row", slot: int = 0):
    """The training node of one model: ``row``, a Table 1 row; ``seed``, retraining ``slot`` of the model row with
    another seed (Table 2's seed stability, slots 1 ..); ``null``, the model row trained on every training
    lineage's patches paired with another lineage's RNA (the permutation null, slots 0 ..). One namespaced pipeline
    per row or slot."""

    def train(
        wsi_encoder,
        rna_encoder,
        patch_index: pd.DataFrame,
        pixels: PatchPixels,
        cohort_features: pd.DataFrame,
        cohort_samples: pd.DataFrame,
        split: dict,
        options: dict,
        patches: dict,
        row: dict,
    ):
        """The model trained on the training patches paired with RNA (see :func:`trainer`); its history."""
        split_cfg = _trained(wsi_encoder, patch_index, split)
        data, views = _cohort(patch_index, pixels, cohort_features, cohort_samples, patches)
        args = (wsi_encoder, rna_encoder, data, MultimodalConfig.from_dict(options), views, Table1Row.from_dict(row))
        if kind == "row":
            model, history = mm.train_row(*args)
        else:
            model, history = (mm.train_seed if kind == "seed" else mm.train_null)(*args, slot)
        return model.describe(split=split_cfg, patch_index=provenance.index_fingerprint(patch_index)), history

    train.__name__ = train.__qualname__ = "train_multimodal" if kind == "row" else f"train_{kind}"
    return train


def _require_model(model, patch_index: pd.DataFrame, split: dict) -> SplitConfig:
    split_cfg = SplitConfig.from_dict(split)
    provenance.require_model(
        model.meta,
        split_cfg.to_dict(),
        patch_index,
        f"{model.meta.get('row')}.multimodal_model",
        "multimodal",
        "run the multimodal pipeline's training (it retrains for this split)",
    )
    return split_cfg


def _with_model(name: str, apply, doc: str):
    """A node that checks a trained model against the patch index and split, then ``apply(model, data, split,
    options, patches)`` on the paired cohort."""

    def node(
        model,
        patch_index: pd.DataFrame,
        pixels: PatchPixels,
        cohort_features: pd.DataFrame,
        cohort_samples: pd.DataFrame,
        split: dict,
        options: dict,
        patches: dict,
    ):
        split_cfg = _require_model(model, patch_index, split)
        data, views = _cohort(patch_index, pixels, cohort_features, cohort_samples, patches)
        return apply(model, data, split_cfg, MultimodalConfig.from_dict(options), views)

    node.__name__ = node.__qualname__ = name
    node.__doc__ = doc
    return node


train_multimodal = trainer("row")
evaluate_multimodal = _with_model(
    "evaluate_multimodal",
    mm.evaluate_row,
    "Eq. 9 on the held-out patches: the row's Table 1 metrics, confusion plot and per-patch predictions.",
)
predict_held_out = _with_model(
    "predict_held_out",
    lambda model, data, _split, cfg, views: mm.predict_held_out(model, data, cfg, views),
    "The RNA samples each held-out patch retrieves (eq. 9) with a retrained model (empty when not trained).",
)
embed_cohort = _with_model(
    "embed_cohort",
    lambda model, data, _split, cfg, views: mm.embed_cohort(model, data, cfg, views),
    "The model row's embeddings of every tumour patch and every cohort RNA sample (for the survival analysis).",
)


def adapter_row(encoder: str):
    """The training and evaluation nodes of Table 1 row ``<encoder>_adapter``: patch encoder ``encoder``'s
    features (``<encoder>.patch_embeddings``, checked to be the patch index's rows) through a trainable adapter."""

    name = f"{encoder}.patch_embeddings"

    def train_multimodal(
        rna_encoder, embeddings, patch_index, cohort_features, cohort_samples, split, options, adapter
    ):
        data, split_cfg = _features_cohort(embeddings, name, patch_index, cohort_features, cohort_samples, split, True)
        cfg, row = MultimodalConfig.from_dict(options), FeatureAdapterRow.from_dict(adapter)
        model, history = mm.train_features_row(rna_encoder, data, cfg, row, encoder)
        fingerprint = provenance.index_fingerprint(patch_index)
        return model.describe(split=split_cfg.to_dict(), patch_index=fingerprint), history

    def evaluate_multimodal(model, embeddings, patch_index, cohort_features, cohort_samples, split, options, patches):
        split_cfg = _require_model(model, patch_index, split)
        data, _ = _features_cohort(embeddings, name, patch_index, cohort_features, cohort_samples, split, True)
        cfg = MultimodalConfig.from_dict(options)
        return mm.evaluate_row(model, data, split_cfg, cfg, PatchesConfig.from_dict(patches))

    train_multimodal.__doc__ = f"Table 1 row {encoder}_adapter trained: {encoder}'s features, adapter, alignment."
    evaluate_multimodal.__doc__ = f"Eq. 9 on the held-out patches with a feature row of {encoder}: metrics, plot."
    return train_multimodal, evaluate_multimodal


def _features_cohort(
    features: pd.DataFrame, name: str, patch_index, cohort_features, cohort_samples, split: dict, embedded=False
):
    """A row's cohort on per-patch ``features`` instead of pixels (checked to be the index's patches in order) and its
    split: a non-deep row's (the patch index and the RNA; the row reads ``features`` itself) or, ``embedded``, a
    patch encoder's adapter row (its ``e``-numbered embeddings carried in the cohort)."""
    split_cfg = SplitConfig.from_dict(split)
    provenance.require_split(patch_index, split_cfg.to_dict(), "patch_index", "multimodal")
    provenance.require_rows(features, patch_index, name, "multimodal")
    if embedded:
        return mm.features_cohort(features, patch_index, cohort_features, cohort_samples), split_cfg
    return mm.PairedCohort(patch_index, None, cohort_features, cohort_samples), split_cfg


# Table 1's non-deep rows: row -> (its per-patch features in the catalog, its stage function, the shared configs it
# reads beside its own ``<row>.table1_row``, whose typed config is ``BASELINE_ROWS[row]``)
NON_DEEP_ROWS = {
    "colour_baseline": ("colour_features", mm.colour_row, ()),
    "morphometry_baseline": ("morphometry_features", mm.morphometry_row, ()),
    "morphometry_classifier": ("morphometry_features", mm.classifier_row, (LineageClassifierConfig,)),
    "expression_bridge": ("morphometry_features", mm.bridge_row, ()),
}


def non_deep_row(name: str):
    """The node of the non-deep Table 1 row ``name`` (see :data:`NON_DEEP_ROWS`): its per-patch features, checked to
    be the patch index's patches, -> the row's stage function -> (metrics, per-patch predictions)."""
    source, stage, shared = NON_DEEP_ROWS[name]

    def row_node(
        features: pd.DataFrame,
        patch_index: pd.DataFrame,
        cohort_features: pd.DataFrame,
        cohort_samples: pd.DataFrame,
        split: dict,
        options: dict,
        row: dict,
        *shared_options: dict,
    ) -> tuple[dict, pd.DataFrame]:
        data, split_cfg = _features_cohort(features, source, patch_index, cohort_features, cohort_samples, split)
        configs = [cls.from_dict(tree) for cls, tree in zip(shared, shared_options, strict=True)]
        cfg = MultimodalConfig.from_dict(options)
        return stage(features, data, split_cfg, cfg, BASELINE_ROWS[name].from_dict(row), *configs)

    row_node.__name__ = row_node.__qualname__ = name
    row_node.__doc__ = f"The non-deep Table 1 row {name} ({source} -> {stage.__name__}): metrics, predictions."
    return row_node


def compare_rows(options: dict, **predictions: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Every Table 1 row minus the reference row (``multimodal.evaluation.paired_reference``) on the same held-out
    patches, with a bootstrap that resamples the same slides for both (``table1_paired``) and its markdown."""
    cfg = MultimodalConfig.from_dict(options)
    table = evaluation.paired_rows(predictions, cfg.evaluation.paired_reference, cfg.evaluation.n_boot, cfg.seed)
    log_parent_metrics({f"table1_paired/{r.row}/{r.held_out}/difference": r.difference for r in table.itertuples()})
    return table, evaluation.paired_markdown(table)


def assemble_table1(*rows: dict) -> tuple[pd.DataFrame, str]:
    """Table 1 (configurations x held-out sets; patient and lineage accuracy with 95 % intervals) as a table and markdown."""
    table = evaluation.table1(list(rows))
    log_parent_metrics(
        {
            f"table1/{r['row']}/{name}/{m}": sets[m]
            for r in rows
            for name, sets in r["sets"].items()
            for m in ("lineage_accuracy", "patient_accuracy")
        }
    )
    return table, evaluation.table1_markdown(table)
