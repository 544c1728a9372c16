"""Built-in BraTS-like glioma MR phantom: four co-registered modalities and BraTS labels.

A subject is nilearn's bundled MNI152 (ICBM 2009a) GM/WM anatomy, warped (random affine +
elastic) into the 240 x 240 x 155 BraTS grid at 1 mm, with a glioma drawn in. All random numbers
are drawn from the seed first, so a ``z_range`` gives exactly those slices of the whole volume.

1. Anatomy: two cheap ``cv2.remap`` passes (what makes a subject fast): A along z per sagittal
   plane (z scale, pitch/roll, elastic dz), B in-plane per axial slice (rotation, scale,
   elastic dx/dy, mass effect). CSF is the rest of the brain mask: clip(1 - GM - WM).
2. Glioma: a noise-perturbed ellipsoidal distance field gives the necrotic core and enhancing
   rim (HGG) or a non-enhancing mass (LGG), and vasogenic oedema whose reach grows with the
   local WM fraction, so it fingers along WM and spares cortex and CSF.
3. Signal: tissue signals mixed by partial volume, from spin-echo and inversion-recovery
   equations with BrainWeb-like PD/T1/T2 (Cocosco et al. 1997); gadolinium shortens T1 on T1c;
   FLAIR's inversion time nulls CSF.
4. Scanner: per-modality texture, a multiplicative bias field, a random gain and Rician noise in
   the brain; exactly 0 outside, as in skull-stripped BraTS.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
from scipy import ndimage

from pggan_core.atomic import atomic_dir
from pggan_core.data.types import BrainVolume

BRATS_SHAPE = (240, 240, 155)
# The template's brain centre in the BraTS grid before the random shift: centred in-plane, low
# enough in z to leave a few empty slices above the vertex, as in BraTS.
OUT_CENTRE = np.array([119.5, 119.5, 75.0])
# MNI152 brains are large (mask 1.9 l); BraTS brains, in the smaller SRI24 space, hold 1.2-1.6 l.
TEMPLATE_SCALE = 0.93

# Tissue order of every fraction array and of the signal table rows.
TISSUES = ("CSF", "GM", "WM", "oedema", "non-enhancing", "enhancing", "necrosis")
# PD (relative), T1 (ms), T2 (ms) at 1.5 T: BrainWeb for normal tissue, tumour values are
# approximations in line with Just & Thelen (Radiology 1988): longer T1 and T2 in lesions.
RELAXATION = np.array([
    [1.00, 2569.0, 329.0],
    [0.86, 833.0, 83.0],
    [0.77, 500.0, 70.0],
    [0.92, 1200.0, 180.0],
    [0.88, 1100.0, 130.0],
    [0.88, 1050.0, 110.0],
    [0.95, 2000.0, 250.0],
])
# Gadolinium (mM) reaching each tissue on T1c: a broken blood-brain barrier in the rim.
GADOLINIUM_MM = np.array([0.0, 0.0, 0.0, 0.02, 0.05, 0.5, 0.0])
R1_RELAXIVITY = 4.0e-3  # per ms per mM (4 /s/mM)

# FLAIR TI nulling CSF at TR 9000 ms: T1_CSF (ln 2 - ln(1 + exp(-TR/T1_CSF))) = 1705 ms.
FLAIR_TI = RELAXATION[0, 1] * (math.log(2.0) - math.log1p(math.exp(-9000.0 / RELAXATION[0, 1])))


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Sequence timings (ms) and contrast dose of a session: T1 a short-TR spin echo (CSF/WM
    ~0.38, near the template's 0.33), T2 a long-TR one, FLAIR an inversion recovery whose TI
    nulls CSF; gd_dose scales GADOLINIUM_MM."""

    t1_tr: float = 400.0
    t1_te: float = 10.0
    t2_tr: float = 5000.0
    t2_te: float = 100.0
    flair_tr: float = 9000.0
    flair_te: float = 120.0
    flair_ti: float = FLAIR_TI
    gd_dose: float = 1.0


# Arbitrary per-modality scanner scale: the mean brain signal is about this times a random gain.
SCANNER_SCALE = np.array([600.0, 700.0, 900.0, 450.0])
HGG_PROBABILITY = 0.7


def spin_echo(pd: np.ndarray, t1: np.ndarray, t2: np.ndarray, tr: float, te: float) -> np.ndarray:
    """Spin-echo magnitude: PD (1 - exp(-TR/T1)) exp(-TE/T2)."""
    return pd * (1.0 - np.exp(-tr / t1)) * np.exp(-te / t2)


