"""Large inputs: a huge mask stack is refused naming the file under a memory cap (instead of a
crash inside pycocotools that lost the run), and an image above the pixel limit is reported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from fma.io import write_label_map
from fma.io.sam_masks import encode_rle, make_record, save_sam_masks

REPO = Path(__file__).resolve().parents[2]


def _rect_rle(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> dict:
    """COCO compressed RLE of a rectangle, built from its column-major runs (no dense mask)."""
    from pycocotools import mask as mask_utils

    counts = [x0 * h + y0]
    for _ in range(x1 - x0 - 1):
        counts += [y1 - y0, h - (y1 - y0)]
    counts += [y1 - y0, h * w - sum(counts) - (y1 - y0)]
    rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


_CAPPED = textwrap.dedent("""
    import resource, runpy, sys
    cap = int(sys.argv[1]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    sys.argv = sys.argv[2:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def test_a_huge_mask_stack_under_a_memory_cap_fails_its_image_only(tmp_path):
    H, W, K = 3000, 4000, 1200  # 14 GB decoded; the cap is 2 GiB
    labels, masks = tmp_path / "labels", tmp_path / "masks"
    write_label_map(labels / "a_big.png", np.ones((H, W), np.uint8))
    rng = np.random.default_rng(0)
    recs = []
    for _ in range(K):
        y0, x0 = int(rng.integers(0, H - 50)), int(rng.integers(0, W - 50))
        rle = _rect_rle(H, W, y0, y0 + 40, x0, x0 + 30)
        recs.append(make_record(rle, area=1200, bbox=[x0, y0, 30, 40], level=1))
    save_sam_masks(masks / "a_big.json.gz", "a_big", H, W, recs)
    small = np.zeros((2, 6, 8), bool)
    small[0, :, :4] = small[1, :, 4:] = True
    write_label_map(labels / "b_small.png", np.ones((6, 8), np.uint8))
    small_recs = [make_record(r, area=24, bbox=[0, 0, 4, 6]) for r in encode_rle(small)]
    save_sam_masks(masks / "b_small.json.gz", "b_small", 6, 8, small_recs)
    proc = subprocess.run(
        [sys.executable, "-c", _CAPPED, "2048", str(REPO / "tools/refine_labels.py"), "--labels",
         str(labels), "--masks", str(masks), "--out", str(tmp_path / "out"), "--num-classes",
         "21", "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert (tmp_path / "out" / "b_small.png").is_file()  # the rest of the run is not lost
    assert not (tmp_path / "out" / "a_big.png").exists()
    assert "FAILED a_big" in proc.stderr and "a_big.json.gz: decoding its 1200 masks" in proc.stderr
    assert "FMA_MAX_DECODE_MB" in proc.stderr


def test_an_image_above_the_pixel_limit_is_reported_by_name(tmp_path):
    from fma.sam.run import run_sam_masks

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(imgs / "big.png")
    Image.fromarray(rng.integers(0, 256, (20, 25, 3), dtype=np.uint8)).save(imgs / "ok.png")
    res = run_sam_masks(tmp_path / "wd", image_dir=imgs, source="superpixels",
                        max_image_pixels=1000, progress=False)  # fmt: skip
    assert res.report.done == ["ok"]
    msg = res.report.failed["big"]
    assert "big.png: image is 50x40 = 2000 px, above max_image_pixels=1000" in msg
