"""Seeding benchmark: SAMS and SEPL end to end (disk to disk) and in memory, in one run.

End-to-end rows run each implementation as its own process over the same images, masks and
labels, and time the whole process (start-up, reading, computing, writing PNGs):

* ``fma .npz``: ``tools/refine_labels.py`` (SEPL ``max_iou_imp2``) and ``tools/make_seeds.py``
  (SAMS, gamma 0.7) on fma's mask files of format version 2 (the default), with ``--workers``;
* ``fma .json.gz``: the same tools on the same masks in version 1 (gzip'd JSON records);
* ``before`` (with ``--before SRC``): the same tools of another fma source tree, e.g. the
  previous commit exported with ``git archive``, on the version-1 files;
* ``reference``: the merges with the original code's I/O (``benchmarks/_reference_merge.py``):
  SEPL reads every mask PNG of the image's amg.py folder again for every present class; SAMS
  decodes all masks densely with pycocotools and loops over them. Slow, so it runs on the first
  ``--reference-images`` images; rates are per image.

Every end-to-end row runs ``--repeat`` times (default 3), all rows once per round, and shows
the medians: the machine's speed drifts between minutes, and interleaving spreads a slow
minute over every row. Columns: wall seconds and images/s of the process; CPU seconds per
image (user + system of the process and its workers) and images per CPU second ("per core",
less sensitive to other load on the machine); peak resident memory of the largest process
(MiB); the ratio of the per-core rate to the reference's; how many outputs equal fma's; for
the fma tools also the CPU seconds of the same process on one image (start-up: imports,
config, manifests) and the marginal CPU ms per image, ``(CPU(n) - CPU(1)) / (n - 1)``, what
each further image costs on a large dataset.

In-memory rows time one call per image on already loaded inputs (CPU time of this process,
single thread; peak = tracemalloc peak of the call, inputs excluded).

Run: ``python benchmarks/seeding.py [--images N] [--masks-per-image K] [--workers N]
[--voc-mini DIR] [--before SRC] [--reference-images M] [--gen-workers N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import _reference_merge  # noqa: E402
import _seeding_inputs  # noqa: E402
import _sepl_bench  # noqa: E402

from fma.io.cams import load_cam  # noqa: E402
from fma.io.label_maps import read_label_map  # noqa: E402
from fma.io.masks.amg import read_amg_folder  # noqa: E402
from fma.io.masks.records import load_sam_masks  # noqa: E402
from fma.io.masks.runs import load_mask_runs  # noqa: E402
from fma.seeding import SamsOptions, refine_pseudo_label, sams_seed  # noqa: E402

GAMMA = 0.7


def _process(cmd: list[str], env_path: Path | None = None) -> dict[str, float]:
    """Run ``cmd``; wall and CPU seconds, peak RSS (MiB) of the largest process of its tree."""
    env = dict(os.environ)
    if env_path is not None:
        env["PYTHONPATH"] = str(env_path)
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"{' '.join(cmd)} failed:\n{err.read().decode()[-3000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024}


def _same(a: Path, b: Path, ids: list[str]) -> int:
    """Number of ids whose PNG label maps in ``a`` and ``b`` hold equal values."""
    return sum(
        np.array_equal(read_label_map(a / f"{i}.png"), read_label_map(b / f"{i}.png"))
        for i in ids
        if (b / f"{i}.png").is_file()
    )


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median wall and CPU seconds of repeated runs, and their largest peak."""
    return {"wall": float(np.median([r["wall"] for r in runs])),
            "cpu": float(np.median([r["cpu"] for r in runs])),
            "rss": max(r["rss"] for r in runs)}  # fmt: skip


