"""Real-data loaders: fundus folders (DRIVE, STARE, CHASE_DB1, HRF, FIVES, plain) and BraTS.

``find_*`` walks a folder once into small records (which files belong together), so a bad layout
fails before any pixels are read; ``load_*`` reads one record into the phantoms' raw-sample types
(``FundusImage``, ``BrainVolume``). Every problem with the user's files becomes a one-line
``DataError`` naming the file and the fix.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from PIL import Image, UnidentifiedImageError

from pggan_core.data.preprocess import as_unit_float
from pggan_core.data.types import MODALITIES, BrainVolume, FundusImage
from pggan_core.errors import DataError

# ---------------------------------------------------------------------------- Shared helpers

IMAGE_SUFFIXES = (".tif", ".tiff", ".gif", ".ppm", ".ppm.gz", ".png", ".jpg", ".jpeg", ".bmp")


def _unreadable(path: Path, what: str, exc: BaseException, fix: str) -> DataError:
    """The one-line error for an unreadable file (the exception's first line only); a permission
    problem gets its own fix, as re-exporting a file one may not read would not help."""
    if isinstance(exc, PermissionError):
        return DataError(f"{path}: permission denied reading this {what}; make it readable "
                         "(chmod a+r) or remove it from the folder")
    lines = str(exc).strip().splitlines()
    reason = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return DataError(f"{path}: cannot read {what} ({reason}); {fix}")


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _is_image_file(path: Path) -> bool:
    return path.name.lower().endswith(IMAGE_SUFFIXES)


def _files_of(folder: str | Path, what: str) -> tuple[Path, list[Path]]:
    """``folder`` as a Path and its files, sorted, skipping hidden files and folders (macOS
    ``._`` forks too). DataError if it is missing, not a folder, empty, or mixes fundus
    photographs with NIfTI volumes (a ``--source`` one folder too high would be prepared from
    one half, silently)."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise DataError(f"{root}: folder does not exist; check the path to your {what}")
    if not root.is_dir():
        raise DataError(f"{root}: is a file, not a folder; pass the folder that holds your {what}")
    if not any(root.iterdir()):
        raise DataError(f"{root}: folder is empty; copy your {what} into it")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(root).parts))
    image = next((p for p in files if _is_image_file(p)), None)
    volume = next((p for p in files if _is_nifti(p)), None)
    if image is not None and volume is not None:
        raise DataError(f"{root}: mixes two datasets' layouts, fundus images (first: {image}) "
                        f"and BraTS NIfTI volumes (first: {volume}); point --source at the "
                        "folder of one dataset only")
    return root, files


# ------------------------------------------------------------------------- Fundus: discovery

# A file's role comes from its folder or name suffix: those the public sets use (DRIVE, STARE,
# CHASE_DB1, HRF, FIVES) plus a few obvious ones for plain folders.
VESSEL_FOLDERS = {"1st_manual", "manual1", "labels-ah", "ground truth", "groundtruth",
                  "vessels", "vessel", "masks", "labels", "manual", "gt"}
FOV_FOLDERS = {"mask", "fov"}
SECOND_OBSERVER_FOLDERS = {"2nd_manual", "manual2", "labels-vk"}
VESSEL_SUFFIXES = ("_manual1", "_1stho", ".ah", "_vessels", "_vessel", "_gt")
FOV_SUFFIXES = ("_mask", "_fov")
SECOND_OBSERVER_SUFFIXES = ("_manual2", "_2ndho", ".vk")
# Stripped (repeatedly) from every stem so an image and its masks share one pairing key.
PAIRING_SUFFIXES = ("_training", "_test") + VESSEL_SUFFIXES + FOV_SUFFIXES

LAYOUT_PATTERNS = (  # file-name patterns of each public set, tried in order
    ("CHASE_DB1", re.compile(r"^image_\d+[lr]\.(jpe?g|png|tiff?)$")),
    ("STARE", re.compile(r"^im\d{4}\.ppm(\.gz)?$")),
    ("DRIVE", re.compile(r"^\d+_(training|test)\.tiff?$")),
    ("HRF", re.compile(r"^\d+_(h|dr|g)\.jpe?g$")),
    ("FIVES", re.compile(r"^\d+_[adgn]\.png$")),
)
CHASE_EYE = re.compile(r"^image_\d+([lr])\.")
EYE_WORD = re.compile(r"(?:^|[_\-. ])(od|os|left|right)(?:$|[_\-. ])")
EYE_FROM_WORD = {"od": "OD", "right": "OD", "r": "OD", "os": "OS", "left": "OS", "l": "OS"}


