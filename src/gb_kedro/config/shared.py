"""Parameters shared by several pipelines (``conf/base/parameters.yml``: ``split``, ``patches``) and the settings
every training stage uses (``train``, ``sampler`` sections)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from gb_kedro.config.base import Config, choice
from gb_kedro.errors import InputDataError

SPLIT_MODES = ("all", "patch", "mouse", "lineage")
# The held-out sets of a split (the ``held_out`` column of the patch index), in Table 1's order.
HELD_OUT_SETS = ("patch", "mouse", "lineage")


class _Shared(Config):
    SOURCE: ClassVar[str] = "conf/base/parameters.yml"


@dataclasses.dataclass(frozen=True)
class SplitConfig(_Shared):
    """``params:split``: the evaluation split, applied end to end."""

    KEY: ClassVar[str] = "split"
    mode: str
    test_fraction: float
    test_mice_per_lineage: int
    n_test_lineages: int | None
    min_test_lineages: int
    min_train_lineages: int
    seed: int

    def __post_init__(self):
        choice(self.mode, SPLIT_MODES, "split.mode", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class DecodeConfig(_Shared):
    """How the patches are decoded from the slides once per run (``patches.decode``)."""

    batch_size: int
    num_workers: int
    executor: str

    def __post_init__(self):
        choice(self.executor, ("local", "dask"), "patches.decode.executor", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class AugmentConfig(_Shared):
    """Stain-safe augmentation of training patches (``patches.augment``; WSI encoder and multimodal training)."""

    flips: bool
    hed_sigma: float
    hed_bias: float
    stain_mix: float


# patches.test_views, the inference views of a patch (gb_kedro.slides.patches.VIEWS): its windows | each window
# turned by 0, 90, 180, 270 degrees | each window in its 8 flips / rotations
TEST_VIEWS = ("none", "rotations", "dihedral")


@dataclasses.dataclass(frozen=True)
class PatchesConfig(_Shared):
    """``params:patches``: how tumour patches become model inputs, for every stage that feeds patches to a model
    (WSI encoder, multimodal model, Grad-CAM) and for the node that decodes them (``patch_pixels``)."""

    KEY: ClassVar[str] = "patches"
    mode: str
    read_px: int
    model_px: int
    test_views: str
    inference_batch_size: int
    decode: DecodeConfig
    augment: AugmentConfig

    def __post_init__(self):
        choice(self.mode, ("crop", "downsample"), "patches.mode", self.SOURCE)
        choice(self.test_views, TEST_VIEWS, "patches.test_views", self.SOURCE)

    @property
    def geometry(self) -> tuple[int, int | None]:
        """(pixels decoded per patch, window fed to the model or None). ``crop``: decoded at ``read_px``, windows
        of ``model_px`` fed to the model; ``downsample``: the patch decoded (resized) at ``model_px``, fed whole."""
        return (self.read_px, self.model_px) if self.mode == "crop" else (self.model_px, None)


@dataclasses.dataclass(frozen=True)
class SamplerConfig(Config):
    """Batches of ``p`` lineages x ``k`` patches."""

    p: int
    k: int


@dataclasses.dataclass(frozen=True)
class DistributedSettings(Config):
    """Data-parallel training on one machine: ``world_size`` processes (``torch.multiprocessing``), ``backend``
    ``auto`` (nccl on CUDA, gloo on CPU), ``gloo`` or ``nccl``. ``world_size: 1`` = one process (no group)."""

    world_size: int
    backend: str

    def __post_init__(self):
        choice(self.backend, ("auto", "gloo", "nccl"), "<stage>.train.distributed.backend", self.SOURCE)
        if self.world_size < 1:
            raise InputDataError(self.SOURCE, f"distributed.world_size must be >= 1, not {self.world_size}")


@dataclasses.dataclass(frozen=True)
class TrainSettings(Config):
    """The optimiser schedule of one training stage (read into :class:`gb_kedro.training.TrainConfig`)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: float
    min_lr_ratio: float
    grad_clip: float
    patience: int  # epochs without validation improvement before stopping (0 = never stop)
    keep: str  # the weights the stage returns: best (lowest validation loss) | last (the final epoch's)
    num_workers: int
    distributed: DistributedSettings

    def __post_init__(self):
        choice(self.keep, ("best", "last"), "<stage>.train.keep", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class LineageClassifierConfig(_Shared):
    """``params:lineage_classifier``: the regularised classifier of a patch's lineage that the strong baselines use
    (the morphometry row of Table 1, the WSI metrics' classifier rows): standardised features -> multinomial
    logistic regression, its inverse penalty chosen by accuracy on whole training mice held out in turn."""

    KEY: ClassVar[str] = "lineage_classifier"
    inverse_penalties: list
    cv_folds: int
    max_iter: int

    def __post_init__(self):
        if not self.inverse_penalties or min(self.inverse_penalties) <= 0:
            raise InputDataError(
                self.SOURCE, f"lineage_classifier.inverse_penalties must be > 0: {self.inverse_penalties}"
            )
        if self.cv_folds < 2:
            raise InputDataError(self.SOURCE, f"lineage_classifier.cv_folds must be >= 2, not {self.cv_folds}")


ROOTS = (SplitConfig, PatchesConfig, LineageClassifierConfig)
