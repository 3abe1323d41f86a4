"""tools/eval_labels.py --compare A B: per-image agreement of two label folders (B the
reference, 255 ignored), with hand-computed pixel accuracy and mIoU."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tool_modules import load_tool

from fma.datasets.meta import VOC12
from fma.io import write_label_map

# img_a: 5 valid reference pixels, 4 agree; IoU bg 1/2, aeroplane 3/4 -> mIoU 62.5.
# img_b: 6 pixels, 5 agree; IoU bg 3/4, bicycle 2/3 -> mIoU 70.83.
# Whole folder: bg 4/6, aeroplane 3/4, bicycle 2/3; aAcc 9/11.
A = {"img_a": [[0, 1, 1], [1, 1, 0]], "img_b": [[2, 2, 0], [0, 0, 0]]}
B = {"img_a": [[0, 0, 1], [1, 1, 255]], "img_b": [[2, 2, 2], [0, 0, 0]], "img_c": [[0] * 3] * 2}


def _folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, labels in ((a, A), (b, B)):
        for image_id, lab in labels.items():
            write_label_map(folder / f"{image_id}.png", np.array(lab, np.uint8), VOC12.palette)
    return a, b


def test_compare_hand_computed(tmp_path, capsys) -> None:
    a, b = _folders(tmp_path)
    tool = load_tool("eval_labels")
    # Without manifests the classes must be named.
    assert tool.main(["--compare", str(a), str(b), "--no-progress"]) == 1
    assert "pass --dataset" in capsys.readouterr().err
    # img_c is missing in A.
    base = ["--compare", str(a), str(b), "--dataset", "voc12", "--no-progress"]
    assert tool.main(base) == 1
    assert "1 of 3 predictions missing: img_c.png" in capsys.readouterr().err
    out = tmp_path / "agree.json"
    assert tool.main([*base, "--allow-missing", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    got = json.loads(out.read_text())
    assert got["aAcc"] == pytest.approx(100 * 9 / 11)
    assert got["mIoU"] == pytest.approx(100 * (4 / 6 + 3 / 4 + 2 / 3) / 3)
    assert got["IoU"]["background"] == pytest.approx(100 * 4 / 6)
    assert (got["n_images"], got["n_missing"], got["missing"]) == (2, 1, ["img_c"])
    per = {p["id"]: p for p in got["per_image"]}
    assert per["img_a"]["aAcc"] == pytest.approx(80.0) and per["img_a"]["mIoU"] == 62.5
    assert per["img_b"]["aAcc"] == pytest.approx(500 / 6)
    assert per["img_b"]["mIoU"] == pytest.approx(100 * (3 / 4 + 2 / 3) / 2)
    assert [p["id"] for p in got["per_image"]] == ["img_a", "img_b"]  # worst first
    assert got["mean_image_aAcc"] == pytest.approx((80 + 500 / 6) / 2)
    assert got["mode"] == "compare" and got["b"] == str(b)
    rows = [line.split() for line in lines if line.startswith("img_")]
    assert rows == [["img_a", "80.00", "62.50"], ["img_b", "83.33", "70.83"]]
    assert lines[-1] == "agreement: aAcc 81.82  mIoU 69.44"


def test_compare_reads_the_classes_from_a_manifest_and_checks_arguments(tmp_path, capsys):
    from fma.io import Manifest, write_manifest

    a, b = _folders(tmp_path)
    (b / "img_c.png").unlink()
    write_manifest(b, Manifest(format="label_maps", version=1, dataset="voc12",
                               class_names=list(VOC12.class_names)))  # fmt: skip
    tool = load_tool("eval_labels")
    assert tool.main(["--compare", str(a), str(b), "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "agreement: aAcc 81.82  mIoU 69.44"
    with pytest.raises(SystemExit) as exc:
        tool.main([str(a), "--compare", str(a), str(b)])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        tool.main([str(a), "--dataset", "voc12"])  # no --split / --data-root
    assert exc.value.code == 2
    assert "missing split, data-root" in capsys.readouterr().err
