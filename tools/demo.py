"""The demo: the whole method end to end through tools/reproduce.py configs/pipelines/demo.py.

A thin wrapper (``./run demo``): it runs the demo pipeline with the pipeline runner, passing
``--work-dir``, ``--data-root``, ``--clip`` and ``--sam`` on, and prints the pipeline's wall time
and the plain notice that the demo runs the machinery on synthetic data with tiny models and is
not a result. With ``--clip PATH`` it also selects the real architecture
(``clip_model=ViT-B-16 clip_config=None``); with ``--sam PATH`` the SAM ViT-H mask config.
Threads: unless the environment sets ``OMP_NUM_THREADS`` or ``OMP_WAIT_POLICY`` (or
``--threads N`` is given), every step runs with ``OMP_NUM_THREADS=1``, and on a busy machine
(1-minute load average at least half the CPU count) with ``OMP_WAIT_POLICY=PASSIVE`` as well; a
line says which. The demo's models are tiny: a second thread per step cost more than it gave
(2-core machine: 90 CPU s and 78 s wall with one thread, 213 CPU s and 162 s wall with the
default), and OpenMP threads spinning against other jobs made a busy run take 669 CPU s.

``--data-only`` writes only the small synthetic set of ``fma.datasets.synthetic`` to
``<work-dir>/data/VOC2012`` (README, "Stage I without weights") and runs nothing else.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIPELINE = "configs/pipelines/demo.py"
NOTICE = (
    "NOTE: this ran the machinery of the method on synthetic data with tiny models (a tiny CLIP "
    "pretrained for a minute, superpixels instead of SAM, a tiny stage II network); the numbers "
    "are not a result."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work-dir", default="work_dirs/demo", help="output folder")
    p.add_argument("--data-root", help="a VOC-layout folder instead of the synthetic set")
    p.add_argument("--clip", help="CLIP ViT-B/16 weights instead of the tiny CLIP")
    p.add_argument("--sam", help="SAM ViT-H checkpoint instead of superpixels")
    p.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="further pipeline vars"
    )
    p.add_argument("--verbose", action="store_true", help="show every step's output")
    p.add_argument(
        "--threads", type=int,
        help="OpenMP / torch threads per step (default 1, unless OMP_NUM_THREADS is set)",
    )  # fmt: skip
    p.add_argument("--num-images", type=int, default=12, help="with --data-only")
    p.add_argument("--seed", type=int, default=0, help="with --data-only")
    p.add_argument(
        "--data-only", action="store_true",
        help="write only the small synthetic set (README: Stage I without weights)",
    )  # fmt: skip
    return p.parse_args(argv)


def reproduce_command(args: argparse.Namespace) -> list[str]:
    """The tools/reproduce.py command line the demo runs."""
    cmd = [sys.executable, "tools/reproduce.py", PIPELINE, "--work-dir", args.work_dir]
    if not args.verbose:
        cmd.append("--quiet")
    sets = list(args.set)
    if args.data_root:
        cmd += ["--data-root", args.data_root]
    if args.clip:
        cmd += ["--clip", args.clip]
        sets += ["clip_model=ViT-B-16", "clip_config=None"]
    if args.sam:
        cmd += ["--sam", args.sam]
        sets += ["masks_config=configs/demo/masks_sam-vit-h_demo.py"]
    for item in sets:
        cmd += ["--set", item]
    return cmd


def thread_env(
    env: dict[str, str], threads: int | None, load: float, cpus: int
) -> tuple[dict[str, str], str | None]:
    """The environment of the pipeline and a line saying what was set (None: nothing).

    ``threads`` given: ``OMP_NUM_THREADS=threads``. Otherwise, unless ``env`` sets
    ``OMP_NUM_THREADS`` or ``OMP_WAIT_POLICY``: ``OMP_NUM_THREADS=1``, plus
    ``OMP_WAIT_POLICY=PASSIVE`` when ``load`` (the 1-minute load average) is at least half of
    ``cpus`` (threads that spin while other jobs hold the cores).
    """
    env = dict(env)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
        return env, f"OMP_NUM_THREADS={threads} (--threads)"
    if "OMP_NUM_THREADS" in env or "OMP_WAIT_POLICY" in env:
        return env, None
    env["OMP_NUM_THREADS"] = "1"
    if load < cpus / 2:
        return env, "OMP_NUM_THREADS=1 for every step (--threads N to change)"
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env, (
        f"busy machine (load {load:.1f} on {cpus} CPUs): OMP_NUM_THREADS=1 "
        "OMP_WAIT_POLICY=PASSIVE for every step"
    )


def stale_demo(work_dir: str | Path) -> str | None:
    """Why ``work_dir`` holds a demo made by an earlier version of the demo set, or None.

    Its results would not be this version's, and its steps would refuse the old folders one
    by one; one line naming the folder is clearer.
    """
    sys.path.insert(0, str(REPO))
    from fma.demo.data import VERSION, earlier_version

    earlier = earlier_version(Path(work_dir) / "data")
    if earlier is None:
        return None
    return (
        f"{work_dir} holds a demo made with version {earlier} of the demo images (this is "
        f"version {VERSION}); delete it (rm -rf {work_dir}) or choose another --work-dir"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data_only:
        sys.path.insert(0, str(REPO))
        from fma.datasets.synthetic import make_synthetic_voc

        voc = make_synthetic_voc(Path(args.work_dir) / "data", args.num_images, args.seed)
        print("synthetic set:", voc)
        return 0
    if not (REPO / "tools" / "reproduce.py").is_file():
        print("error: tools/reproduce.py (the pipeline runner) is not installed", file=sys.stderr)
        return 1
    stale = None if args.data_root else stale_demo(args.work_dir)
    if stale:
        print(f"error: {stale}", file=sys.stderr)
        return 1
    cmd = reproduce_command(args)
    env, note = thread_env(dict(os.environ), args.threads, os.getloadavg()[0], os.cpu_count() or 1)
    if note:
        print(f"[demo] {note}", flush=True)
    print("[demo]", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    from fma.stage_workers import die_with_parent

    # The runner gets SIGTERM if this process dies (even by SIGKILL), and passes it to its step.
    arm = die_with_parent(os.getpid(), signal.SIGTERM)
    rc = subprocess.run(cmd, cwd=REPO, env=env, check=False, preexec_fn=arm).returncode
    took = time.perf_counter() - start
    print(f"[demo] pipeline {'finished' if rc == 0 else f'failed (exit {rc})'} in {took:.0f} s")
    print(f"[demo] report: {Path(args.work_dir) / 'report' / 'index.html'}")
    print(NOTICE)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
