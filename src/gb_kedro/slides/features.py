"""Feature files of a patch encoder run elsewhere (TRIDENT, CLAM), found and matched to this project's patches.

TRIDENT (``run_batch_of_slides.py --task feat``) writes ``<job>/<mag>x_<size>px_<overlap>px_overlap/
features_<encoder>/<slide>.h5``; CLAM (``extract_features_fp.py``) writes ``<features_dir>/h5_files/<slide>.h5``.
Both hold ``features`` [N, D] and ``coords`` [N, 2] (each patch's top-left corner in level-0 px); TRIDENT puts the
patch side in level-0 px on ``coords`` (``patch_size_level0``, with ``target_magnification`` and ``patch_size``),
CLAM's patching puts ``patch_size`` and ``patch_level`` there. A feature row is one of this project's tumour patches
when the two cover the same field: the same side in level-0 px (so the same microns on the same slide) and top-left
corners closer than a share of the side. Anything else -- another magnification or patch size, another grid origin
-- stops with one line naming the file, the slide and both sizes: features of another field of view would be read
as this project's patches without any error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gb_kedro.errors import InputDataError


def find_feature_files(path: str | Path, layout: str) -> tuple[str, Path, dict[str, Path]]:
    """``(layout, folder, slide ID -> file)`` of a TRIDENT or CLAM feature folder. ``path``: a TRIDENT job or
    magnification folder holding one ``features_<encoder>/``, that folder itself, a CLAM features folder holding
    ``h5_files/``, or ``h5_files/`` itself; ``layout``: ``auto`` (from the folder names) | ``trident`` | ``clam``."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise InputDataError(root, "feature folder not found (patch_features.encoders.<name>.features.path)")
    folder, found = root, None
    if (root / "h5_files").is_dir() and layout in ("auto", "clam"):
        folder, found = root / "h5_files", "clam"
    elif layout in ("auto", "trident"):
        inner = sorted(p for p in root.rglob("features_*") if p.is_dir())
        if root.name.startswith("features_"):
            found = "trident"
        elif len(inner) > 1:
            names = ", ".join(str(p.relative_to(root)) for p in inner[:4])
            raise InputDataError(root, f"{len(inner)} TRIDENT feature folders ({names}): point the path at one")
        elif inner:
            folder, found = inner[0], "trident"
    if found is None:
        found = "clam" if root.name == "h5_files" or layout == "clam" else "trident"
    files = {p.stem: p for p in sorted(folder.glob("*.h5"))}
    if not files:
        raise InputDataError(folder, f"no <slide>.h5 feature files here ({found} layout expected)")
    return found, folder, files


def level0_side(attrs: dict, file: Path, fallback: int | None) -> int:
    """The side of a file's patches in level-0 px: TRIDENT's ``patch_size_level0``; CLAM's ``patch_size`` when made
    at level 0; else ``fallback`` (the setting); else a one-line stop."""
    if attrs.get("patch_size_level0"):
        return int(attrs["patch_size_level0"])
    if attrs.get("patch_size") and int(attrs.get("patch_level", 0)) == 0:
        return int(attrs["patch_size"])
    if fallback:
        return int(fallback)
    raise InputDataError(
        file,
        "the file does not say its patches' side in level-0 px (no patch_size_level0, or patch_size at a level > 0 "
        "on coords): set patch_features.encoders.<name>.features.patch_size_level0",
    )


def require_same_field(
    file: Path, slide: str, theirs: int, ours: int, mpp: float | None, attrs: dict, tolerance: float
) -> None:
    """Stop with one line when a file's patches are not this project's field of view (another magnification or
    patch size): both sides in level-0 px and, with the slide's level-0 microns per pixel, in microns."""
    if abs(theirs - ours) <= tolerance * ours:
        return

    def size(px: int) -> str:
        return f"{px} level-0 px" + (f" = {px * mpp:.0f} um" if mpp else "")

    made = (
        f" ({attrs['target_magnification']}x, {attrs['patch_size']} px)"
        if "target_magnification" in attrs and "patch_size" in attrs
        else ""
    )
    raise InputDataError(
        file,
        f"slide {slide}: feature patches of {size(theirs)}{made}, but this project's tumour patches are {size(ours)}: "
        "extract the features at the project's tiling (data_engineering.tiling.target_mpp, its patch size)",
    )


def match_patches(ours: np.ndarray, theirs: np.ndarray, side: int, tolerance: float) -> np.ndarray:
    """For each of ``ours`` [N, 2] top-left corners, the row of ``theirs`` [M, 2] whose corner lies within
    ``tolerance * side`` px on both axes (the nearest), or -1."""
    from scipy.spatial import cKDTree

    found = np.full(len(ours), -1, np.int64)
    if len(ours) == 0 or len(theirs) == 0:
        return found
    dist, rows = cKDTree(np.asarray(theirs, float)).query(
        np.asarray(ours, float), p=np.inf, distance_upper_bound=tolerance * side
    )
    hit = np.isfinite(dist)
    found[hit] = rows[hit]
    return found


def require_on_grid(file: Path, slide: str, ours: np.ndarray, theirs: np.ndarray, found: np.ndarray) -> None:
    """Stop when none of a slide's patches has a feature row although both have patches: another grid origin or
    step, or coordinates of another level."""
    if len(ours) and len(theirs) and (found < 0).all():
        raise InputDataError(
            file,
            f"slide {slide}: none of its {len(theirs)} feature patches lies on this project's grid of {len(ours)} "
            f"tumour patches (e.g. ours at {tuple(int(v) for v in ours[0])}, theirs at "
            f"{tuple(int(v) for v in theirs[0])}, level-0 px): tile from the same origin without overlap",
        )