@dataclass(frozen=True)
class FundusRecord:
    """One fundus photograph and the files that belong to it.

    layout: the public set its name matches ("DRIVE", "STARE", "CHASE_DB1", "HRF", "FIVES"), else
    "folder". laterality_from_name: "OD" / "OS" where the name says which eye (CHASE_DB1's L/R,
    or a word such as "left", "right", "OD", "OS"), else None.
    """

    image_path: Path
    vessel_path: Path | None
    fov_path: Path | None
    layout: str
    laterality_from_name: str | None


def _bare_stem(path: Path) -> str:
    """Lower-case name without its extension(s): ``im0001.ah.ppm.gz`` -> ``im0001.ah``."""
    name = path.name.lower().removesuffix(".gz")
    return name.rsplit(".", 1)[0]


def _role(path: Path) -> str:
    """What a file is: "image", "vessel", "fov" or "ignore" (a second observer's annotation)."""
    folder, stem = path.parent.name.lower(), _bare_stem(path)
    if folder in SECOND_OBSERVER_FOLDERS or stem.endswith(SECOND_OBSERVER_SUFFIXES):
        return "ignore"
    if folder in VESSEL_FOLDERS or stem.endswith(VESSEL_SUFFIXES):
        return "vessel"
    if folder in FOV_FOLDERS or stem.endswith(FOV_SUFFIXES):
        return "fov"
    return "image"


def _pairing_key(path: Path) -> str:
    """The stem with every dataset suffix stripped: ``21_training_mask`` -> ``21``."""
    key = _bare_stem(path)
    while True:
        for suffix in PAIRING_SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix):
                key = key.removesuffix(suffix)
                break
        else:
            return key


def _match_mask(mask: Path, images: dict[tuple[str, Path, str], list[Path]]) -> Path | None:
    """The image a mask belongs to: in its folder (CHASE_DB1), else a sibling folder (DRIVE, HRF,
    FIVES, STARE: ``images/`` beside ``1st_manual/``), else the parent (a plain folder's
    ``vessels/``); these scopes keep FIVES's ``train/`` and ``test/`` apart. DataError if a
    scope holds several."""
    key = _pairing_key(mask)
    for scope in (("in", mask.parent, key), ("under", mask.parent.parent, key),
                  ("in", mask.parent.parent, key)):
        candidates = images.get(scope, [])
        if len(candidates) > 1:
            names = ", ".join(str(c) for c in candidates)
            raise DataError(f"{mask}: matches several images ({names}); rename or remove all "
                            "but one so each mask pairs with exactly one image")
        if candidates:
            return candidates[0]
    return None


def _record(image: Path, vessel: Path | None, fov: Path | None) -> FundusRecord:
    """The record of ``image``, with its layout and the eye its name says, if it says."""
    name = image.name.lower()
    layout = next((layout for layout, pattern in LAYOUT_PATTERNS if pattern.match(name) and (
        layout != "FIVES" or image.parent.name.lower() == "original")), "folder")
    eye = CHASE_EYE.match(name) or EYE_WORD.search(_bare_stem(image))
    return FundusRecord(image, vessel, fov, layout, EYE_FROM_WORD[eye.group(1)] if eye else None)