def _tool_commands(inp: Any, work: Path, args: argparse.Namespace, stage: str, tree: Path,
                   masks: Path, name: str) -> dict[str, tuple[list[str], Path]]:  # fmt: skip
    """``{"one" | "all": (command, output folder)}`` of an fma tree's tool for ``stage``."""
    py = sys.executable
    one_file = work / "one_id.txt"
    one_file.write_text(inp.ids[0] + "\n")
    out: dict[str, tuple[list[str], Path]] = {}
    for count in ("one", "all"):  # one image: the start-up of the process
        folder = work / f"{stage}_{name.replace(' ', '_')}_{count}"
        if stage == "SEPL":
            cmd = [py, str(tree / "tools" / "refine_labels.py"), "--labels", str(inp.labels),
                   "--masks", str(masks), "--out", str(folder), "--dataset", "voc12",
                   "--workers", str(args.workers), "--no-progress"]  # fmt: skip
            if count == "one":
                cmd += ["--image-list", str(one_file)]
        else:
            cfg = work / f"seeding_{name.replace(' ', '_').replace('.', '_')}_{count}.py"
            only = f", image_ids=[{inp.ids[0]!r}]" if count == "one" else ""
            cfg.write_text(
                f"seeding = dict(cam_dir={str(inp.cams)!r}, mask_dir={str(masks)!r}, "
                f"dataset='voc12', split='train', gamma={GAMMA}, out_dir={str(folder)!r}"
                f"{only})\n"
            )
            cmd = [py, str(tree / "tools" / "make_seeds.py"), str(cfg),
                   "--workers", str(args.workers), "--no-progress"]  # fmt: skip
        out[count] = (cmd, folder)
    return out


