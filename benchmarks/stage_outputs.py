"""Run every stage tool on a small real mini-VOC subset and compare two such output trees.

Proves that a refactor changes no stage output: run it once before the change
(``--out /tmp/before``) and once after (``--out /tmp/after``), then
``--compare /tmp/before /tmp/after`` checks every data file byte for byte.

The stages (all weight-free, CPU, tools run as subprocesses exactly as a user runs them):

1. ``tools/prepare_voc.py`` on a copy of the subset (``cls_labels/*.json``);
2. ``tools/gen_sam_masks.py`` with ``configs/sam/superpixels_voc12.py`` (train) and
   ``configs/sam/sam_tiny_test.py`` (the tiny random SAM, a few val images), with panels;
3. CAMs: derived from the TransCAM pseudo labels (``tests/oracle_masks.cam_from_label``, fixed
   seed), written with ``fma.io.cams`` (a fixture: the real CAM stage needs CLIP weights);
4. ``tools/make_seeds.py`` with ``configs/seeding/sams-coarse_voc12.py`` and ``sams-fine``
   (CAMs + superpixel masks), with panels;
5. ``tools/refine_labels.py`` (SEPL) of the TransCAM labels with the superpixel masks and with
   an amg.py ``binary_mask`` copy of them, with panels;
6. ``tools/eval_labels.py --json`` (with panels) on the seeds and the refined labels;
7. ``tools/sweep_seed_gamma.py --json``.

Comparison: every file under both trees must exist in both and be byte-identical, except JSON
files (``*.json``), which are compared as parsed values with these keys removed at any depth:
:data:`IGNORED_KEYS` (wall-clock times and the git commit), and with the absolute output root
replaced by ``<OUT>``. Lock files (``.fma.lock``) and the tools' logs (``logs/``) are skipped.

The digest (:func:`digest`, recorded by ``tests/test_stage_outputs.py``) is of the content, so
that it holds on any machine: PNGs as mode, size, palette and pixels; ``.npz`` as each array's
name, dtype, shape and bytes; ``.json.gz`` as parsed JSON; and without :data:`SCORE_KEYS`.
Deflate's output bytes may differ between builds of zlib, and the tiny random SAM's scores
differ in their last bits between CPU kernels (``ATEN_CPU_CAPABILITY=default`` changes 12 of
the 17 ``predicted_iou`` of its val image by about 1e-7, nothing else); which masks it keeps,
in which order, stays in the digest.

Run: ``python benchmarks/stage_outputs.py --out DIR [--data-root VOC_MINI] [--num-train 20]``;
``python benchmarks/stage_outputs.py --compare A B``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

#: JSON keys dropped before comparing (anywhere in a document): they record when and from which
#: commit a run happened, not what it computed.
# manifest_sha256: the hash of a manifest file, which holds its own creation time.
IGNORED_KEYS = frozenset(
    {"created", "git_commit", "seconds", "elapsed_s", "duration_s", "manifest_sha256"}
)
#: Mask record scores left out of the digest (their last bits follow the CPU's vector kernels).
SCORE_KEYS = frozenset({"predicted_iou", "stability_score"})
#: Files never compared (the folder lock records a pid; logs carry times).
SKIPPED_NAMES = frozenset({".fma.lock"})
SKIPPED_DIRS = frozenset({"logs"})


def _run(cmd: list[str], log: Path) -> None:
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, *cmd], cwd=REPO, capture_output=True, text=True, env=env, timeout=1800
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as f:
        f.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")


def _subset(voc_mini: Path, data: Path, num_train: int, num_val: int) -> tuple[list, list]:
    """Copy ``num_train``/``num_val`` images (+ ground truth) into ``data`` (a VOC2012 root)."""
    src = voc_mini / "VOC2012"
    seg = src / "ImageSets" / "Segmentation"
    train = (seg / "train.txt").read_text().split()[:num_train]
    val = (seg / "val.txt").read_text().split()[:num_val]
    (data / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    for sub in ("JPEGImages", "SegmentationClass"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    for image_id in train + val:
        jpg = f"JPEGImages/{image_id}.jpg"
        shutil.copyfile(src / jpg, data / jpg)
        shutil.copyfile(
            src / "SegmentationClass" / f"{image_id}.png",
            data / "SegmentationClass" / f"{image_id}.png",
        )
    (data / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(train) + "\n")
    (data / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(val) + "\n")
    return train, val


def _write_cams(voc_mini: Path, data: Path, ids: list[str], cam_dir: Path) -> None:
    from oracle_masks import cam_from_label

    from fma.io import Manifest, read_label_map, write_manifest
    from fma.io.cams import CamRecord, save_cam

    rng = np.random.default_rng(0)
    for image_id in ids:
        gt = read_label_map(data / "SegmentationClass" / f"{image_id}.png")
        pseudo = read_label_map(voc_mini / "pseudo_labels" / "transcam" / f"{image_id}.png")
        fg = [c for c in np.unique(gt).tolist() if c not in (0, 255)]
        cam = cam_from_label(pseudo, fg, rng).astype(np.float32)
        save_cam(cam_dir / f"{image_id}.npz", CamRecord(cam, np.array(fg), ori_size=gt.shape))
    write_manifest(cam_dir, Manifest("cams", 1, len(ids), "voc12", "train"))


def _write_amg_copy(mask_dir: Path, ids: list[str], amg_root: Path) -> None:
    try:
        from fma.io.masks.amg import write_amg_folder
    except ImportError:  # before the split of fma.io.amg
        from fma.io.amg import write_amg_folder
    from fma.io.masks.records import find_mask_file, load_sam_masks

    for image_id in ids:
        m = load_sam_masks(find_mask_file(mask_dir, image_id))
        write_amg_folder(amg_root / image_id, m.masks)


def produce(out: Path, voc_mini: Path, num_train: int, num_val: int) -> None:
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)
    log = out / "logs" / "tools.log"
    data = out / "data" / "VOC2012"
    train, _ = _subset(voc_mini, data, num_train, num_val)
    sub = out / "train_ids.txt"
    sub.write_text("\n".join(train) + "\n")

    # 1. Dataset preparation (image-level labels).
    _run(["tools/prepare_voc.py", str(data), "--workers", "2"], log)

    # 2. Masks: superpixels (train) and the tiny random SAM (val), as version-1 files (the
    #    format the digest was recorded with; version 2 is checked against them in
    #    tests/test_stage_outputs.py).
    sp = out / "superpixels"
    _run(["tools/gen_sam_masks.py", "configs/sam/superpixels_voc12.py", "--work-dir", str(sp),
          "--show-dir", str(sp / "show"), "--num-show", "3", "--workers", "2", "--no-progress",
          "--file-format", "json.gz",
          "--cfg-options", f"sam_masks.data_root={data}", "sam_masks.split=train"],
         log)  # fmt: skip
    tiny = out / "sam_tiny"
    _run(["tools/gen_sam_masks.py", "configs/sam/sam_tiny_test.py", "--work-dir", str(tiny),
          "--show-dir", str(tiny / "show"), "--num-show", "2", "--workers", "0", "--no-progress",
          "--file-format", "json.gz",
          "--cfg-options", f"sam_masks.data_root={data}", "sam_masks.split=val"], log)  # fmt: skip
    mask_dir = sp / "masks" / "train"

    # 3. CAMs (fixture from the pseudo labels).
    cam_dir = out / "cams" / "train"
    _write_cams(voc_mini, data, train, cam_dir)

    # 4. Seeds: coarse and fine configs.
    for name, workers in (("sams-coarse_voc12", "2"), ("sams-fine_voc12", "0")):
        work = out / name
        _run(["tools/make_seeds.py", f"configs/seeding/{name}.py", "--work-dir", str(work),
              "--show-dir", str(work / "show"), "--num-show", "3", "--workers", workers,
              "--no-progress", "--cfg-options", f"seeding.cam_dir={cam_dir}",
              f"seeding.mask_dir={mask_dir}", "seeding.split=train",
              f"seeding.data_root={data}"], log)  # fmt: skip

    # 5. SEPL refinement of the TransCAM labels: fma mask files and an amg.py folder copy.
    amg_root = out / "amg_masks"
    _write_amg_copy(mask_dir, train, amg_root)
    # The labels are copied into the output tree so that no path outside it is recorded (the
    # refinement manifest names its labels folder; the data root differs between machines).
    labels = out / "pseudo_labels" / "transcam"
    labels.mkdir(parents=True)
    for image_id in train:
        png = f"{image_id}.png"
        shutil.copyfile(voc_mini / "pseudo_labels" / "transcam" / png, labels / png)
    for name, masks, workers in (("refined", mask_dir, "2"), ("refined_amg", amg_root, "0")):
        _run(["tools/refine_labels.py", "--labels", str(labels), "--masks", str(masks),
              "--out", str(out / name), "--dataset", "voc12", "--image-list", str(sub),
              "--show-dir", str(out / f"{name}_show"), "--images", str(data / "JPEGImages"),
              "--num-show", "2", "--workers", workers, "--no-progress"], log)  # fmt: skip

    # 6. Evaluation of the seeds and the refined labels.
    for name, pred in (("coarse", out / "sams-coarse_voc12" / "seeds" / "train"),
                       ("refined", out / "refined")):  # fmt: skip
        _run(["tools/eval_labels.py", str(pred), "--dataset", "voc12", "--split", "train",
              "--data-root", str(data), "--json", str(out / f"eval_{name}.json"),
              "--show-dir", str(out / f"eval_{name}_show"), "--num-show", "2",
              "--no-progress"], log)  # fmt: skip

    # 7. The gamma sweep (analysis only).
    _run(["tools/sweep_seed_gamma.py", "configs/seeding/sams-coarse_voc12.py",
          "--gammas", "0.4", "0.8", "--json", str(out / "sweep.json"), "--workers", "2",
          "--no-progress", "--cfg-options", f"seeding.cam_dir={cam_dir}",
          f"seeding.mask_dir={mask_dir}", "seeding.split=train",
          f"seeding.data_root={data}"], log)  # fmt: skip
    (out / "ROOT").write_text(str(out))
    print(f"wrote {sum(1 for p in out.rglob('*') if p.is_file())} files under {out}")


def _strip(value, root: str, ignored: frozenset[str] = IGNORED_KEYS):
    if isinstance(value, dict):
        return {k: _strip(v, root, ignored) for k, v in value.items() if k not in ignored}
    if isinstance(value, list):
        return [_strip(v, root, ignored) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<OUT>")
    return value


def _content(rel: str, path: Path, root: str) -> bytes:
    """What :func:`digest` hashes of one file: its content, not its encoding (module docstring)."""
    if rel.endswith((".json", ".json.gz")):
        raw = gzip.decompress(path.read_bytes()) if rel.endswith(".gz") else path.read_bytes()
        data = _strip(json.loads(raw.decode("utf-8")), root, IGNORED_KEYS | SCORE_KEYS)
        return json.dumps(data, sort_keys=True).encode()
    if rel.endswith(".png"):
        from PIL import Image

        with Image.open(path) as im:
            head = f"{im.mode} {im.size} {im.getpalette()}".encode()
            return head + np.asarray(im).tobytes()
    if rel.endswith(".npz"):
        parts = []
        with np.load(path, allow_pickle=False) as z:
            for name in sorted(z.files):
                a = z[name]
                parts.append(f"{name} {a.dtype.str} {a.shape}".encode() + a.tobytes())
        return b"\0".join(parts)
    return path.read_bytes()


def _files(tree: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(tree.rglob("*")):
        rel = p.relative_to(tree)
        if not p.is_file() or p.name in SKIPPED_NAMES or rel.parts[0] in SKIPPED_DIRS:
            continue
        if rel.as_posix() == "ROOT":
            continue
        out[rel.as_posix()] = p
    return out


def _same_png(a: Path, b: Path) -> bool:
    """Both are PNGs with the same mode, palette and pixels (an encoding-only difference)."""
    return a.suffix == ".png" and _content(a.name, a, "") == _content(b.name, b, "")


def compare(a: Path, b: Path) -> int:
    """Print one line per differing file and a summary; return the number of differences."""
    roots = [(t / "ROOT").read_text().strip() for t in (a, b)]
    fa, fb = _files(a), _files(b)
    bad = 0
    for rel in sorted(set(fa) ^ set(fb)):
        print(f"only in {'A' if rel in fa else 'B'}: {rel}")
        bad += 1
    same = sorted(set(fa) & set(fb))
    kinds: dict[str, int] = {}
    for rel in same:
        pa, pb = fa[rel], fb[rel]
        if rel.endswith(".json"):
            ja = _strip(json.loads(pa.read_text(encoding="utf-8")), roots[0])
            jb = _strip(json.loads(pb.read_text(encoding="utf-8")), roots[1])
            ok = ja == jb
        else:
            ok = pa.read_bytes() == pb.read_bytes()
        if not ok:
            note = " (bytes only: same mode, palette and pixels)" if _same_png(pa, pb) else ""
            print(f"differs: {rel}{note}")
            bad += 1
        ext = "".join(Path(rel).suffixes[-2:]) or Path(rel).name
        kinds[ext] = kinds.get(ext, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"compared {len(same)} files ({summary}); {bad} difference(s)")
    return bad


def digest(tree: Path) -> str:
    """One sha256 over the content of every compared file (:func:`_content`)."""
    root = (tree / "ROOT").read_text().strip()
    h = hashlib.sha256()
    for rel, p in _files(tree).items():
        h.update(rel.encode())
        h.update(_content(rel, p, root))
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="write the stage outputs here (replaced if present)")
    p.add_argument("--data-root", type=Path, default=REPO.parent / "shared/data/voc2012-mini",
                   help="mini VOC root holding VOC2012/ and pseudo_labels/")  # fmt: skip
    p.add_argument("--num-train", type=int, default=20, help="train images (default 20)")
    p.add_argument("--num-val", type=int, default=3, help="val images for the tiny SAM")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="compare two trees")
    args = p.parse_args(argv)
    if args.compare:
        return 1 if compare(*args.compare) else 0
    if args.out is None:
        p.error("give --out DIR or --compare A B")
    produce(args.out, args.data_root, args.num_train, args.num_val)
    print(f"digest {digest(args.out.resolve())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