def find_fundus_images(folder: str | Path) -> list[FundusRecord]:
    """Every fundus photograph under ``folder`` with its masks, sorted by image path.

    Understands the DRIVE, STARE (incl. ``.ppm.gz``; the ``ah`` labels are the reference),
    CHASE_DB1, HRF and FIVES layouts and a plain folder of images (TIF, GIF, PPM, PNG, JPG),
    whose vessel masks are in ``vessels/`` (or ``masks/``) or end in ``_vessels``, FOV masks in
    ``mask/`` or end in ``_mask``. Second-observer annotations (DRIVE ``2nd_manual``, STARE
    ``vk``, CHASE_DB1 ``2ndHO``) are ignored. A single image file gives one record without
    masks. DataError for a bad folder (``_files_of``), no images, or ambiguous masks.
    """
    single = Path(folder).expanduser()
    if single.is_file():
        if not _is_image_file(single):
            raise DataError(f"{single}: not a fundus image (expected {', '.join(IMAGE_SUFFIXES)});"
                            " pass an image or the folder that holds them")
        return [_record(single, None, None)]
    root, every_file = _files_of(folder, "fundus images")
    files = [p for p in every_file if _is_image_file(p)]
    roles = {p: _role(p) for p in files}
    image_paths = [p for p in files if roles[p] == "image"]
    if not image_paths:
        raise DataError(f"{root}: no fundus images found (looked for {', '.join(IMAGE_SUFFIXES)} "
                        "outside mask folders); point at the folder that holds the photographs")

    # Images indexed by the folder they are "in" and the folder they are "under" (its parent).
    images: dict[tuple[str, Path, str], list[Path]] = {}
    for path in image_paths:
        key = _pairing_key(path)
        images.setdefault(("in", path.parent, key), []).append(path)
        images.setdefault(("under", path.parent.parent, key), []).append(path)

    masks: dict[tuple[Path, str], Path] = {}  # (image, "vessel"/"fov") -> mask file
    for path in files:
        if roles[path] not in ("vessel", "fov"):
            continue
        image = _match_mask(path, images)
        if image is None:
            continue  # e.g. a FOV mask for an image the user removed: nothing to pair it with
        slot = (image, roles[path])
        if slot in masks:
            raise DataError(f"{image}: has two {roles[path]} masks ({masks[slot]} and {path}); "
                            "remove one")
        masks[slot] = path

    return [_record(path, masks.get((path, "vessel")), masks.get((path, "fov")))
            for path in sorted(image_paths, key=str)]


# -------------------------------------------------------------------- Fundus: reading pixels

def _read_pixels(path: Path) -> np.ndarray:
    """Raw pixels (H, W) or RGB (H, W, 3) in the file's dtype. OpenCV reads TIF/PNG/JPG/PPM at
    full bit depth but not GIF (DRIVE's masks), which goes through PIL; ``.ppm.gz`` (STARE) is
    decompressed in memory; alpha is composited ``_over_black``."""
    fix = "re-export it as PNG or TIF, or remove it from the folder"
    try:
        data = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            data = gzip.decompress(data)
        if path.name.lower().endswith(".gif"):
            with Image.open(io.BytesIO(data)) as image:
                pixels = np.asarray(image.convert("RGB") if image.mode == "P" else image)
            rgb_order = True
        else:
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            rgb_order = False
    except (OSError, EOFError, ValueError, zlib.error, UnidentifiedImageError, cv2.error) as exc:
        raise _unreadable(path, "image", exc, fix) from exc
    if pixels is None or pixels.size == 0:
        raise DataError(f"{path}: not a readable image (corrupt or unsupported format); {fix}")
    if pixels.ndim == 3:
        if pixels.shape[2] in (2, 4):
            pixels = _over_black(pixels)
        if pixels.shape[2] < 3:
            pixels = pixels[:, :, 0]  # grey (+ alpha)
        else:
            pixels = pixels[:, :, :3] if rgb_order else pixels[:, :, 2::-1]  # BGR -> RGB
    return np.ascontiguousarray(pixels)


def _over_black(pixels: np.ndarray) -> np.ndarray:
    """Composite a trailing alpha channel over black (the colour under a transparent surround is
    arbitrary, often white, and would fall inside the red-threshold field of view)."""
    colour, alpha = pixels[:, :, :-1], pixels[:, :, -1:]
    opaque = np.iinfo(pixels.dtype).max if np.issubdtype(pixels.dtype, np.integer) else 1.0
    if np.all(alpha >= opaque):
        return colour
    blended = colour.astype(np.float64) * (np.clip(alpha, 0, opaque) / opaque)
    return (np.rint(blended) if np.issubdtype(pixels.dtype, np.integer) else blended
            ).astype(pixels.dtype)