def inversion_recovery(pd: np.ndarray, t1: np.ndarray, t2: np.ndarray, tr: float, te: float,
                       ti: float) -> np.ndarray:
    """Inversion-recovery magnitude: PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)."""
    return pd * np.abs(1.0 - 2.0 * np.exp(-ti / t1) + np.exp(-tr / t1)) * np.exp(-te / t2)


def tissue_signals(protocol: Protocol = Protocol()) -> np.ndarray:
    """(7 tissues, 4 modalities) noiseless signal of each pure tissue in T1, T1c, T2, FLAIR."""
    pd, t1, t2 = RELAXATION.T
    t1_gd = 1.0 / (1.0 / t1 + R1_RELAXIVITY * protocol.gd_dose * GADOLINIUM_MM)
    p = protocol
    return np.stack([
        spin_echo(pd, t1, t2, p.t1_tr, p.t1_te),
        spin_echo(pd, t1_gd, t2, p.t1_tr, p.t1_te),
        spin_echo(pd, t1, t2, p.t2_tr, p.t2_te),
        inversion_recovery(pd, t1, t2, p.flair_tr, p.flair_te, p.flair_ti),
    ], axis=1).astype(np.float32)


# ------------------------------------------ The MNI152 template and a noise bank, loaded once


@dataclasses.dataclass(frozen=True)
class Templates:
    """The MNI152 maps cropped to the brain, laid out for ``cv2.remap``.

    maps: float32 (X, Z, Y, 3) GM and WM probability, brain mask (0/1); maps[x] is a sagittal
    plane, z as rows, as the z pass resamples it. centre: brain bounding-box centre, (x, y, z)
    voxels. world_of_voxel: the cropped grid's MNI affine (voxel -> mm). tumour_sites: int
    (K, 3) deep supratentorial WM voxels (WM > 0.9) where gliomas start. composition: mean CSF,
    GM, WM fractions of the brain, to express noise relative to signal.
    """

    maps: np.ndarray
    centre: np.ndarray
    world_of_voxel: np.ndarray
    tumour_sites: np.ndarray
    composition: np.ndarray

    @property
    def plane_shape(self) -> tuple[int, int]:
        """(X, Y) of the template's axial plane."""
        return self.maps.shape[0], self.maps.shape[2]


@functools.cache
def load_templates() -> Templates:
    """Load nilearn's bundled MNI152 1 mm templates (no download), once per process."""
    from nilearn import datasets  # slow to import; only needed the first time

    t1_img = datasets.load_mni152_template(resolution=1)
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    mask = datasets.load_mni152_brain_mask(resolution=1).get_fdata(dtype=np.float32) > 0.5

    # Crop to the brain plus a margin so the warps touch fewer empty voxels; keep all of z.
    xs, ys = np.nonzero(mask.any(axis=2))
    lo = np.array([max(xs.min() - 12, 0), max(ys.min() - 12, 0), 0])
    hi = np.array([xs.max() + 13, ys.max() + 13, mask.shape[2]])
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    mask = mask[crop]
    # An average of 152 brains is blurrier than any one: unsharp masking restores crisp gyri.
    gm, wm = (np.clip(2.0 * p[crop] - ndimage.gaussian_filter(p[crop], 1.5), 0.0, 1.0) * mask
              for p in (gm, wm))
    maps = np.stack([gm, wm, mask.astype(np.float32)], axis=-1).transpose(0, 2, 1, 3)

    centre = np.array([(v.min() + v.max()) / 2.0 for v in np.nonzero(mask)])
    world_of_voxel = t1_img.affine.copy()
    world_of_voxel[:3, 3] += world_of_voxel[:3, :3] @ lo

    # Gliomas are mostly supratentorial and arise in white matter: MNI z from -4 to +50 mm.
    z_world = world_of_voxel[2, 3] + np.arange(mask.shape[2])
    deep_wm = (wm > 0.9) & ((z_world >= -4) & (z_world <= 50))[None, None, :]
    tumour_sites = np.argwhere(deep_wm)[::7].astype(np.int32)

    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)[mask]
    composition = np.array([csf.mean(), gm[mask].mean(), wm[mask].mean()])
    return Templates(np.ascontiguousarray(maps), centre, world_of_voxel, tumour_sites,
                     composition / composition.sum())


