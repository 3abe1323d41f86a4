"""The stage tools under output faults: one line naming the path and the fix, no traceback,
finished files kept (disk full: a fake ENOSPC; read-only: a fake EROFS; a file in the way)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fma.datasets.synthetic import make_synthetic_voc
from fma.io import read_label_map
from fma.io.cams import CamRecord, save_cam
from fma.io.manifest import Manifest, write_manifest

REPO = Path(__file__).resolve().parents[2]

# Runs a tool with a fault under FAULT_DIR: "enospc" fails every output rename after the first
# FAULT_AFTER ones (as a disk that fills up), "erofs" fails every file or folder created there.
_WRAP = textwrap.dedent("""
    import errno, os, runpy, sys
    mode, fault_dir, after = sys.argv[1], os.path.abspath(sys.argv[2]), int(sys.argv[3])
    real_replace, real_open, real_mkdir = os.replace, os.open, os.mkdir
    state = {"n": 0}

    def inside(p):
        return os.path.abspath(os.fspath(p)).startswith(fault_dir + os.sep)

    def replace(src, dst, *a, **k):
        if mode == "enospc" and inside(dst) and not os.path.basename(dst).startswith("manifest"):
            state["n"] += 1
            if state["n"] > after:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *a, **k)

    def open_(p, flags, *a, **k):
        if mode == "erofs" and flags & os.O_CREAT and inside(p):
            raise OSError(errno.EROFS, "Read-only file system", p)
        return real_open(p, flags, *a, **k)

    def mkdir(p, *a, **k):
        if mode == "erofs" and inside(p):
            raise OSError(errno.EROFS, "Read-only file system", p)
        return real_mkdir(p, *a, **k)

    os.replace, os.open, os.mkdir = replace, open_, mkdir
    sys.argv = sys.argv[4:]
    sys.path.insert(0, os.path.dirname(sys.argv[0]))
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    voc = make_synthetic_voc(root / "data", num_images=4)
    ids = sorted(p.stem for p in (voc / "JPEGImages").glob("*.jpg"))
    cfg = root / "sp_voc12.py"
    cfg.write_text(
        f"sam_masks = dict(source='superpixels', dataset='voc12', data_root={str(voc)!r}, "
        "split='train')\n"
    )
    masks = root / "wd" / "masks" / "train"
    gen = [sys.executable, str(REPO / "tools/gen_sam_masks.py"), str(cfg)]
    gen += ["--work-dir", str(root / "wd"), "--no-progress"]
    subprocess.run(gen, check=True, capture_output=True)
    cams = root / "cams"
    rng = np.random.default_rng(0)
    for i in ids:
        h, w = read_label_map(root / "data" / "pseudo_labels" / f"{i}.png").shape
        grid = (1, -(-h // 16), -(-w // 16))  # the 16-pixel patch grid of the image
        save_cam(cams / f"{i}.npz", CamRecord(rng.normal(size=grid).astype(np.float32),
                                              np.array([1]), ori_size=(h, w)))  # fmt: skip
    write_manifest(cams, Manifest("cams", 1, len(ids), "voc12", "train"))
    seed_cfg = root / "seeds_voc12.py"
    seed_cfg.write_text(f"seeding = dict(cam_dir={str(cams)!r}, mask_dir={str(masks)!r}, "
                        "dataset='voc12', split='train', gamma=0.6)\n")  # fmt: skip
    return dict(root=root, voc=voc, ids=ids, cfg=cfg, masks=masks, seed_cfg=seed_cfg)


def _command(tool: str, inp: dict, out: Path) -> tuple[list[str], Path]:
    """(tool arguments, the folder its per-image outputs go to) for an output root ``out``."""
    if tool == "gen_sam_masks":
        return [str(inp["cfg"]), "--work-dir", str(out), "--no-progress"], out / "masks" / "train"
    if tool == "make_seeds":
        return [str(inp["seed_cfg"]), "--work-dir", str(out), "--workers", "0",
                "--no-progress"], out / "seeds" / "train"  # fmt: skip
    if tool == "refine_labels":
        return ["--labels", str(inp["root"] / "data" / "pseudo_labels"), "--masks",
                str(inp["masks"]), "--out", str(out), "--dataset", "voc12",
                "--no-progress"], out  # fmt: skip
    return [str(inp["root"] / "data" / "pseudo_labels"), "--dataset", "voc12", "--split", "train",
            "--data-root", str(inp["voc"]), "--json", str(out / "metrics.json"),
            "--no-progress"], out  # fmt: skip


TOOLS = ["gen_sam_masks", "make_seeds", "refine_labels", "eval_labels"]


def _run(tool: str, args: list[str], fault: str, fault_dir: Path, after: int = 0):
    script = REPO / "tools" / f"{tool}.py"
    return subprocess.run(
        [sys.executable, "-c", _WRAP, fault, str(fault_dir), str(after), str(script), *args],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip


def _one_line_error(proc: subprocess.CompletedProcess, path: Path, fix: str) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1, proc.stderr
    assert str(path) in line[0] and fix in line[0], line[0]
    return line[0]


@pytest.mark.parametrize("tool", TOOLS)
def test_disk_full_names_the_path_and_keeps_finished_files(tmp_path, inputs, tool):
    out = tmp_path / "out"
    args, files = _command(tool, inputs, out)
    after = 0 if tool == "eval_labels" else 2
    proc = _run(tool, args, "enospc", tmp_path, after)
    _one_line_error(proc, files, "free some space")
    assert "rerun" in proc.stderr
    if tool != "eval_labels":  # the two outputs written before the disk filled up are kept
        kept = [p for p in files.iterdir() if not p.name.startswith((".", "manifest"))]
        assert len(kept) == 2, sorted(p.name for p in files.iterdir())


@pytest.mark.parametrize("tool", TOOLS)
def test_read_only_output_folder(tmp_path, inputs, tool):
    out = tmp_path / "out"
    args, files = _command(tool, inputs, out)
    files.mkdir(parents=True)  # exists, but nothing can be created inside
    _one_line_error(_run(tool, args, "erofs", files), files, "make the folder writable")


@pytest.mark.parametrize("tool", TOOLS)
def test_output_path_that_is_a_file(tmp_path, inputs, tool):
    out = tmp_path / "out"
    out.write_text("not a folder")
    args, _ = _command(tool, inputs, out)
    _one_line_error(_run(tool, args, "none", tmp_path), out, "a file is in the way")
