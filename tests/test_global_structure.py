"""The global-layout measures of Figure 3 (``measures.global_structure``) on drawn shapes."""

import cv2
import numpy as np
import pytest

from pggan_core.measures import global_structure as g


def _lines(kind: str, size: int = 128, centre=(64, 40)) -> np.ndarray:
    """Vessel-like lines on a blank map: spokes out of ``centre``, or circles round it."""
    canvas = np.zeros((size, size), np.uint8)
    for k in range(12):
        if kind == "spokes":
            angle = 2 * np.pi * k / 12
            end = (int(centre[1] + 90 * np.cos(angle)), int(centre[0] + 90 * np.sin(angle)))
            cv2.line(canvas, (centre[1], centre[0]), end, 255, 2)
        else:
            cv2.circle(canvas, (centre[1], centre[0]), 12 + 8 * k, 255, 2)
    return canvas.astype(np.float32) / 255


def test_radial_alignment_tells_spokes_from_rings():
    maps = np.stack([_lines("spokes"), _lines("rings")])
    fov = np.ones_like(maps, bool)
    centres = np.array([[64.0, 40.0], [64.0, 40.0]])
    spokes, rings = g.radial_alignment(maps, fov, centres)
    assert spokes > 0.9 and rings < 0.3  # directions at random: 2 / pi
    # the same spokes read from a disc placed elsewhere are no longer aligned
    assert g.radial_alignment(maps[:1], fov[:1], np.array([[10.0, 110.0]]))[0] < spokes - 0.2
    reach = g.vessel_reach(maps > 0.5, fov, centres)
    assert 0.3 < reach[0] < 1.0 and np.isnan(g.vessel_reach(np.zeros_like(maps[:1], bool),
                                                            fov[:1], centres[:1]))[0]


def test_one_disc_stands_out_and_two_do_not():
    image = -0.6 * np.ones((1, 3, 64, 64), np.float32)
    cv2.circle(image[0, 0], (20, 32), 4, 1.0, -1)
    for c in range(3):
        cv2.circle(image[0, c], (20, 32), 4, 1.0, -1)
    fov = np.ones((1, 64, 64), bool)
    assert g.disc_centres(image)[0] == pytest.approx([32, 20], abs=1)
    one = g.disc_uniqueness(image, fov)[0]
    for c in range(3):
        cv2.circle(image[0, c], (48, 32), 4, 1.0, -1)
    two = g.disc_uniqueness(image, fov)[0]
    assert one > 0.9 and two < 0.1


def test_lesions_nest_and_count():
    oedema = np.zeros((2, 32, 32), bool)
    oedema[:, 8:20, 8:20] = True
    rim = np.zeros_like(oedema)
    rim[0, 10:14, 10:14] = True  # inside
    rim[1, 24:28, 24:28] = True  # outside
    assert g.lesion_nesting(oedema, rim).tolist() == [1.0, 0.0]
    assert np.isnan(g.lesion_nesting(oedema, np.zeros_like(rim))).all()
    oedema[1, 24:30, 24:30] = True
    assert g.lesion_components(oedema).tolist() == [1.0, 2.0]