NOISE_BANK_SIZE = 1 << 23


@functools.cache
def load_noise_bank() -> np.ndarray:
    """8 M fixed standard normals; each slice reads a window at a seeded offset (drawing 15 M
    fresh normals per subject would take a third of the time budget)."""
    return np.random.default_rng(20180413).standard_normal(NOISE_BANK_SIZE, dtype=np.float32)


# ------------------------------------------------------------------------ Random smooth fields


class SmoothField:
    """A smooth field over an (X, Y, Z) box from a coarse grid, read one axial slice at a time:
    cubic in-plane (``cv2.resize``), linear between grid slices."""

    def __init__(self, grid: np.ndarray, shape: tuple[int, int, int]) -> None:
        self.grid = grid  # float32 (Zc, Xc, Yc, channels)
        self.shape = shape

    @classmethod
    def random(cls, rng: np.random.Generator, shape: tuple[int, int, int], spacing: float,
               channels: int) -> SmoothField:
        """Unit-variance noise with features about ``spacing`` voxels across. Neighbouring
        grid values are made to correlate first: interpolated white noise shows its lattice."""
        xc, yc, zc = (max(math.ceil(n / spacing) + 1, 2) for n in shape)
        grid = rng.standard_normal((zc, xc, yc, channels), dtype=np.float32)
        grid = ndimage.gaussian_filter(grid, sigma=(0.7, 0.7, 0.7, 0), mode="wrap")
        return cls(grid / grid.std(axis=(0, 1, 2)), shape)

    def at_slice(self, z: int) -> np.ndarray:
        """float32 (X, Y, channels) at slice ``z`` of the box."""
        nz = self.grid.shape[0]
        t = min(max((z + 0.5) * nz / self.shape[2] - 0.5, 0.0), nz - 1.0)  # cv2's convention
        k = min(int(t), nz - 2)
        w = t - k
        plane = (1.0 - w) * self.grid[k] + w * self.grid[k + 1]
        out = cv2.resize(plane, (self.shape[1], self.shape[0]), interpolation=cv2.INTER_CUBIC)
        return out.reshape(self.shape[0], self.shape[1], -1)

    def on_grid_of(self, other: SmoothField) -> np.ndarray:
        """This field sampled at the grid nodes of ``other`` (same box), shaped like its grid."""
        zc, xc, yc, _ = other.grid.shape
        coarse = SmoothField(self.grid, (xc, yc, zc))
        return np.stack([coarse.at_slice(k) for k in range(zc)])


def ramp(distance: np.ndarray, width: float) -> np.ndarray:
    """Soft inside-indicator: 1 well inside (distance >> 0), 0 outside, linear over ``width``."""
    return np.clip(0.5 + distance / width, 0.0, 1.0)