def end_to_end(inp: Any, work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The end-to-end rows: every implementation ``--repeat`` times, interleaved round by
    round (so that a slow minute of the machine costs every row alike); medians."""
    py = sys.executable
    ref_ids = inp.ids[: args.reference_images]
    ref_file = work / "ref_ids.txt"
    ref_file.write_text("\n".join(ref_ids) + "\n")
    rows: list[dict[str, Any]] = []
    trees = [("fma", REPO, None, inp.masks, ".npz"), ("fma", REPO, None, inp.masks_v1, ".json.gz")]
    if args.before:
        trees.append(("before", args.before, args.before, inp.masks_v1, ".json.gz"))
    for _, tree, _, _, _ in trees:
        # Byte-compiled modules, as an installed package has them: with PYTHONDONTWRITEBYTECODE
        # set, every process would otherwise compile the tree's modules again at start-up.
        subprocess.run([py, "-m", "compileall", "-q", str(tree / "fma"), str(tree / "tools")],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    for stage in ("SEPL", "SAMS"):
        jobs: dict[str, tuple[list[str], Path, Path | None]] = {}
        for tool_tree, tree, path, masks, suffix in trees:
            name = f"{tool_tree} {suffix}"
            for count, (cmd, folder) in _tool_commands(
                inp, work, args, stage, tree, masks, name
            ).items():
                jobs[f"{name}|{count}"] = (cmd, folder, path)
        ref_out = work / f"{stage}_reference"
        if stage == "SEPL":
            cmd = [py, str(HERE / "_reference_merge.py"), "sepl", "--labels", str(inp.labels),
                   "--masks", str(inp.amg), "--out", str(ref_out),
                   "--ids", str(ref_file)]  # fmt: skip
        else:
            cmd = [py, str(HERE / "_reference_merge.py"), "sams", "--cams", str(inp.cams),
                   "--masks", str(inp.masks_v1), "--out", str(ref_out), "--ids", str(ref_file),
                   "--gamma", str(GAMMA)]  # fmt: skip
        jobs["reference|all"] = (cmd, ref_out, None)
        timed: dict[str, list[dict[str, float]]] = {key: [] for key in jobs}
        for _ in range(args.repeat):
            for key, (cmd, folder, path) in jobs.items():
                shutil.rmtree(folder, ignore_errors=True)  # every round writes everything
                timed[key].append(_process(cmd, path))
        outs = {key.split("|")[0]: folder for key, (_, folder, _) in jobs.items()
                if key.endswith("|all")}  # fmt: skip
        ref = _median_run(timed["reference|all"])
        ref_rate = len(ref_ids) / ref["cpu"]
        n = len(inp.ids)
        for name in outs:
            ids = ref_ids if name == "reference" else inp.ids
            res = _median_run(timed[f"{name}|all"])
            row = {"stage": stage, "name": name, "n": len(ids), **res}
            if name == "reference":
                row["impl"] = "reference (original I/O)"
            else:
                one = _median_run(timed[f"{name}|one"])["cpu"]
                row.update(impl=f"{name} (workers {args.workers})", one_cpu=one,
                           marginal=(res["cpu"] - one) / max(n - 1, 1))  # fmt: skip
            row["same"] = f"{_same(outs['fma .npz'], outs[name], ids)}/{len(ids)}"
            row["x_ref"] = (row["n"] / row["cpu"]) / ref_rate
            rows.append(row)
    return rows


def _measure(fn: Callable[[int], Any], n: int) -> tuple[float, float, list[Any]]:
    """CPU seconds per call over ``fn(0..n-1)`` after a warm-up, and the peak traced MiB."""
    fn(0)
    t0 = time.process_time()
    outs = [fn(j) for j in range(n)]
    sec = (time.process_time() - t0) / n
    peak = 0
    tracemalloc.start()
    for j in range(n):
        tracemalloc.reset_peak()
        fn(j)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    return sec, peak / 2**20, outs


def in_memory(inp: Any, n: int, n_loop: int) -> list[dict[str, Any]]:
    import torch

    torch.set_num_threads(1)
    ids = inp.ids[:n]
    paths = [inp.masks / f"{i}.npz" for i in ids]
    paths_v1 = [inp.masks_v1 / f"{i}.json.gz" for i in ids]
    labels = [read_label_map(inp.labels / f"{i}.png") for i in ids]
    runs = [load_mask_runs(p) for p in paths]
    dense = [load_sam_masks(p) for p in paths_v1]
    cams = [load_cam(inp.cams / f"{i}.npz") for i in ids]
    opts = SamsOptions(gamma=GAMMA)
    cases = [
        ("SEPL", "fma runs", n, lambda j: refine_pseudo_label(labels[j], runs[j], 21)),
        ("SEPL", "official expressions", n_loop,
         lambda j: _sepl_bench.per_mask_loop(labels[j], dense[j].masks, 21)),
        ("SAMS", "fma runs", n, lambda j: sams_seed(cams[j], runs[j], opts).seed),
        ("SAMS", "per-mask loop", n_loop, lambda j: _reference_merge.loop_sams(
            dense[j].masks, cams[j].cam, cams[j].fg_cls, dense[j].levels.tolist(), GAMMA)),
        ("read", "runs from .npz (fma)", n, lambda j: load_mask_runs(paths[j])),
        ("read", "runs from .json.gz (fma)", n, lambda j: load_mask_runs(paths_v1[j])),
        ("read", "dense from .json.gz", n, lambda j: load_sam_masks(paths_v1[j])),
        ("read", "amg PNG folder", min(n, len(list(inp.amg.iterdir()))),
         lambda j: read_amg_folder(inp.amg / ids[j])),
    ]  # fmt: skip
    rows, want = [], {}
    for stage, name, count, fn in cases:
        sec, peak, outs = _measure(fn, count)
        row = {"stage": stage, "impl": name, "n": count, "ms": 1e3 * sec, "peak": peak}
        if stage != "read":
            want.setdefault(stage, outs)
            ref = want[stage][:count]
            same = sum(np.array_equal(a, b) for a, b in zip(outs, ref, strict=True))
            row["same"] = f"{same}/{count}"
        rows.append(row)
    for stage in ("SEPL", "SAMS"):
        ref = [r for r in rows if r["stage"] == stage][-1]["ms"]
        for r in rows:
            if r["stage"] == stage:
                r["x_ref"] = ref / r["ms"]
    return rows


def print_tables(e2e: list[dict[str, Any]], mem: list[dict[str, Any]]) -> None:
    if e2e:
        head = (f"{'stage':<5} {'implementation':<30} {'n':>4} {'wall s':>7} {'img/s':>7} "
                f"{'CPU ms/img':>10} {'img/CPU-s':>9} {'peak MiB':>8} {'x ref':>6} "
                f"{'same':>8} {'1-img CPU s':>11} {'marginal ms':>11}")  # fmt: skip
        print("\nEnd to end (whole process, disk to disk)")
        print(head + "\n" + "-" * len(head))
        for r in e2e:
            extra = (f" {r['one_cpu']:>11.2f} {1e3 * r['marginal']:>11.1f}" if "marginal" in r
                     else "")  # fmt: skip
            print(f"{r['stage']:<5} {r['impl']:<30} {r['n']:>4} {r['wall']:>7.2f} "
                  f"{r['n'] / r['wall']:>7.1f} {1e3 * r['cpu'] / r['n']:>10.1f} "
                  f"{r['n'] / r['cpu']:>9.1f} {r['rss']:>8.0f} {r['x_ref']:>6.1f} "
                  f"{r['same']:>8}{extra}")  # fmt: skip
    if mem:
        head = (f"{'stage':<5} {'implementation':<30} {'n':>4} {'ms/img':>8} {'img/s':>7} "
                f"{'peak MiB':>8} {'x ref':>6} {'same':>8}")  # fmt: skip
        print("\nIn memory (one call per image on loaded inputs, CPU time, one thread)")
        print(head + "\n" + "-" * len(head))
        for r in mem:
            x = f"{r['x_ref']:>6.1f}" if "x_ref" in r else f"{'':>6}"
            same = r.get("same", "")
            print(f"{r['stage']:<5} {r['impl']:<30} {r['n']:>4} {r['ms']:>8.2f} "
                  f"{1e3 / r['ms']:>7.1f} {r['peak']:>8.1f} {x} {same:>8}")  # fmt: skip
    sys.stdout.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=330, help="images per end-to-end run")
    p.add_argument("--masks-per-image", type=int, default=150, help="about K masks per image")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="--workers of the timed fma tools (0: their own process only)",
    )
    p.add_argument(
        "--gen-workers",
        type=int,
        default=2,
        help="worker processes generating the superpixel masks (inputs only)",
    )
    p.add_argument(
        "--voc-mini",
        type=Path,
        default=REPO.parent / "shared/data/voc2012-mini",
        help="mini VOC set (real images); synthetic images when absent",
    )
    p.add_argument("--before", type=Path, help="another fma source tree to time side by side")
    p.add_argument(
        "--reference-images", type=int, default=20, help="images of the (slow) reference merges"
    )
    p.add_argument("--memory-images", type=int, default=30, help="images of the in-memory rows")
    p.add_argument(
        "--inputs-dir",
        type=Path,
        help="build the inputs here and reuse them in later runs with the same settings",
    )
    p.add_argument("--no-in-memory", action="store_true", help="end-to-end rows only")  # fmt: skip
    p.add_argument(
        "--repeat", type=int, default=3, help="end-to-end runs of every row (medians shown)"
    )
    args = p.parse_args(argv)
    if min(args.images, args.masks_per_image, args.reference_images, args.memory_images,
           args.repeat) < 1:  # fmt: skip
        p.error("--images, --masks-per-image, --reference-images, --memory-images, --repeat "
                "must be >= 1")  # fmt: skip
    if args.before is not None and not (args.before / "tools" / "refine_labels.py").is_file():
        p.error(f"--before {args.before}: not an fma source tree (no tools/refine_labels.py)")
    args.reference_images = min(args.reference_images, args.images)
    args.memory_images = min(args.memory_images, args.images)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if args.inputs_dir is None else args.inputs_dir
        t0 = time.perf_counter()
        # The amg.py folders serve the reference rows and the in-memory read row; one count for
        # both, so that --no-in-memory reuses the same inputs.
        n_amg = max(args.reference_images, args.memory_images)
        key = f"mask files v1+v2 {args.voc_mini} {args.images} {args.masks_per_image} {n_amg}"
        if (work / "inputs.txt").is_file() and (work / "inputs.txt").read_text() == key:
            inp = pickle_free_reload(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            inp = _seeding_inputs.build(work, args.voc_mini, args.images, args.masks_per_image,
                                        args.gen_workers, n_amg)  # fmt: skip
            (work / "source.txt").write_text(f"{inp.source}\n{inp.masks_per_image}\n")
            (work / "inputs.txt").write_text(key)
        print(f"inputs: {inp.source}; {inp.masks_per_image:.0f} masks per image on average; "
              f"ready in {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load}; "
              f"python {platform.python_version()}", flush=True)  # fmt: skip
        runs = Path(tmp) / "runs"
        runs.mkdir()
        e2e = end_to_end(inp, runs, args)
        print_tables(e2e, [])
        if not args.no_in_memory:
            print_tables([], in_memory(inp, args.memory_images, min(5, args.memory_images)))
        print(f"\nload average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


def pickle_free_reload(work: Path) -> Any:
    """The :class:`_seeding_inputs.Inputs` of a folder built by an earlier run."""
    source, k = (work / "source.txt").read_text().splitlines()
    ids = (work / "ids.txt").read_text().split()
    return _seeding_inputs.Inputs(ids, work / "labels", work / "cams", work / "masks",
                                  work / "masks_v1", work / "amg", work / "ids.txt", source,
                                  float(k), {})  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