def _read_mask(path: Path, image_shape: tuple[int, int], image_path: Path) -> np.ndarray:
    """A binary mask at full resolution; DataError unless its size is the image's (checked
    before any resizing could hide a mismatch)."""
    pixels = _read_pixels(path)
    if pixels.shape[:2] != image_shape:
        raise DataError(f"{path}: mask is {pixels.shape[1]}x{pixels.shape[0]} but its image "
                        f"{image_path.name} is {image_shape[1]}x{image_shape[0]}; "
                        "use the mask that belongs to this image")
    grey = pixels.max(axis=2) if pixels.ndim == 3 else pixels
    if np.issubdtype(grey.dtype, np.integer) and grey.max() <= 1:
        return grey > 0  # masks stored as 0/1 rather than 0/255
    return as_unit_float(grey) > 0.5


def _square_resize(array: np.ndarray, size: int) -> np.ndarray:
    """Pad with zeros (black / outside) to a centred square, then area-resize to ``size``."""
    h, w = array.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    pad = [(top, side - h - top), (left, side - w - left)] + [(0, 0)] * (array.ndim - 2)
    return cv2.resize(np.pad(array, pad), (size, size), interpolation=cv2.INTER_AREA)


def _square_resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    return _square_resize(mask.astype(np.float32), size) > 0.5


