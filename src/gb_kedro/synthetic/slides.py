"""Synthetic whole-slide images: mouse-brain sections with DAB-brown human tumour cells.

Each mouse gets one slide. A :class:`Scene` holds everything needed to render any window of it
(so a 16k x 21k slide renders strip by strip in bounded memory):

- **Geometry** on a coarse grid (every ``GRID`` px): the brain section (an irregular ellipse, ~50 % of
  the slide), the tumour region inside it (~20 % of the slide, the same distribution for every lineage),
  a smooth local-density field.
- **Cells**: mouse nuclei (small, round, haematoxylin-blue) in the brain, and human tumour cells in the
  tumour region, whose morphology is the lineage's code (:data:`gb_kedro.synthetic.cohort.MORPHOLOGY_AXES`,
  levels -1/0/+1): nucleus size, elongation, arrangement (clustered / scattered / regular), chromatin texture
  (polarised / granular / vesicular: the same stain amounts, arranged differently), cell density, invasion (compact / irregular / diffuse tumour), plus per-cell
  noise. Nuclear area coverage is kept roughly constant across sizes, and brown fraction, DAB intensity and
  hue come from one distribution for all lineages, so no global colour statistic identifies a lineage.
- **Stain and scanner nuisance** per slide: haematoxylin / eosin / DAB intensities, a DAB tint, background
  and brightness, drawn from one distribution for all lineages (slide identity is not lineage identity).

Colours follow Beer-Lambert: ``RGB = 255 * 10 ** -(OD_H * h + OD_E * e + OD_DAB * d)`` with stain vectors
close to Ruifrok & Johnston's; the DAB vector is chosen so DAB-stained pixels have an HSL hue of 25-35 deg,
inside the authors' tumour interval (35 +- 15 deg).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from gb_kedro.datasets.slides import (
    STRIP,
    write_pyramid_tiff,  # noqa: F401  (the writer of these scenes; re-exported)
)

GRID = 16  # coarse-grid step (px) for the geometry fields

STAIN_H = np.array([0.65, 0.70, 0.29], dtype=np.float32)
STAIN_E = np.array([0.07, 0.99, 0.11], dtype=np.float32)
STAIN_DAB = np.array([0.25, 0.45, 0.80], dtype=np.float32)

# Level -1 / 0 / +1 of each axis.
NUCLEUS_RADIUS = (3.2, 4.3, 5.6)  # px at level 0 (~1 um/px: 6-11 um nuclei)
ELONGATION = (1.0, 1.8, 2.8)  # aspect ratio (area preserved)
DENSITY_FACTOR = (1.12, 1.0, 0.9)  # spacing multiplier (smaller = denser); a wider range (1.3 / 0.78) was measured
# to let colour read the density level (0.41 -> 0.58 per patch on held-out mice): more nuclei = more brown
DENSITY_NOISE = 0.25  # log-sd of the local-density field (same law for every lineage)
# Host (mouse) nuclei inside the tumour, relative to their density in the brain: what invasion looks like
# inside one patch (compact tumours push the brain aside, diffuse ones grow through it).
HOST_INFILTRATION = (0.0, 0.45, 1.0)
ARRANGEMENTS = (
    "clustered",
    "scattered",
    "regular",
)  # ordered by regularity (Clark-Evans < 1, = 1, > 1): a gene dose moves one way
TEXTURES = ("polarised", "granular", "vesicular")
INVASION = ("compact", "irregular", "diffuse")


@dataclass(frozen=True)
class SlideSpec:
    """One synthetic slide: identity, lineage code and size."""

    slide_id: str
    mouse_id: str
    lineage_id: str
    patient_id: str
    code: dict
    seed: int
    width: int = 3072
    height: int = 3072
    mpp: float = 1.0


@dataclass
class Cells:
    """Cell parameters (one entry per cell). ``kind`` 0 = mouse nucleus, 1 = tumour cell."""

    x: np.ndarray
    y: np.ndarray
    a: np.ndarray  # semi-axis along theta (px)
    b: np.ndarray  # semi-axis across theta (px)
    theta: np.ndarray
    kind: np.ndarray
    texture: np.ndarray  # index into TEXTURES (tumour cells)
    od: np.ndarray  # stain optical density of the nucleus
    seed: np.ndarray  # per-cell texture seed

    def select(self, mask: np.ndarray) -> Cells:
        return Cells(**{k: getattr(self, k)[mask] for k in self.__dataclass_fields__})


@dataclass
class Stains:
    """Per-slide stain / scanner nuisance."""

    h: float
    e: float
    dab: float
    dab_vector: np.ndarray
    background_od: np.ndarray
    brightness: float
    cytoplasm_dab: float


@dataclass
class Scene:
    spec: SlideSpec
    brain: np.ndarray  # coarse field, > 0 inside the brain section
    tumour: np.ndarray  # coarse field, > 0 inside the tumour
    density: np.ndarray  # coarse local-density multiplier (same law for all lineages)
    cells: Cells
    stains: Stains
    order: np.ndarray = field(default=None)  # cells sorted by y for window queries

    def __post_init__(self):
        self.order = np.argsort(self.cells.y, kind="stable")
        self._sorted_y = self.cells.y[self.order]

    # -----------------------------------------------------------------------------------------------
    def field_at(self, coarse: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Bilinear value of a coarse field at pixel coordinates (arrays of the same shape)."""
        return ndimage.map_coordinates(coarse, [ys / GRID, xs / GRID], order=1, mode="nearest")

    def window_field(self, coarse: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        """A coarse field upsampled (bilinear, separable) to the pixels of a window: [h, w]."""
        wy = _interp_matrix(y0, h, coarse.shape[0])
        wx = _interp_matrix(x0, w, coarse.shape[1])
        return (wy @ coarse @ wx.T).astype(np.float32)

    def render(self, x0: int, y0: int, w: int, h: int, noise: bool = True) -> np.ndarray:
        """RGB uint8 pixels of the window [y0:y0+h, x0:x0+w] at level 0: [h, w, 3]."""
        rng = np.random.default_rng((self.spec.seed, x0, y0))
        brain = np.clip(self.window_field(self.brain, x0, y0, w, h) * 12.0, 0.0, 1.0)
        tumour = np.clip(self.window_field(self.tumour, x0, y0, w, h) * 10.0, 0.0, 1.0)
        fibres = rng.standard_normal((h // 4 + 2, w // 4 + 2), dtype=np.float32)
        fibres = ndimage.zoom(ndimage.gaussian_filter(fibres, 0.8), 4, order=1)[:h, :w]
        s = self.stains
        od_e = brain * (0.16 + 0.04 * fibres) * s.e * (1.0 - 0.96 * tumour)
        od_h = brain * 0.03 * s.h
        od_d = tumour * s.cytoplasm_dab * s.dab * (1.0 + 0.08 * fibres)
        self._stamp_cells(od_h, od_d, x0, y0, w, h)
        od = od_e[..., None] * STAIN_E + od_h[..., None] * STAIN_H + od_d[..., None] * s.dab_vector + s.background_od
        rgb = 255.0 * s.brightness * np.power(10.0, -od, dtype=np.float32)
        if noise:
            rgb += rng.normal(0.0, 2.0, size=rgb.shape).astype(np.float32)
        return np.clip(rgb, 0, 255).astype(np.uint8)

    def _stamp_cells(self, od_h: np.ndarray, od_d: np.ndarray, x0: int, y0: int, w: int, h: int) -> None:
        """Draw the nuclei of the window. Overlapping nuclei take the maximum optical density (no
        darker overlaps), so clustering shows in the arrangement, not in the colour histogram."""
        c = self.cells
        margin = 16
        lo, hi = np.searchsorted(self._sorted_y, [y0 - margin, y0 + h + margin])
        idx = self.order[lo:hi]
        idx = idx[(c.x[idx] >= x0 - margin) & (c.x[idx] < x0 + w + margin)]
        s = self.stains
        nuc_h = np.zeros_like(od_h)
        nuc_d = np.zeros_like(od_d)
        for i in idx:
            a, b, t = c.a[i], c.b[i], c.theta[i]
            ext = int(math.ceil(max(a, b))) + 1
            cx, cy = c.x[i] - x0, c.y[i] - y0
            xa, xb = max(int(cx) - ext, 0), min(int(cx) + ext + 1, w)
            ya, yb = max(int(cy) - ext, 0), min(int(cy) + ext + 1, h)
            if xa >= xb or ya >= yb:
                continue
            yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float32)
            dx, dy = xx - cx, yy - cy
            ct, st = math.cos(t), math.sin(t)
            u, v = dx * ct + dy * st, -dx * st + dy * ct
            d2 = (u / a) ** 2 + (v / b) ** 2
            inside = np.clip((1.0 - d2) * 4.0, 0.0, 1.0)  # soft edge for d2 in [0.75, 1]
            if c.kind[i] == 0:
                np.maximum(nuc_h[ya:yb, xa:xb], inside * c.od[i] * s.h, out=nuc_h[ya:yb, xa:xb])
                continue
            pattern = np.where(d2 < 0.75, _texture(int(c.texture[i]), d2, dx, dy, int(c.seed[i])), 1.0)
            np.maximum(nuc_d[ya:yb, xa:xb], inside * pattern * c.od[i] * s.dab, out=nuc_d[ya:yb, xa:xb])
            np.maximum(nuc_h[ya:yb, xa:xb], inside * pattern * 0.08 * s.h, out=nuc_h[ya:yb, xa:xb])
        od_h += nuc_h
        od_d += nuc_d


def _texture(kind: int, d2: np.ndarray, dx: np.ndarray, dy: np.ndarray, seed: int) -> np.ndarray:
    """Chromatin pattern inside a nucleus core: every kind is half 0.7, half 1.3 (same stain amount and
    the same value histogram), arranged differently."""
    if kind == 0:  # polarised: chromatin condensed on one side (a random side per cell)
        angle = np.random.default_rng(seed).uniform(0, 2 * np.pi)
        side = (np.cos(angle) * dx + np.sin(angle) * dy) > 0
        return np.where(side, 1.3, 0.7).astype(np.float32)
    if kind == 1:  # granular: coarse dark/light speckles
        rng = np.random.default_rng(seed)
        speckle = rng.random(d2.shape) < 0.5
        return np.where(speckle, 1.3, 0.7).astype(np.float32)
    # vesicular: dark rim, pale centre, a nucleolus: half of the core (d2 < 0.75) dark, as for the others
    rim = np.where(d2 > 0.425, 1.3, 0.7).astype(np.float32)
    rim[d2 < 0.05] = 1.3
    return rim


def _interp_matrix(start: int, n: int, n_coarse: int) -> np.ndarray:
    """Dense [n, n_coarse] bilinear interpolation weights for pixels start .. start+n-1."""
    pos = (np.arange(start, start + n, dtype=np.float64) + 0.5) / GRID - 0.5
    pos = np.clip(pos, 0, n_coarse - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n_coarse - 1)
    f = pos - i0
    m = np.zeros((n, n_coarse), dtype=np.float32)
    m[np.arange(n), i0] += 1 - f
    m[np.arange(n), i1] += f
    return m


# ---------------------------------------------------------------------------------------------------
# Building a scene
# ---------------------------------------------------------------------------------------------------
def _smooth_noise(rng, shape, sigma) -> np.ndarray:
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return noise / (noise.std() + 1e-9)


def make_scene(spec: SlideSpec) -> Scene:
    """Geometry, cells and stains of one slide (deterministic in ``spec.seed``)."""
    rng = np.random.default_rng(spec.seed)
    code = spec.code
    gh, gw = spec.height // GRID + 2, spec.width // GRID + 2
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float64) * GRID

    # Brain section: an irregular ellipse covering about half of the slide.
    cx, cy = spec.width * rng.uniform(0.46, 0.54), spec.height * rng.uniform(0.46, 0.54)
    ax, ay = spec.width * rng.uniform(0.38, 0.44), spec.height * rng.uniform(0.36, 0.42)
    r = np.sqrt(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2)
    brain = 1.0 - r + 0.05 * _smooth_noise(rng, (gh, gw), max(gh, gw) / 12)

    # Tumour: area from one distribution for all lineages, shape from the invasion level.
    brain_area = (brain > 0).sum()
    target = brain_area * rng.uniform(0.32, 0.46)
    tx, ty = cx + rng.uniform(-0.12, 0.12) * ax, cy + rng.uniform(-0.12, 0.12) * ay
    d = np.sqrt((xx - tx) ** 2 + (yy - ty) ** 2) / GRID
    invasion = INVASION[code["invasion"] + 1]
    radius = math.sqrt(target / math.pi)
    if invasion == "compact":
        tumour = 1.0 - d / radius + 0.03 * _smooth_noise(rng, (gh, gw), 3)
    elif invasion == "irregular":
        tumour = 1.0 - d / radius + 0.45 * _smooth_noise(rng, (gh, gw), max(radius / 4, 1.5))
    else:  # diffuse: a smaller core and satellites scattered through the brain
        tumour = 1.0 - d / (radius * math.sqrt(0.55))
        sat_r = max(radius * 0.14, 1.5)
        n_sat = int(0.45 * target / (math.pi * sat_r**2))
        inside = np.argwhere(brain > 0.05)
        for k in rng.choice(len(inside), size=min(n_sat, len(inside)), replace=False):
            sy, sx = inside[k]
            ds = np.sqrt((np.arange(gw)[None, :] - sx) ** 2 + (np.arange(gh)[:, None] - sy) ** 2)
            tumour = np.maximum(tumour, 1.0 - ds / sat_r)
    tumour = np.minimum(tumour, brain)
    density = np.exp(DENSITY_NOISE * _smooth_noise(rng, (gh, gw), 4))

    stains = Stains(
        h=float(rng.lognormal(0, 0.2)),
        e=float(rng.lognormal(0, 0.2)),
        dab=float(np.clip(rng.lognormal(0, 0.22), 0.7, 1.6)),
        dab_vector=(STAIN_DAB + rng.normal(0, 0.015, 3)).astype(np.float32),  # a tint of a few degrees
        background_od=np.clip(rng.normal(0.03, 0.01, 3), 0.0, 0.08).astype(np.float32),
        brightness=float(rng.uniform(0.95, 1.02)),
        cytoplasm_dab=float(rng.uniform(0.36, 0.46)),
    )
    scene_fields = (brain, tumour, density)
    cells = _make_cells(spec, rng, *scene_fields)
    return Scene(
        spec=spec,
        brain=brain.astype(np.float32),
        tumour=tumour.astype(np.float32),
        density=density.astype(np.float32),
        cells=cells,
        stains=stains,
    )


def _points(rng, arrangement: str, spacing: float, width: int, height: int) -> np.ndarray:
    """Cell centres over the whole slide for one arrangement, mean density 1 / spacing^2."""
    area = width * height
    n = rng.poisson(area / spacing**2)
    if arrangement == "scattered":
        return np.column_stack([rng.uniform(0, width, n), rng.uniform(0, height, n)])
    if arrangement == "clustered":
        per = 7
        parents = np.column_stack([rng.uniform(0, width, n // per), rng.uniform(0, height, n // per)])
        kids = np.repeat(parents, per, axis=0) + rng.normal(0, spacing * 0.55, (len(parents) * per, 2))
        return kids
    # regular: jittered hexagonal grid
    dx = spacing * 1.07
    dy = dx * math.sqrt(3) / 2
    ys = np.arange(0, height, dy)
    pts = [
        np.column_stack(
            [np.arange((k % 2) * dx / 2, width, dx), np.full(len(np.arange((k % 2) * dx / 2, width, dx)), y)]
        )
        for k, y in enumerate(ys)
    ]
    grid = np.vstack(pts)
    return grid + rng.normal(0, spacing * 0.1, grid.shape)


def _make_cells(spec: SlideSpec, rng, brain, tumour, density) -> Cells:
    code = spec.code
    level = {axis: int(v) + 1 for axis, v in code.items()}
    r0 = NUCLEUS_RADIUS[level["nucleus_size"]]
    aspect = ELONGATION[level["elongation"]]
    spacing = 3.3 * r0 * DENSITY_FACTOR[level["cell_density"]]
    pts = _points(rng, ARRANGEMENTS[level["arrangement"]], spacing, spec.width, spec.height)
    pts = pts[(pts[:, 0] >= 0) & (pts[:, 0] < spec.width) & (pts[:, 1] >= 0) & (pts[:, 1] < spec.height)]
    t_val = ndimage.map_coordinates(tumour, [pts[:, 1] / GRID, pts[:, 0] / GRID], order=1)
    dens = ndimage.map_coordinates(density, [pts[:, 1] / GRID, pts[:, 0] / GRID], order=1)
    # Thin by the local-density field (same law for every lineage), keep points inside the tumour.
    keep = (t_val > 0) & (rng.random(len(pts)) < np.clip(dens / dens.max(), 0, 1) * 1.0)
    tum = pts[keep]
    n_t = len(tum)
    size = r0 * rng.lognormal(0, 0.12, n_t)
    asp = aspect * rng.lognormal(0, 0.1, n_t)
    # Mouse nuclei: small and round, in the brain outside the tumour.
    mpts = _points(rng, "scattered", 24.0, spec.width, spec.height)
    b_val = ndimage.map_coordinates(brain, [mpts[:, 1] / GRID, mpts[:, 0] / GRID], order=1)
    mt_val = ndimage.map_coordinates(tumour, [mpts[:, 1] / GRID, mpts[:, 0] / GRID], order=1)
    infiltration = HOST_INFILTRATION[level["invasion"]]
    mouse = mpts[(b_val > 0) & ((mt_val <= 0) | (rng.random(len(mpts)) < infiltration))]
    n_m = len(mouse)
    m_size = 2.4 * rng.lognormal(0, 0.1, n_m)
    texture = level["chromatin_texture"]
    return Cells(
        x=np.concatenate([mouse[:, 0], tum[:, 0]]).astype(np.float32),
        y=np.concatenate([mouse[:, 1], tum[:, 1]]).astype(np.float32),
        a=np.concatenate([m_size, size * np.sqrt(asp)]).astype(np.float32),
        b=np.concatenate([m_size, size / np.sqrt(asp)]).astype(np.float32),
        theta=rng.uniform(0, math.pi, n_m + n_t).astype(np.float32),
        kind=np.concatenate([np.zeros(n_m, np.int8), np.ones(n_t, np.int8)]),
        texture=np.full(n_m + n_t, texture, np.int8),
        od=np.concatenate([rng.normal(0.55, 0.06, n_m), rng.lognormal(math.log(0.75), 0.15, n_t)]).astype(np.float32),
        seed=rng.integers(0, 2**31, n_m + n_t),
    )


# ---------------------------------------------------------------------------------------------------
# Mice, and the generator's own view of a patch (for the oracle gate)
# ---------------------------------------------------------------------------------------------------
def make_mice(lineages, mice_per_lineage: int, seed: int, width: int, height: int, mpp: float = 1.0):
    """One row per mouse (= slide): IDs, lineage, patient, survival (days, shorter when the lineage is
    more aggressive), and the :class:`SlideSpec` to render its slide."""
    import pandas as pd

    from gb_kedro.synthetic.cohort import MORPHOLOGY_AXES

    if mice_per_lineage < 3:
        raise ValueError("at least 3 mice per lineage (the `mouse` split holds one out and trains on the others)")
    rng = np.random.default_rng(seed)
    rows, specs = [], []
    axes = [a for a in MORPHOLOGY_AXES if a in lineages.columns]
    for lin in lineages.itertuples(index=False):
        for k in range(mice_per_lineage):
            mouse_id = f"M-{lin.lineage_id}-{k + 1}"
            slide_id = f"WSI-{lin.lineage_id}-{k + 1}"
            survival = float(np.exp(np.log(60.0) - 0.35 * lin.aggressiveness + rng.normal(0, 0.08)))
            spec = SlideSpec(
                slide_id,
                mouse_id,
                lin.lineage_id,
                lin.patient_id,
                {a: int(getattr(lin, a)) for a in axes},
                seed=int(rng.integers(0, 2**31)),
                width=width,
                height=height,
                mpp=mpp,
            )
            rows.append(
                {
                    "slide_id": slide_id,
                    "mouse_id": mouse_id,
                    "lineage_id": lin.lineage_id,
                    "patient_id": lin.patient_id,
                    "survival_days": round(survival, 1),
                    "path": f"slides/{slide_id}.tif",
                }
            )
            specs.append(spec)
    return pd.DataFrame(rows), specs


ORACLE_FEATURES = (
    "log_nucleus_size",
    "log_elongation",
    "texture_polarised",
    "texture_granular",
    "texture_vesicular",
    "log_relative_density",
    "neighbour_cv",
    "clark_evans",
    "boundary_per_px",
)


def oracle_features(scene: Scene, x: int, y: int, size: int) -> np.ndarray:
    """What the generator knows about the tumour cells drawn in a patch: mean log nucleus size, mean log
    elongation, texture, density (cells per tumour pixel), nearest-neighbour regularity and clustering,
    tumour-boundary length (invasion). For the oracle gate only; the method never sees it."""
    c = scene.cells
    sel = (c.kind == 1) & (c.x >= x) & (c.x < x + size) & (c.y >= y) & (c.y < y + size)
    if sel.sum() < 3:
        return np.zeros(len(ORACLE_FEATURES))
    area = np.sqrt(c.a[sel] * c.b[sel])
    aspect = c.a[sel] / c.b[sel]
    pts = np.column_stack([c.x[sel], c.y[sel]])
    dist = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    nn = dist.min(axis=1)
    tumour = scene.window_field(scene.tumour, x, y, size, size) > 0
    boundary = np.logical_xor(tumour[1:, :], tumour[:-1, :]).sum() + np.logical_xor(tumour[:, 1:], tumour[:, :-1]).sum()
    texture = np.bincount(c.texture[sel], minlength=3) / sel.sum()
    density = sel.sum() / max(tumour.sum(), 1)
    clark_evans = nn.mean() * 2.0 * np.sqrt(density)  # ~1 random, > 1 regular, < 1 clustered
    return np.array(
        [
            np.log(area).mean(),
            np.log(aspect).mean(),
            *texture,
            np.log(density * area.mean() ** 2),
            nn.std() / nn.mean(),
            clark_evans,
            boundary / size,
        ]
    )


def slide_specs(marker: dict, lineages):
    """``make_mice`` of the cohort a generator marker describes (its seed and sizes): the manifest and the
    :class:`SlideSpec` of every slide, as ``generate_slides`` renders them."""
    from gb_kedro.synthetic.cohort import Preset

    sizes = Preset.from_dict(marker["sizes"])
    return make_mice(
        lineages,
        sizes.mice_per_lineage,
        seed=marker["seed"] + 1,
        width=sizes.slide_width,
        height=sizes.slide_height,
        mpp=sizes.slide_mpp,
    )


def patch_oracle(marker: dict, lineages, patch_index) -> np.ndarray | None:
    """:func:`oracle_features` of every patch of ``patch_index`` (rows in its order; ``x``, ``y``, ``size_level0``
    in level-0 px), the scenes rebuilt from the generator's marker: what the generator knows a patch holds, the
    ceiling of any reading of it. None when a slide of the index is not the marker's (not the generated cohort)."""
    _, specs = slide_specs(marker, lineages)
    by_slide = {spec.slide_id: spec for spec in specs}
    index = patch_index.reset_index(drop=True)
    if not set(index["slide_id"]) <= set(by_slide):
        return None
    sides = index["size_level0"] if "size_level0" in index else index["size"]
    out = np.zeros((len(index), len(ORACLE_FEATURES)))
    for slide, rows in index.groupby("slide_id").groups.items():
        scene = make_scene(by_slide[slide])
        for r in rows:
            out[r] = oracle_features(scene, int(index.at[r, "x"]), int(index.at[r, "y"]), int(sides.iat[r]))
    return out


@dataclass
class RenderedScene:
    """A slide already rendered at level 0 (``rgb`` [height, width, 3]), with the interface the writer reads."""

    spec: SlideSpec
    rgb: np.ndarray

    def render(self, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        return self.rgb[y0 : y0 + h, x0 : x0 + w]


def render_slide(spec: SlideSpec) -> np.ndarray:
    """The slide's level 0, rendered strip by strip as :func:`write_pyramid_tiff` renders it (a worker's job; a
    scene's noise is seeded by the window's corner, so the strips must be the writer's)."""
    scene = make_scene(spec)
    strips = [scene.render(0, y0, spec.width, min(STRIP, spec.height - y0)) for y0 in range(0, spec.height, STRIP)]
    return np.concatenate(strips, axis=0)


def lazy_scenes(specs: list, workers: int) -> dict:
    """Slide ID -> a callable that gives the slide's scene when the catalog is about to write it (one progress bar
    over all slides). With ``workers`` > 1 the slides are rendered ahead in that many spawned processes, in the
    order the catalog writes them (slide ID order), at most ``workers + 1`` slides in memory; the pixels are the
    same (each worker renders the writer's strips). With 1, each scene is built when its turn comes."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(specs), desc="Synthetic slides", unit="slide", leave=False, disable=None)
    order = [spec.slide_id for spec in sorted(specs, key=lambda spec: spec.slide_id)]
    by_id = {spec.slide_id: spec for spec in specs}
    futures: dict = {}
    done: set[str] = set()
    pool = None
    if workers > 1 and len(specs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def lazy(spec):
        def scene():
            bar.update()
            if bar.n == bar.total:
                bar.close()
            if pool is None:
                return make_scene(spec)
            start = order.index(spec.slide_id)
            for slide_id in order[start : start + workers + 1]:  # this slide and the next ones, rendered ahead
                if slide_id not in futures and slide_id not in done:
                    futures[slide_id] = pool.submit(render_slide, by_id[slide_id])
            done.add(spec.slide_id)
            rgb = futures.pop(spec.slide_id).result()
            if len(done) == len(specs):
                pool.shutdown()
            return RenderedScene(spec, rgb)

        return scene

    return {spec.slide_id: lazy(spec) for spec in specs}