def tissue_fractions(gm: np.ndarray, wm: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """CSF, GM, WM fractions (last axis, summing to 1) from warped GM, WM, brain-mask maps."""
    inside = 1.0 / np.maximum(mask, 1e-6)
    g = np.clip(gm * inside, 0.0, 1.0)
    w = np.clip(wm * inside, 0.0, 1.0 - g)
    return np.stack([1.0 - g - w, g, w], axis=-1)


# ------------------------------------------------------------------ One subject's random draws


@dataclasses.dataclass
class Tumour:
    """A glioma in output voxel coordinates (BraTS grid, 1 mm)."""

    grade: str
    centre: np.ndarray  # (3,) float
    radius: float  # mm, outer edge of the enhancing rim (HGG) or of the solid mass (LGG)
    shape: np.ndarray  # (3, 3): maps (p - centre) to a normalised radius, 1 at the edge
    necrosis_ratio: float  # necrotic core edge as a fraction of the radius (0 = none)
    oedema_reach: float  # oedema edge in radii, reached in pure white matter
    enhancing_focus: np.ndarray | None  # LGG only: centre of a small enhancing nodule
    mass_effect: float  # fraction of the radius by which tissue at the edge is pushed out
    lo: np.ndarray  # (3,) int, box holding the whole lesion
    hi: np.ndarray
    boundary: SmoothField  # over the box: core, necrosis, oedema edges, rim gaps, core texture


@dataclasses.dataclass
class SubjectPlan:
    """Everything random about one subject, drawn from its seed before any rendering."""

    inplane: np.ndarray  # (2, 3): output (x, y, 1) -> template (x, y)
    z_of_slice: np.ndarray  # (2,): template z = a + b * output z, before tilt and elastic dz
    tilt: np.ndarray  # (X, Y) on the template plane: extra template z from pitch and roll
    elastic_z: SmoothField  # over (template X, template Y, output Z), 1 channel
    elastic_xy: SmoothField  # over the output grid, 2 channels
    elastic_mm: float
    appearance: SmoothField  # over the output grid, 4 channels: bias field + texture
    protocol: Protocol
    gain: np.ndarray  # (4,) scanner gain per modality
    noise_fraction: float  # Rician sigma over the mean brain signal
    noise_offsets: np.ndarray  # (155,) where each slice's noise starts in the noise bank
    tumour: Tumour


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3D rotation (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def plan_subject(seed: int, templates: Templates) -> SubjectPlan:
    """Draw all of a subject's random numbers, in a fixed order, from ``seed``."""
    rng = np.random.default_rng(seed)
    out_centre = OUT_CENTRE + rng.uniform(-4, 4, 3)

    # Affine: +-10 deg in-plane rotation, +-10 % overall scale, +-4 % per axis, small tilt.
    angle = math.radians(rng.uniform(-10, 10))
    scale = TEMPLATE_SCALE * rng.uniform(0.9, 1.1) * rng.uniform(0.96, 1.04, 3)
    pitch, roll = np.radians(rng.uniform(-4, 4, 2))
    cos, sin = math.cos(angle), math.sin(angle)
    to_template = np.array([[cos, sin], [-sin, cos]]) / scale[:2, None]  # R(-angle) / scale
    inplane = np.concatenate(
        [to_template, (templates.centre[:2] - to_template @ out_centre[:2])[:, None]], axis=1)
    z_of_slice = np.array([templates.centre[2] - out_centre[2] / scale[2], 1.0 / scale[2]])
    tx, ty = np.meshgrid(*(np.arange(n) - c for n, c in
                           zip(templates.plane_shape, templates.centre[:2], strict=True)),
                         indexing="ij")
    tilt = (math.tan(pitch) * ty + math.tan(roll) * tx).astype(np.float32)

    # Elastic: 2-4 mm displacements varying over ~2 cm.
    elastic_z = SmoothField.random(rng, (*templates.plane_shape, BRATS_SHAPE[2]), 16.0, 1)
    elastic_xy = SmoothField.random(rng, BRATS_SHAPE, 16.0, 2)
    elastic_mm = rng.uniform(2.0, 4.0)

    # Appearance: a bias field (+-15-20 % at 2 sigma, ~6 cm scale) plus per-modality texture
    # (+-6-9 %, ~7 mm blobs), summed on the texture's grid into one multiplicative field 1 + a.
    bias = SmoothField.random(rng, BRATS_SHAPE, 60.0, 4)
    texture = SmoothField.random(rng, BRATS_SHAPE, 5.0, 4)
    appearance = SmoothField(rng.uniform(0.07, 0.1) * bias.on_grid_of(texture)
                             + rng.uniform(0.03, 0.045) * texture.grid, BRATS_SHAPE)
    # Sites differ: jitter the timings (+-15 %), the FLAIR null (+-4 %) and the contrast dose.
    jitter = rng.uniform(0.85, 1.15, 4)
    protocol = Protocol(t1_tr=400.0 * jitter[0], t1_te=10.0 * jitter[1],
                        t2_te=100.0 * jitter[2], flair_te=120.0 * jitter[3],
                        flair_ti=FLAIR_TI * rng.uniform(0.96, 1.04),
                        gd_dose=rng.uniform(0.7, 1.3))
    gain = SCANNER_SCALE * np.exp(rng.uniform(-0.5, 0.5, 4))
    noise_fraction = rng.uniform(0.015, 0.025)
    slice_area = BRATS_SHAPE[0] * BRATS_SHAPE[1]
    noise_offsets = rng.integers(0, NOISE_BANK_SIZE - 8 * slice_area, BRATS_SHAPE[2])

    # Tumour centre: a deep-WM template voxel carried to the output grid by the affine part.
    site = templates.tumour_sites[rng.integers(len(templates.tumour_sites))].astype(float)
    xy = np.linalg.solve(to_template, site[:2] - inplane[:, 2])
    z = (site[2] - tilt[int(site[0]), int(site[1])] - z_of_slice[0]) / z_of_slice[1]
    tumour = _plan_tumour(rng, np.array([xy[0], xy[1], z]))
    return SubjectPlan(inplane=inplane, z_of_slice=z_of_slice, tilt=tilt, elastic_z=elastic_z,
                       elastic_xy=elastic_xy, elastic_mm=elastic_mm, appearance=appearance,
                       protocol=protocol, gain=gain, noise_fraction=noise_fraction,
                       noise_offsets=noise_offsets, tumour=tumour)


def _plan_tumour(rng: np.random.Generator, centre: np.ndarray) -> Tumour:
    """Grade, size, shape and compartments of a glioma centred at ``centre``."""
    grade = "HGG" if rng.random() < HGG_PROBABILITY else "LGG"
    if grade == "HGG":
        radius = rng.uniform(10, 18)
        necrosis_ratio = rng.uniform(0.35, 0.7)
        oedema_reach = rng.uniform(1.6, 2.4)
        mass_effect = rng.uniform(0.2, 0.45)
    else:
        radius = rng.uniform(12, 22)
        necrosis_ratio = 0.0
        oedema_reach = rng.uniform(1.15, 1.5)
        mass_effect = rng.uniform(0.1, 0.25)
    axes = rng.uniform(0.8, 1.25, 3)
    shape = (_rotation(rng).T / axes[:, None]) / radius
    has_focus = grade == "LGG" and rng.random() < 0.3
    focus = centre + rng.uniform(-0.4, 0.4, 3) * radius if has_focus else None
    # The box must hold the oedema: reach x longest axis / smallest edge bump, + ramp margin.
    half = math.ceil(radius * oedema_reach * 1.25 / 0.75 + 4)
    lo = np.maximum(np.floor(centre).astype(int) - half, 0)
    hi = np.minimum(np.floor(centre).astype(int) + half + 1, BRATS_SHAPE)
    boundary = SmoothField.random(rng, tuple(int(n) for n in hi - lo), 6.0, 5)
    return Tumour(grade, centre, radius, shape, necrosis_ratio, oedema_reach, focus,
                  mass_effect, lo, hi, boundary)


# ----------------------------------------------------------------------------------- Rendering


def _warp_z(plan: SubjectPlan, templates: Templates, zs: np.ndarray) -> np.ndarray:
    """Pass A: the template's sagittal planes resampled along z for output slices ``zs``,
    float32 (X, len(zs), Y, 3) on the template's in-plane grid."""
    nx, ny = templates.plane_shape
    source_z = np.empty((nx, len(zs), ny), np.float32)
    for k, z in enumerate(zs):
        dz = plan.elastic_mm * plan.elastic_z.at_slice(int(z))[..., 0]
        source_z[:, k] = plan.z_of_slice[0] + plan.z_of_slice[1] * z + plan.tilt + dz
    columns = np.ascontiguousarray(
        np.broadcast_to(np.arange(ny, dtype=np.float32), (len(zs), ny)))
    out = np.empty((nx, len(zs), ny, 3), np.float32)
    for x in range(nx):
        out[x] = cv2.remap(templates.maps[x], columns, source_z[x], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def _add_mass_effect(plan: SubjectPlan, z: int, map_x: np.ndarray, map_y: np.ndarray) -> None:
    """Pass B's mass effect, in place on its maps: point p shows the tissue from c + (p - c)
    (1 - a exp(-(r/L)^2)), whose radial slope 1 - a e^(-s^2)(1 - 2 s^2) stays positive for
    a < 1, so the map never folds."""
    t = plan.tumour
    length = 1.5 * t.radius
    dz = z - t.centre[2]
    if abs(dz) >= 2.5 * length:
        return
    half = math.ceil(2.5 * length)
    lo = np.maximum(np.floor(t.centre[:2]).astype(int) - half, 0)
    hi = np.minimum(np.floor(t.centre[:2]).astype(int) + half + 1, BRATS_SHAPE[:2])
    px, py = np.meshgrid(np.arange(lo[0], hi[0]) - t.centre[0],
                         np.arange(lo[1], hi[1]) - t.centre[1], indexing="ij")
    shrink = (t.mass_effect * t.radius / length) * np.exp(-(px**2 + py**2 + dz**2) / length**2)
    ux, uy = px * shrink, py * shrink
    m = plan.inplane
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]))
    map_x[box] -= (m[0, 0] * ux + m[0, 1] * uy).astype(np.float32)
    map_y[box] -= (m[1, 0] * ux + m[1, 1] * uy).astype(np.float32)