def laterality_from_disc(rgb: np.ndarray) -> str:
    """Guess the eye from the optic disc, the brightest point of the grey image blurred with
    sigma W/40 (at 256 px width, for speed): in the left half "OS" (left eye), else "OD"."""
    h, w = rgb.shape[:2]
    width = min(w, 256)
    height = max(1, round(h * width / w))
    small = cv2.resize(rgb.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    blurred = cv2.GaussianBlur(grey, (0, 0), width / 40)
    _, disc_x = np.unravel_index(np.argmax(blurred), blurred.shape)
    return "OS" if disc_x < width / 2 else "OD"


def load_fundus(record: FundusRecord, size: int, min_side: int = 0) -> FundusImage:
    """Read one fundus photograph, padded to a centred square and resized to ``size``.

    rgb float32 in [0, 1] (integers scaled by their bit depth: 16-bit by 65535); the vessel mask
    and the field of view (FOV mask, else red > 20/255) resized alike and re-binarised;
    laterality from the file name when it says, else from the disc. DataError for a grey image
    or one whose longer side is below ``min_side``.
    """
    path = record.image_path
    pixels = _read_pixels(path)
    # A grey fundus image is usually a red-free photograph or an angiogram (vessels bright):
    # three copies of it would silently mix another modality into the colour training set.
    if pixels.ndim == 2 or (np.array_equal(pixels[:, :, 0], pixels[:, :, 1])
                            and np.array_equal(pixels[:, :, 1], pixels[:, :, 2])):
        raise DataError(f"{path}: grayscale (one channel, or R = G = B everywhere), likely a "
                        "red-free photograph or an angiogram, but the model learns colour "
                        "fundus photographs; use the colour original or remove it from the "
                        "folder")
    # Upsampling adds no detail: the GAN would learn interpolation blur. The longer side
    # counts, as the square is padded to it (a 640 x 480 RetCam frame is fine at 512 px).
    shape = pixels.shape[:2]
    if max(shape) < min_side:
        raise DataError(f"{path}: image is {shape[1]}x{shape[0]} px, smaller than the "
                        f"{min_side} px being prepared (upsampling would only add blur); use "
                        f"the full-size photograph, --resolution "
                        f"{1 << (max(shape).bit_length() - 1)} or less, or remove it from the "
                        "folder")
    rgb = as_unit_float(pixels)

    vessels = None
    if record.vessel_path is not None:
        vessels = _read_mask(record.vessel_path, shape, path)
    if record.fov_path is not None:
        fov = _read_mask(record.fov_path, shape, path)
    else:
        fov = rgb[:, :, 0] > 20 / 255  # the dark surround of a fundus photo has almost no red

    if record.laterality_from_name is not None:
        laterality, source = record.laterality_from_name, "filename"
    else:
        laterality, source = laterality_from_disc(rgb), "heuristic"

    return FundusImage(
        rgb=_square_resize(rgb, size),
        vessels=None if vessels is None else _square_resize_mask(vessels, size),
        fov=_square_resize_mask(fov, size),
        labels={"laterality": laterality, "laterality_source": source, "layout": record.layout},
        source_file=str(path),
    )


# ------------------------------------------------------------------------------------- BraTS

# Every BraTS year's suffix for each modality; 2023 (GLI) renamed them t1n/t1c/t2w/t2f.
MODALITY_SUFFIX = re.compile(r"[_-](t1|t1ce|t1n|t1c|t2|t2w|flair|t2f)\.nii(\.gz)?$")
MODALITY_OF_SUFFIX = {"t1": "T1", "t1n": "T1", "t1ce": "T1c", "t1c": "T1c",
                      "t2": "T2", "t2w": "T2", "flair": "FLAIR", "t2f": "FLAIR"}
SUFFIXES_2023 = {"t1n", "t2w", "t2f"}
# "segm" too: BraTS 2020 case 355 ships its labels as W39_1998.09.19_Segm.nii.
SEG_SUFFIX = re.compile(r"segm?\.nii(\.gz)?$")
NAMING_PREFIXES = {  # case-folder prefix -> challenge year, which fixes the label meaning
    "brats17_": "2017", "brats18_": "2018", "brats19_": "2019", "brats20_": "2020",
    "brats2021_": "2021", "brats-": "2023"}


@dataclass(frozen=True)
class BratsCase:
    """One BraTS case folder: four modality files and a segmentation.

    modality_paths: {"T1", "T1c", "T2", "FLAIR"} -> file. grade: "HGG" / "LGG" from an enclosing
    folder of that name (2017-2019), else "unknown". naming: the challenge year guessed from the
    names ("2017" ... "2021", "2023" for BraTS-GLI, "unknown"); it decides how labels unify.
    """

    case_dir: Path
    modality_paths: dict[str, Path] = field(hash=False)
    seg_path: Path
    grade: str
    naming: str


def _brats_case(case_dir: Path, seg_path: Path, root: Path) -> BratsCase:
    modality_paths: dict[str, Path] = {}
    suffixes: set[str] = set()
    for path in sorted(case_dir.iterdir()):
        match = MODALITY_SUFFIX.search(path.name.lower())
        if not match or not path.is_file():
            continue
        modality = MODALITY_OF_SUFFIX[match.group(1)]
        if modality in modality_paths:
            raise DataError(f"{path}: a second {modality} file in {case_dir} (the first is "
                            f"{modality_paths[modality].name}); keep one per modality")
        modality_paths[modality] = path
        suffixes.add(match.group(1))
    missing = [m for m in MODALITIES if m not in modality_paths]
    if missing:
        raise DataError(f"{case_dir}: missing {', '.join(missing)} (expected files ending in "
                        "_t1/_t1ce/_t2/_flair or -t1n/-t1c/-t2w/-t2f .nii.gz); add the missing "
                        "modality or remove the case folder")
    grade = "unknown"
    for folder in (case_dir, *case_dir.parents):
        if folder.name.upper() in ("HGG", "LGG"):
            grade = folder.name.upper()
            break
        if folder == root:
            break
    name = case_dir.name.lower()
    naming = next((year for prefix, year in NAMING_PREFIXES.items() if name.startswith(prefix)),
                  "2023" if suffixes & SUFFIXES_2023 else "unknown")
    return BratsCase(case_dir=case_dir, modality_paths={m: modality_paths[m] for m in MODALITIES},
                     seg_path=seg_path, grade=grade, naming=naming)


def find_brats_cases(folder: str | Path) -> list[BratsCase]:
    """Every labelled BraTS case under ``folder`` (2017 to 2023 GLI naming), sorted by folder.

    A case folder is the parent of a ``*seg.nii(.gz)`` (or ``*Segm.nii``) file: the paper trains
    on labelled cases. DataError for no segmentations, two in one folder, a case missing a
    modality, or fundus images beside the cases.
    """
    root, files = _files_of(folder, "BraTS case folders")
    segs = [p for p in files if SEG_SUFFIX.search(p.name.lower())]
    if not segs:
        has_nifti = any(_is_nifti(p) for p in files)
        found = "NIfTI files but no segmentations" if has_nifti else "no NIfTI files"
        raise DataError(f"{root}: {found} (*seg.nii.gz); point at the BraTS training data, "
                        "whose case folders hold t1, t1ce, t2, flair and seg files")
    seg_of_case: dict[Path, Path] = {}
    for seg in segs:
        if seg.parent in seg_of_case:
            raise DataError(f"{seg.parent}: two segmentations ({seg_of_case[seg.parent].name} "
                            f"and {seg.name}); keep one per case folder")
        seg_of_case[seg.parent] = seg
    return [_brats_case(case_dir, seg_of_case[case_dir], root)
            for case_dir in sorted(seg_of_case, key=str)]


def _read_volume(path: Path) -> np.ndarray:
    """A finite 3-D float32 array in canonical (RAS) orientation, trailing singleton axes
    dropped. The full read is inside the ``try``: nibabel reads lazily, so a truncated
    ``.nii.gz`` fails only then."""
    fix = "the file is damaged; download or re-export it, or remove the case"
    try:
        with path.open("rb"):  # nibabel turns a PermissionError into "Could not read file"
            pass
        image = nib.as_closest_canonical(nib.load(path))
        volume = np.asarray(image.get_fdata(dtype=np.float32))
    except (OSError, EOFError, ValueError, zlib.error, ImageFileError) as exc:
        raise _unreadable(path, "NIfTI", exc, fix) from exc
    while volume.ndim > 3 and volume.shape[-1] == 1:
        volume = volume[..., 0]
    if volume.ndim != 3:
        fix = ("split it into one 3-D file per modality" if volume.ndim > 3
               else "use the whole 3-D volume, not a slice")
        raise DataError(f"{path}: is {volume.ndim}-D with shape {volume.shape}, expected one 3-D "
                        f"volume; {fix}")
    if not np.all(np.isfinite(volume)):
        raise DataError(f"{path}: contains NaN or infinite voxels; re-export the volume "
                        "with finite values or remove the case")
    return volume


def _unify_labels(seg: np.ndarray, path: Path, naming: str) -> np.ndarray:
    """Labels in the BraTS 2017 meaning {0, 1, 2, 4}: 3 is enhancing tumour (-> 4) in 2023
    (GLI); in older naming only the 2012-2016 non-enhancing tumour, which 2017 merged into 1."""
    if not np.array_equal(seg, np.round(seg)):  # finite: _read_volume checked
        raise DataError(f"{path}: segmentation has non-integer values; use the original label "
                        "map (values 0, 1, 2, 3 or 4)")
    labels = seg.astype(np.int16)
    unexpected = sorted(set(np.unique(labels).tolist()) - {0, 1, 2, 3, 4})
    if unexpected:
        raise DataError(f"{path}: unexpected labels {unexpected}; BraTS segmentations hold 0, 1, "
                        "2, 4 (or 1, 2, 3 in 2023): use the challenge's label map")
    labels[labels == 3] = 4 if naming == "2023" else 1
    return labels.astype(np.uint8)


def load_brats_case(case: BratsCase) -> BrainVolume:
    """Read one case: modalities float32 (4, X, Y, Z) in MODALITIES order, canonical RAS, seg in
    {0, 1, 2, 4}, brain_mask = any modality > 0. DataError for unreadable, constant or
    mismatched volumes or bad labels."""
    volumes = []
    for modality in MODALITIES:
        path = case.modality_paths[modality]
        volume = _read_volume(path)
        if volume.min() == volume.max():
            raise DataError(f"{path}: every voxel is {volume.flat[0]:g} (an empty volume); "
                            "re-export it or remove the case")
        volumes.append(volume)
    seg = _read_volume(case.seg_path)

    shapes = {m: v.shape for m, v in zip(MODALITIES, volumes, strict=True)} | {"seg": seg.shape}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise DataError(f"{case.case_dir}: volume shapes differ ({listed}); resample every "
                        "modality and the segmentation to one grid, as BraTS ships them")

    modalities = np.stack(volumes)
    return BrainVolume(
        modalities=modalities,
        seg=_unify_labels(seg, case.seg_path, case.naming),
        brain_mask=np.any(modalities > 0, axis=0),
        meta={"subject": case.case_dir.name, "grade": case.grade, "naming": case.naming},
        source_file=str(case.case_dir),
    )
