"""Stage II through the tools on fixture images: tiny configs train 2 iterations on seeds with and
without 255, resume bit for bit, evaluate (single scale and TTA) with metrics that name their
seeds, and export VOC test predictions in the server layout."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stage2_helpers import TINY, assert_same_weights, run_tool, state_dict, train_options
from tool_modules import scaled_timeout

pytest.importorskip("mmseg", reason="stage II needs mmsegmentation (pip install fma[seg])")

from fma.apis.evaluate import evaluate_label_dir
from fma.datasets.meta import VOC12
from fma.io import file_sha256, read_label_map

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=sorted(TINY))
def trained(request, stage2_voc, tmp_path_factory) -> tuple[str, Path]:
    """(network, work dir) of a 2-iteration run on the seeds without 255."""
    net = request.param
    work = tmp_path_factory.mktemp(f"train_{net}")
    argv = [TINY[net], *train_options(stage2_voc["voc"], stage2_voc["seeds_no_255"], work)]
    assert run_tool("train", argv) == 0
    return net, work


def _losses(work: Path) -> list[float]:
    (scalars,) = work.glob("*/vis_data/scalars.json")
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_training_records_its_seeds(trained, stage2_voc):
    _, work = trained
    seeds = stage2_voc["seeds_no_255"]
    assert (work / "iter_2.pth").is_file() and list(work.glob("best_mIoU_iter_2.pth"))
    losses = _losses(work)
    assert len(losses) == 2 and np.isfinite(losses).all()
    record = json.loads((work / "seeds.json").read_text())["seeds"]
    assert record[0]["dir"] == str(seeds)
    assert record[0]["manifest_sha256"] == file_sha256(seeds / "manifest.json")
    assert state_dict(work / "iter_2.pth")["meta"]["fma_seeds"]["seeds"] == record
    val = json.loads((work / "metrics_val_iter_2.json").read_text())
    assert val["trained_on"] == record and val["iteration"] == 2 and val["split"] == "val"
    assert val["producer"]["tool"] == "tools/train.py (validation)"
    assert val["n_images"] == 6 and len(val["IoU"]) == 21


@pytest.mark.parametrize("net", sorted(TINY))
def test_training_on_seeds_with_ignore(net, stage2_voc, tmp_path):
    work = tmp_path / "work"
    argv = [TINY[net], *train_options(stage2_voc["voc"], stage2_voc["seeds_with_255"], work)]
    assert run_tool("train", argv) == 0
    assert np.isfinite(_losses(work)).all() and (work / "iter_2.pth").is_file()
    val = json.loads((work / "metrics_val_iter_2.json").read_text())
    assert val["trained_on"][0]["dir"] == str(stage2_voc["seeds_with_255"])


def test_resume_is_bit_identical(trained, stage2_voc, tmp_path):
    net, work = trained
    resumed = tmp_path / "resumed"
    opts = train_options(stage2_voc["voc"], stage2_voc["seeds_no_255"], resumed, iters=1)
    assert run_tool("train", [TINY[net], *opts]) == 0
    assert not (resumed / "iter_2.pth").exists()
    opts = train_options(stage2_voc["voc"], stage2_voc["seeds_no_255"], resumed, iters=2)
    assert run_tool("train", [TINY[net], *opts, "--resume"]) == 0
    assert state_dict(resumed / "iter_2.pth")["meta"]["iter"] == 2
    assert_same_weights(work / "iter_2.pth", resumed / "iter_2.pth")


def test_test_tool_writes_predictions_panels_and_metrics(trained, stage2_voc, tmp_path):
    net, work = trained
    voc, ckpt = stage2_voc["voc"], work / "iter_2.pth"
    out, show = tmp_path / "preds", tmp_path / "panels"
    argv = [TINY[net], ckpt, "--work-dir", work, "--out", out, "--show-dir", show, "--show-num", 2,
            "--cfg-options", f"test_dataloader.dataset.data_root={voc}"]  # fmt: skip
    assert run_tool("test", argv) == 0
    metrics = json.loads((work / "metrics_val.json").read_text())
    assert metrics["protocol"] == {"mode": "ss", "scales": [1.0], "flip": False}
    assert metrics["checkpoint_sha256"] == file_sha256(ckpt)
    assert metrics["trained_on"][0]["dir"] == str(stage2_voc["seeds_no_255"])
    assert metrics["dataset"] == "voc12" and metrics["n_images"] == 6
    assert list(metrics["IoU"]) == list(VOC12.class_names)
    assert metrics["producer"]["fma_version"] and "git_commit" in metrics["producer"]
    # The predictions are palette PNGs at image size; scoring them independently gives the same
    # numbers as the evaluation inside the test loop.
    pngs = sorted(out.glob("*.png"))
    assert [p.stem for p in pngs] == [f"synth_{i:03d}" for i in range(6)]
    with Image.open(pngs[0]) as img:
        assert img.mode == "P" and img.size == (128, 96)
        assert np.array_equal(np.asarray(img.getpalette()[: 21 * 3]), VOC12.palette[:21].ravel())
    ids = [p.stem for p in pngs]
    again = evaluate_label_dir(out, voc / "SegmentationClass", ids, 21, VOC12.class_names)
    assert again.metrics["mIoU"] == pytest.approx(metrics["mIoU"], abs=1e-9)
    assert again.metrics["IoU"] == metrics["IoU"]
    assert sorted(p.name for p in show.glob("*.png")) == ["synth_000.png", "synth_001.png"]
    from fma.visualization.panels import title_height

    with Image.open(show / "synth_000.png") as panel:  # image | prediction | ground truth
        assert panel.width == 3 * 128 + 2 * 4  # three panels, 4-pixel gaps
        assert panel.height > title_height() + 96  # a class legend under the panels


def test_test_tool_tta(trained, stage2_voc, tmp_path):
    net, work = trained
    argv = [TINY[net], work / "iter_2.pth", "--work-dir", tmp_path, "--tta",
            "--cfg-options", f"test_dataloader.dataset.data_root={stage2_voc['voc']}"]  # fmt: skip
    assert run_tool("test", argv) == 0
    metrics = json.loads((tmp_path / "metrics_val_tta.json").read_text())
    assert metrics["protocol"] == {"mode": "ms_flip", "scales": [0.75, 1.0], "flip": True}
    assert metrics["n_images"] == 6 and metrics["mIoU"] is not None


def test_export_voc_test_layout_palette_and_archive(trained, stage2_voc, tmp_path):
    net, work = trained
    voc = stage2_voc["voc"]
    out = tmp_path / "export"
    argv = [TINY[net], work / "iter_2.pth", "--data-root", voc, "--out", out,
            "--work-dir", tmp_path / "logs"]  # fmt: skip
    assert run_tool("export_voc_test", argv) == 0
    folder = out / "results" / "VOC2012" / "Segmentation" / "comp6_test_cls"
    ids = [f"synth_{i:03d}" for i in range(6)]
    assert sorted(p.stem for p in folder.glob("*.png")) == ids
    for image_id in ids:
        with Image.open(folder / f"{image_id}.png") as img:
            assert img.mode == "P" and img.size == (128, 96)
            pal = np.asarray(img.getpalette()[: 21 * 3], dtype=np.uint8).reshape(21, 3)
            assert np.array_equal(pal, VOC12.palette[:21])
        assert read_label_map(folder / f"{image_id}.png").max() < 21
    with tarfile.open(out / "results.tar.gz") as tar:
        names = tar.getnames()
        assert names == [f"results/VOC2012/Segmentation/comp6_test_cls/{i}.png" for i in ids]
        member = tar.extractfile(names[0]).read()
    assert member == (folder / "synth_000.png").read_bytes()


def test_readme_cpu_smoke_run_as_written(tmp_path):
    """The stage II CPU smoke commands of docs/stages.md run unchanged (from a folder that looks
    like the repository root: configs/ and tools/ linked, work_dirs/ fresh, .venv/bin/python a
    wrapper of this test's interpreter)."""
    import os
    import subprocess
    import sys

    from stage2_helpers import REPO

    page = (REPO / "docs" / "stages.md").read_text()
    section = page[page.index("**CPU smoke run**") :]
    block = section[section.index("```bash") + len("```bash") : section.index("```\n", 10)]
    assert ".venv/bin/python tools/train.py" in block
    for name in ("configs", "tools"):
        (tmp_path / name).symlink_to(REPO / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=scaled_timeout(900),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    work = tmp_path / "work_dirs" / "deeplabv3plus_r18-tiny_1xb2-cpu_voc12-seed-64x64"
    metrics = json.loads((work / "metrics_train.json").read_text())
    assert metrics["n_images"] == 8 and metrics["trained_on"][0]["dir"].endswith("pseudo_labels")
    assert len(list((tmp_path / "work_dirs" / "stage2_panels").glob("*.png"))) == 8