def _draw_tumour(t: Tumour, z: int, warped_box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The glioma in the tumour box of slice ``z``, given the box's warped GM, WM, mask
    (bx, by, 3): fractions (bx, by, 7) in TISSUES order and BraTS labels uint8 (bx, by)."""
    px, py = np.meshgrid(np.arange(t.lo[0], t.hi[0]) - t.centre[0],
                         np.arange(t.lo[1], t.hi[1]) - t.centre[1], indexing="ij")
    pz = z - t.centre[2]
    u = [t.shape[i, 0] * px + t.shape[i, 1] * py + t.shape[i, 2] * pz for i in range(3)]
    rho = np.sqrt(u[0] ** 2 + u[1] ** 2 + u[2] ** 2)
    noise = t.boundary.at_slice(z - int(t.lo[2]))
    r = t.radius
    base = tissue_fractions(warped_box[..., 0], warped_box[..., 1], warped_box[..., 2])
    csf, gm, wm = base[..., 0], base[..., 1], base[..., 2]

    # Noise scales the normalised radius: bumps grow with the radius, no islands appear afar.
    core = ramp((1.0 - rho * (1.0 + 0.15 * noise[..., 0])) * r, 1.5)
    if t.grade == "HGG":
        inner = rho * (1.0 + 0.25 * noise[..., 1])
        necrosis = core * ramp((t.necrosis_ratio - inner) * r, 2.0)
        rim = core - necrosis
        gaps = ramp((noise[..., 3] - 1.0) * 4.0, 1.0)  # patches of the rim that do not enhance
        enhancing, non_enhancing = rim * (1.0 - gaps), rim * gaps
        # A heterogeneous core: necrotic debris mixed with non-enhancing tumour (both label 1).
        debris = necrosis * np.clip(0.3 + 0.3 * noise[..., 4], 0.0, 0.8)
        necrosis, non_enhancing = necrosis - debris, non_enhancing + debris
    else:
        necrosis = np.zeros_like(core)
        enhancing = np.zeros_like(core)
        if t.enhancing_focus is not None:
            f = t.enhancing_focus
            d = np.sqrt((px + t.centre[0] - f[0]) ** 2 + (py + t.centre[1] - f[1]) ** 2
                        + (z - f[2]) ** 2)
            enhancing = core * ramp(4.0 - d, 1.5)
        non_enhancing = core - enhancing

    # WM fraction blurred ~2 mm, so thin strands of cortex do not break the oedema into specks.
    white = cv2.GaussianBlur((wm + 0.25 * gm).astype(np.float32), (0, 0), 2.0)
    reach = 1.0 + (t.oedema_reach - 1.0) * white
    bumps = 1.0 + 0.2 * np.maximum(noise[..., 2], -1.25)  # >= 0.75: stays inside the box
    oedema_zone = ramp((reach - rho * bumps) * r, 5.0) * (1.0 - core)
    # Water content falls off away from the tumour: full oedema at its edge, half at the rim.
    falloff = np.clip((rho - 1.0) / (t.oedema_reach - 1.0), 0.0, 1.0)
    oedema = oedema_zone * (1.0 - 0.5 * falloff)

    tissue_left = 1.0 - core
    fractions = np.stack([
        csf * tissue_left,
        gm * tissue_left * (1.0 - oedema),
        wm * tissue_left * (1.0 - oedema),
        (gm + wm) * tissue_left * oedema,
        non_enhancing, enhancing, necrosis,
    ], axis=-1).astype(np.float32)

    labels = np.zeros(core.shape, np.uint8)
    labels[(oedema_zone > 0.5) & (gm + wm > 0.5) & (core <= 0.5)] = 2
    in_core = core > 0.5
    enhancing_wins = enhancing >= np.maximum(necrosis, non_enhancing)
    labels[in_core & enhancing_wins] = 4
    labels[in_core & ~enhancing_wins] = 1
    labels[warped_box[..., 2] <= 0.5] = 0  # never outside the brain
    return fractions, labels


def render(plan: SubjectPlan, templates: Templates, noise_bank: np.ndarray,
           z_range: tuple[int, int], with_tissue: bool = False
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Output slices z_range[0] .. z_range[1]-1 of a planned subject, slice-major: modalities
    float32 (4, nz, X, Y), seg uint8 (nz, X, Y), brain bool (nz, X, Y) and, if asked (else
    None), the CSF, GM, WM fractions float32 (3, nz, X, Y) left beside the tumour. Only brain
    voxels are worked on, gathered slice by slice into flat (N, ...) arrays."""
    zs = np.arange(*z_range)
    nx, ny = BRATS_SHAPE[:2]
    t = plan.tumour
    resampled = _warp_z(plan, templates, zs)
    # pass B's affine part: the template (x, y) of every output (x, y)
    x, y = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    m = plan.inplane
    affine_x = (m[0, 0] * x + m[0, 1] * y + m[0, 2]).astype(np.float32)
    affine_y = (m[1, 0] * x + m[1, 1] * y + m[1, 2]).astype(np.float32)
    seg = np.zeros((len(zs), nx, ny), np.uint8)
    brain = np.zeros((len(zs), nx, ny), bool)
    warped_maps, appearance, noise, voxel_index = [], [], [], []
    lesion_at, lesion_fractions = [], []  # tumour voxels: position in the flat arrays, fractions
    count = 0
    for k, z in enumerate(zs):
        z = int(z)
        d = plan.elastic_mm * plan.elastic_xy.at_slice(z)
        map_x, map_y = affine_x + d[..., 0], affine_y + d[..., 1]
        _add_mass_effect(plan, z, map_x, map_y)
        # cv2 indexes (row, col) = (template x, template y): map1 is the column coordinate.
        warped = cv2.remap(resampled[:, k], map_y, map_x, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        brain[k] = warped[..., 2] > 0.5
        index = np.flatnonzero(brain[k])
        warped_maps.append(np.take(warped.reshape(-1, 3), index, axis=0))
        appearance.append(np.take(plan.appearance.at_slice(z).reshape(-1, 4), index, axis=0))
        offset = plan.noise_offsets[z]
        noise.append(noise_bank[offset:offset + 8 * len(index)].reshape(len(index), 8))
        voxel_index.append(index + k * nx * ny)
        if t.lo[2] <= z < t.hi[2]:
            box = (slice(t.lo[0], t.hi[0]), slice(t.lo[1], t.hi[1]))
            fractions, seg[k][box] = _draw_tumour(t, z, warped[box])
            in_brain = brain[k][box]
            flat = (np.arange(t.lo[0], t.hi[0])[:, None] * ny + np.arange(t.lo[1], t.hi[1]))
            lesion_at.append(count + np.searchsorted(index, flat[in_brain]))
            lesion_fractions.append(fractions[in_brain])
        count += len(index)

    maps = np.concatenate(warped_maps)
    signals = tissue_signals(plan.protocol)
    normal = tissue_fractions(maps[:, 0], maps[:, 1], maps[:, 2])  # (N, 3) CSF, GM, WM
    signal = normal @ signals[:3]  # (N, 4): the partial-volume mix of the tissue signals
    if lesion_at:
        lesion_at, lesion = np.concatenate(lesion_at), np.concatenate(lesion_fractions)
        signal[lesion_at] = lesion @ signals
        normal[lesion_at] = lesion[:, :3]
    signal *= np.maximum(1.0 + np.concatenate(appearance), 0.3)
    reference = templates.composition @ signals[:3]  # mean normal-brain signal per modality
    signal *= (plan.gain / reference).astype(np.float32)
    sigma = (plan.noise_fraction * plan.gain).astype(np.float32)
    n = np.concatenate(noise)
    magnitude = np.hypot(signal + sigma * n[:, :4], sigma * n[:, 4:])  # Rician |S + noise|

    voxels = np.concatenate(voxel_index)
    modalities = np.zeros((4, len(zs) * nx * ny), np.float32)
    modalities[:, voxels] = magnitude.T
    tissue = None
    if with_tissue:
        tissue = np.zeros((3, len(zs) * nx * ny), np.float32)
        tissue[:, voxels] = normal.T
        tissue = tissue.reshape(3, len(zs), nx, ny)
    return modalities.reshape(4, len(zs), nx, ny), seg, brain, tissue


# ---------------------------------------------------------------------------------- Public API


class BrainPhantom:
    """Makes phantom subjects; holds the MNI152 templates so they are loaded once."""

    def __init__(self) -> None:
        self.templates = load_templates()
        self.noise_bank = load_noise_bank()

    def subject(self, seed: int, z_range: tuple[int, int] | None = None,
                tissue: bool = False) -> BrainVolume:
        """One glioma subject, deterministic in ``seed``: modalities float32 (4, 240, 240, nz) in
        MODALITIES order (scanner-like, 0 outside the brain), seg uint8 in {0, 1, 2, 4} and
        brain_mask, views of slice-major buffers (``vol[..., z]`` is cheap); meta["affine"]
        (voxel -> mm) is what ``write_brats_case`` writes.

        z_range: (first, stop) axial slices (default all 155; ValueError outside 0..155),
        identical to those of the whole subject (meta["z_range"]); skipping slices saves most
        of the time. tissue: also the true CSF, GM, WM fractions, float32 (3, 240, 240, nz), in
        meta["tissue"] (not JSON-friendly, so off by default).
        """
        first, stop = (0, BRATS_SHAPE[2]) if z_range is None else (int(v) for v in z_range)
        if not 0 <= first < stop <= BRATS_SHAPE[2]:
            raise ValueError(f"z_range {z_range} must satisfy 0 <= first < stop <= "
                             f"{BRATS_SHAPE[2]}; pass e.g. (30, 130)")
        plan = plan_subject(seed, self.templates)
        modalities, seg, brain, fractions = render(plan, self.templates, self.noise_bank,
                                                   (first, stop), with_tissue=tissue)
        t = plan.tumour
        # RAS, 1 mm, MNI-like (origin near the anterior commissure) up to the subject's warp,
        # so viewers show it the right way round.
        affine = self.templates.world_of_voxel.copy()
        affine[:3, 3] += self.templates.centre - OUT_CENTRE + np.array([0, 0, first])
        meta = {
            "subject": f"phantom-{seed:05d}",
            "grade": t.grade,
            "tumour_centre": tuple(round(float(v), 1) for v in t.centre),
            "tumour_radius_mm": round(t.radius, 2),
            "necrosis_ratio": round(t.necrosis_ratio, 3),
            "oedema_reach": round(t.oedema_reach, 3),
            "mass_effect": round(t.mass_effect, 3),
            "protocol": {k: round(v, 2) for k, v in dataclasses.asdict(plan.protocol).items()},
            "z_range": (first, stop),
            "affine": affine.tolist(),
        }
        if fractions is not None:
            meta["tissue"] = fractions.transpose(0, 2, 3, 1)
        return BrainVolume(modalities=modalities.transpose(0, 2, 3, 1),
                           seg=seg.transpose(1, 2, 0), brain_mask=brain.transpose(1, 2, 0),
                           meta=meta, source_file=f"phantom:{seed}")


# File suffix per modality (MODALITIES order) and for the labels, per BraTS naming scheme.
BRATS_NAMING = {
    "2017": ("_", ("t1", "t1ce", "t2", "flair"), "seg"),
    "2023": ("-", ("t1n", "t1c", "t2w", "t2f"), "seg"),
}


def write_brats_case(volume: BrainVolume, folder: Path, case_id: str,
                     naming: str = "2017") -> Path:
    """Write the BraTS case folder ``folder/case_id/`` (returned; atomically) of five .nii.gz
    files: naming "2017" ``<case>_{t1,t1ce,t2,flair,seg}`` (labels 1, 2, 4), "2023" (GLI)
    ``<case>-{t1n,t1c,t2w,t2f,seg}`` with label 4 written as 3, else ValueError. The affine is
    ``volume.meta["affine"]``, else the identity (1 mm RAS)."""
    if naming not in BRATS_NAMING:
        raise ValueError(f"naming {naming!r} is not one of {sorted(BRATS_NAMING)}")
    sep, suffixes, seg_suffix = BRATS_NAMING[naming]
    affine = np.asarray(volume.meta.get("affine", np.eye(4)), dtype=float)
    seg = volume.seg.astype(np.uint8)
    if naming == "2023":
        seg = np.where(seg == 4, 3, seg).astype(np.uint8)
    case = Path(folder) / case_id
    with atomic_dir(case) as tmp:
        for name, image in zip(suffixes, volume.modalities, strict=True):
            nib.save(nib.Nifti1Image(np.asarray(image, np.float32), affine),
                     tmp / f"{case_id}{sep}{name}.nii.gz")
        nib.save(nib.Nifti1Image(seg, affine), tmp / f"{case_id}{sep}{seg_suffix}.nii.gz")
    return case
