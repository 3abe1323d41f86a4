"""Wall time of ``tools/reproduce.py configs/pipelines/fma_voc12.py --dry-run`` and the number of
stage config parses in the runner process.

Two cases on a miniature VOC tree (a few 8x8 images) with stand-in weights files:

* ``fresh``: an empty work dir (every step would run; later steps read outputs that do not
  exist yet, so only the first steps are fingerprinted);
* ``up to date``: every output exists and every step has a record holding its current
  fingerprint (every step is fingerprinted and skipped), as when a finished run is checked.

Each case runs the tool ``--repeat`` times as a subprocess (median wall time, most of it imports),
then once in this process with ``mmengine.config.Config.fromfile`` counted and the CPU time of
``main()`` measured. Prints one table::

    .venv/bin/python benchmarks/pipeline_dry_run.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "configs" / "pipelines" / "fma_voc12.py"


def _voc_root(root: Path) -> Path:
    """A miniature VOC2012 folder: train, val, train_aug lists, images, labels, ground truth."""
    from PIL import Image

    from fma.datasets.labels import save_image_labels
    from fma.datasets.meta import VOC12

    ids = {"train": ["a", "b"], "val": ["c"], "train_aug": ["a", "b", "d"]}
    seg = root / "ImageSets" / "Segmentation"
    seg.mkdir(parents=True)
    for folder in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "cls_labels"):
        (root / folder).mkdir()
    for split, listed in ids.items():
        (seg / f"{split}.txt").write_text("".join(f"{i}\n" for i in listed))
    for i in sorted({i for listed in ids.values() for i in listed}):
        Image.new("RGB", (8, 8)).save(root / "JPEGImages" / f"{i}.jpg")
        Image.new("P", (8, 8)).save(root / "SegmentationClass" / f"{i}.png")
        Image.new("P", (8, 8)).save(root / "SegmentationClassAug" / f"{i}.png")
    save_image_labels(root / "cls_labels" / "train_aug.json", {i: [1] for i in ids["train_aug"]},
                      VOC12.class_names, "voc12", "train_aug")  # fmt: skip
    return root


def _argv(tmp: Path, work: Path) -> list[str]:
    return [str(PIPELINE), "--data-root", str(tmp / "VOC2012"), "--work-dir", str(work),
            "--clip", str(tmp / "w8" / "clip.pt"), "--sam", str(tmp / "w8" / "sam.pth"),
            "--dry-run", "--quiet"]  # fmt: skip


def _finish_run(tmp: Path, work: Path) -> None:
    """Outputs for every step and records holding the steps' current fingerprints."""
    from fma.io.atomic import write_json_atomic
    from fma.pipeline.config import load_pipeline
    from fma.pipeline.fingerprint import HashCache, step_fingerprint

    overrides = {"data_root": str(tmp / "VOC2012"), "clip": str(tmp / "w8" / "clip.pt"),
                 "sam": str(tmp / "w8" / "sam.pth")}  # fmt: skip
    pipeline = load_pipeline(PIPELINE, root=REPO, work_dir=str(work), overrides=overrides)
    cache = HashCache(None)
    for step in pipeline.steps:
        if not step.enabled:
            continue
        for out in step.outputs:
            path = pipeline.abspath(out.replace("*", "1"))
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"x")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "manifest.json").write_text("{}")
    for step in pipeline.steps:  # a glob argument (the best checkpoint): one match
        args = [a.replace("*", "1") if "*" in a and not a.startswith("-") else a for a in step.args]
        for arg in set(args) - set(step.args):
            pipeline.abspath(arg).write_bytes(b"x")
        world = 1 if step.distributed else None
        fp, parts = step_fingerprint(tool=step.tool, module=step.module, args=args,
                                     inputs=step.inputs, root=REPO, cache=cache,
                                     world_size=world)  # fmt: skip
        record = {"pipeline": pipeline.name, "step": step.name, "fingerprint": fp,
                  "parts": parts, "ended": "-", "duration_s": 1.0,
                  "launcher": {"launcher": "none"}}  # fmt: skip
        write_json_atomic(pipeline.records_dir / f"{step.name}.json", record)


def _wall(argv: list[str], repeat: int) -> tuple[float, str]:
    times, text = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "tools/reproduce.py", *argv], cwd=REPO,
                              capture_output=True, text=True, check=False)  # fmt: skip
        times.append(time.perf_counter() - t0)
        text = done.stdout + done.stderr
        if done.returncode != 0:
            raise SystemExit(f"the dry run failed ({done.returncode}):\n{text}")
    return statistics.median(times), text


def _parses(argv: list[str]) -> tuple[int, int, float]:
    """``(stage config parses, distinct stage configs, CPU seconds of main())`` of one dry run
    in this process (the first one also pays for the imports that parsing triggers)."""
    from mmengine.config import Config

    sys.path.insert(0, str(REPO / "tools"))
    import reproduce

    counts: Counter[str] = Counter()
    original = Config.fromfile  # a staticmethod

    def counted(filename, *args, **kwargs):
        if "configs/pipelines/" not in str(filename):
            counts[str(filename)] += 1
        return original(filename, *args, **kwargs)

    Config.fromfile = staticmethod(counted)
    try:
        cpu = time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            code = reproduce.main(argv)
        cpu = time.process_time() - cpu
    finally:
        Config.fromfile = staticmethod(original)
    if code != 0:
        raise SystemExit(f"the in-process dry run failed ({code})")
    return sum(counts.values()), len(counts), cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        _voc_root(tmp / "VOC2012")
        (tmp / "w8").mkdir()
        (tmp / "w8" / "clip.pt").write_bytes(b"clip")
        (tmp / "w8" / "sam.pth").write_bytes(b"sam")
        for case in ("fresh", "up to date"):
            work = tmp / case.replace(" ", "_")
            if case == "up to date":
                _finish_run(tmp, work)
            argv = _argv(tmp, work)
            wall, text = _wall(argv, args.repeat)
            if case == "up to date" and "would run" in text:
                raise SystemExit(f"expected every step up to date:\n{text}")
            total, distinct, cpu = _parses(argv)
            rows.append((case, f"{wall:.2f}", str(total), str(distinct), f"{cpu:.2f}"))
    head = ("case", "wall s (median)", "stage config parses", "distinct configs", "main() CPU s")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"(median of {args.repeat} subprocess runs; parses counted in one in-process run)")


if __name__ == "__main__":
    main()
