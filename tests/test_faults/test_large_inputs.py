"""Large inputs: a huge mask stack is refused naming the file under a memory cap (instead of a
crash inside pycocotools that lost the run), and an image above the pixel limit is reported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fma.io import write_label_map
from fma.io.masks.records import encode_rle, make_record, save_sam_masks

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


def _huge_inputs(tmp_path: Path) -> tuple[Path, Path]:
    """Labels and masks of a 4000x3000 image with 1,200 masks (14 GB decoded) and a tiny one."""
    H, W, K = 3000, 4000, 1200
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
    return labels, masks


def test_a_huge_mask_file_refines_under_a_memory_cap(tmp_path):
    """refine_labels computes on RLE runs: the 14 GB mask stack is never decoded (2 GiB cap)."""
    labels, masks = _huge_inputs(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", _CAPPED, "2048", str(REPO / "tools/refine_labels.py"), "--labels",
         str(labels), "--masks", str(masks), "--out", str(tmp_path / "out"), "--num-classes",
         "21", "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert (tmp_path / "out" / "b_small.png").is_file()
    assert (tmp_path / "out" / "a_big.png").is_file()


def test_the_dense_decoder_refuses_a_huge_mask_stack_naming_the_file(tmp_path):
    """Where masks are still decoded densely, a stack above FMA_MAX_DECODE_MB is refused before
    pycocotools would allocate it (and crash the process)."""
    from fma.io.masks.records import SamMaskError, load_sam_masks

    _, masks = _huge_inputs(tmp_path)
    with pytest.raises(
        SamMaskError, match=r"a_big.json.gz: decoding its 1200 masks .*FMA_MAX_DECODE_MB"
    ):
        load_sam_masks(masks / "a_big.json.gz")
    assert load_sam_masks(masks / "b_small.json.gz").masks.shape == (2, 6, 8)


def test_an_image_above_the_pixel_limit_is_reported_by_name(tmp_path):
    from fma.apis.sam_masks import run_sam_masks

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


def _old_mask_colors(masks: np.ndarray, seed: int = 0) -> np.ndarray:
    """The previous dense implementation: (K, H*W) ranks, max over masks."""
    k, h, w = masks.shape
    out = np.zeros((h * w, 3), dtype=np.uint8)
    colors = np.random.default_rng(seed).integers(40, 256, size=(k, 3), dtype=np.uint8)
    area = masks.reshape(k, -1).sum(1)
    order = np.argsort(-area, kind="stable")
    ranks = np.arange(1, k + 1, dtype=np.uint16)[:, None]
    top = (masks.reshape(k, -1)[order].astype(np.uint16) * ranks).max(axis=0)
    out[top > 0] = colors[order][top[top > 0] - 1]
    return out.reshape(h, w, 3)


def _random_masks(seed: int, k: int = 12, h: int = 17, w: int = 23) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = np.zeros((k, h, w), bool)
    for i in range(k):
        y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
        masks[i, y : y + rng.integers(1, h), x : x + rng.integers(1, w)] = True
    masks[3] = masks[2]  # equal areas: the later mask is on top
    return masks


@pytest.mark.parametrize("budget", [1, 17 * 23 * 5, 2**30])
def test_paint_masks_equals_a_per_mask_loop(budget):
    from fma.io.masks.paint import paint_masks, rle_source

    masks = _random_masks(budget % 7)
    order = np.random.default_rng(1).permutation(len(masks))[:9]
    want = np.full(masks.shape[1:], -1)
    for i in order:  # reference: paint one mask after the other
        want[masks[i]] = i
    got = paint_masks(rle_source(encode_rle(masks), 17, 23), order, 17, 23, budget_bytes=budget)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(4))
def test_panels_from_rle_batches_equal_the_dense_panels(tmp_path, seed):
    from fma.io.masks.paint import rle_source
    from fma.io.masks.records import load_sam_masks
    from fma.visualization.masks import mask_colors, paint_mask_colors

    masks = _random_masks(seed)
    np.testing.assert_array_equal(mask_colors(masks, seed), _old_mask_colors(masks, seed))
    rles = encode_rle(masks)
    areas = masks.reshape(len(masks), -1).sum(1)
    got = paint_mask_colors(rle_source(rles, 17, 23), areas, 17, 23, seed)
    np.testing.assert_array_equal(got, _old_mask_colors(masks, seed))
    # level panels: the file-based strip equals the strip of the decoded masks
    from fma.sam.show import level_panel, write_level_panels

    recs = [make_record(r, area=int(a), bbox=[0, 0, 1, 1], level=i % 3)
            for i, (r, a) in enumerate(zip(rles, areas, strict=True))]  # fmt: skip
    save_sam_masks(tmp_path / "m" / "x.json.gz", "x", 17, 23, recs)
    img = np.random.default_rng(seed).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    (path,) = write_level_panels(tmp_path / "m", ["x"], lambda i: tmp_path / "x.png", tmp_path)
    want = level_panel(img, load_sam_masks(tmp_path / "m" / "x.json.gz"))
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), want)


_PANEL_UNDER_CAP = textwrap.dedent("""
    import resource, sys
    cap = int(sys.argv[1]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from fma.sam.show import write_level_panels
    out = write_level_panels(sys.argv[2], ["a_big"], lambda i: sys.argv[3], sys.argv[4])
    print(len(out), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
""")


def test_level_panel_of_a_huge_mask_file_runs_under_a_memory_cap(tmp_path):
    """2000x1500 px, 800 masks (2.4 GB decoded at once) under a 1 GiB address-space cap."""
    H, W, K = 1500, 2000, 800
    rng = np.random.default_rng(0)
    recs = []
    for k in range(K):
        y0, x0 = int(rng.integers(0, H - 50)), int(rng.integers(0, W - 50))
        rle = _rect_rle(H, W, y0, y0 + 40, x0, x0 + 30)
        recs.append(make_record(rle, area=1200, bbox=[x0, y0, 30, 40], level=k % 3))
    save_sam_masks(tmp_path / "masks" / "a_big.json.gz", "a_big", H, W, recs)
    Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(tmp_path / "a_big.jpg")
    proc = subprocess.run(
        [sys.executable, "-c", _PANEL_UNDER_CAP, "1024", str(tmp_path / "masks"),
         str(tmp_path / "a_big.jpg"), str(tmp_path / "show")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.split()[0] == "1" and (tmp_path / "show" / "a_big.png").is_file()


def test_a_mask_record_of_another_size_is_refused_before_decoding(tmp_path):
    import gzip
    import json

    from fma.io.masks.records import SamMaskError, load_sam_masks

    masks = np.ones((2, 6, 8), bool)
    recs = [make_record(r, area=48, bbox=[0, 0, 8, 6]) for r in encode_rle(masks)]
    save_sam_masks(tmp_path / "x.json.gz", "x", 6, 8, recs)
    doc = json.loads(gzip.decompress((tmp_path / "x.json.gz").read_bytes()))
    doc["masks"][1]["segmentation"] = encode_rle(np.ones((1, 600, 800), bool))[0]
    (tmp_path / "x.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
    with pytest.raises(SamMaskError, match=r"x\.json\.gz: mask 1 has size \[600, 800\]"):
        load_sam_masks(tmp_path / "x.json.gz")
