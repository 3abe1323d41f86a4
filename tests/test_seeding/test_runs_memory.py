"""Memory of the run-based SEPL and SAMS: a 4000x3000 image with 1,200 masks under an RLIMIT_AS cap.

Decoding these masks densely would take 1,200 x 12 MB = 14 GB; from runs, SEPL needs a few bytes
per pixel. Each check runs in a subprocess whose
address space is capped with ``resource.RLIMIT_AS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from fma.io.label_maps import write_label_map
from fma.io.masks.records import make_record, save_sam_masks

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS caps on Linux")

H, W, K = 3000, 4000, 1200

CHILD = """
import resource, sys
cap = int(sys.argv[2]) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
import numpy as np
from fma.io.label_maps import read_label_map
folder, what = sys.argv[1], sys.argv[3]
label = read_label_map(folder + "/big.png")
if what == "sepl_runs":
    from fma.io.masks.runs import load_mask_runs
    from fma.seeding.sepl import refine_pseudo_label
    out = refine_pseudo_label(label, load_mask_runs(folder + "/big.json.gz"), 21)
elif what == "sepl_dense":
    from fma.io.masks.records import load_sam_masks
    from fma.seeding.sepl import refine_pseudo_label
    out = refine_pseudo_label(label, load_sam_masks(folder + "/big.json.gz").masks, 21)
else:
    from fma.io.cams import CamRecord
    from fma.io.masks.runs import load_mask_runs
    from fma.seeding import SamsOptions, sams_seed
    rng = np.random.default_rng(0)
    cam = CamRecord(rng.random((2, 188, 250)).astype(np.float16), np.array([3, 7]), (3000, 4000))
    out = sams_seed(cam, load_mask_runs(folder + "/big.json.gz"), SamsOptions(gamma=0.7)).seed
np.save(folder + "/out_" + what + ".npy", out)
"""


def _rect_rle(y0: int, x0: int, h: int, w: int) -> dict:
    """Compressed RLE of a rectangle, built from its column runs (no dense mask)."""
    counts = np.empty(2 * w + 1, np.int64)
    counts[0] = x0 * H + y0
    counts[1:-1:2] = h
    counts[2:-1:2] = H - h
    counts[-1] = H * W - (x0 + w - 1) * H - y0 - h
    rle = mask_utils.frPyObjects({"size": [H, W], "counts": counts.tolist()}, H, W)
    return {"size": [H, W], "counts": rle["counts"].decode("ascii")}


@pytest.fixture(scope="module")
def big_image(tmp_path_factory) -> tuple[Path, np.ndarray, list[tuple[int, int, int, int]]]:
    folder = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    rects, recs = [], []
    for k in range(K):
        h, w = int(rng.integers(20, 1500)), int(rng.integers(20, 1200))
        y0, x0 = int(rng.integers(0, H - h)), int(rng.integers(0, W - w))
        rects.append((y0, x0, h, w))
        recs.append(make_record(_rect_rle(y0, x0, h, w), area=h * w, bbox=[x0, y0, w, h],
                                level=k % 3))  # fmt: skip
    save_sam_masks(folder / "big.json.gz", "big", H, W, recs)
    label = np.zeros((H, W), np.uint8)
    label[500:2500, 600:2000] = 3
    label[1000:2900, 1800:3900] = 7
    label[::7, ::5] = 255
    write_label_map(folder / "big.png", label)
    return folder, label, rects


def _child(folder: Path, cap_mib: int, what: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(cap_mib), what],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def _rectangle_sepl(label: np.ndarray, rects: list[tuple[int, int, int, int]]) -> np.ndarray:
    """``max_iou_imp2`` for rectangle masks: |M & P_c| from integral images, painted slices."""
    y0, x0, h, w = (np.array(v) for v in zip(*rects, strict=True))
    y1, x1, area = y0 + h, x0 + w, h * w
    out = np.zeros_like(label)
    used = np.zeros(len(rects), bool)
    for c in (3, 7):
        cls = label == c
        integral = np.zeros((H + 1, W + 1), np.int64)
        integral[1:, 1:] = cls.cumsum(0).cumsum(1)
        inter = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        sel = ((2 * inter - area) > 0) | (inter / cls.sum() >= 0.85)
        sel &= ~used
        region = np.zeros_like(cls)
        covered = np.zeros_like(cls)
        for k, (a, b, hh, ww) in enumerate(rects):
            if sel[k]:
                region[a : a + hh, b : b + ww] = True
            if not used[k]:
                covered[a : a + hh, b : b + ww] = True
        region |= cls & ~covered
        used |= sel
        out[region] = c
    return out


@pytest.mark.slow
def test_sepl_on_runs_refines_a_large_image_under_a_memory_cap(big_image):
    folder, label, rects = big_image
    res = _child(folder, 768, "sepl_runs")  # 64 bytes per pixel of address space in all
    assert res.returncode == 0, res.stderr[-2000:]
    out = np.load(folder / "out_sepl_runs.npy")
    assert out.shape == (H, W) and set(np.unique(out).tolist()) <= {0, 3, 7}
    assert np.array_equal(out, _rectangle_sepl(label, rects))
    # Decoded masks need K x H x W bytes and fail under the same cap (MemoryError from
    # numpy, or a crash of pycocotools' decoder when its allocation fails).
    dense = _child(folder, 768, "sepl_dense")
    assert dense.returncode != 0


@pytest.mark.slow
def test_sams_on_runs_seeds_a_large_image_under_a_memory_cap(big_image):
    folder, _, _ = big_image
    res = _child(folder, 1536, "sams")  # torch and a 2-class CAM upsampled to 12 Mpixels
    assert res.returncode == 0, res.stderr[-2000:]
    seed = np.load(folder / "out_sams.npy")
    assert seed.shape == (H, W) and set(np.unique(seed).tolist()) <= {0, 3, 7}
