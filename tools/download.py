"""Fetch the weights a pipeline needs into a folder, verified by sha256, and print their paths.

Names (``--list`` shows them with their state): ``clip`` (OpenAI's CLIP ViT-B/16, stage I),
``sam`` (SAM ViT-H), ``sam_vit_l``, ``sam_vit_b``. The folder is ``--dir``, else
``$FMA_WEIGHTS_DIR``, else ``pretrains/``. A file already there with the published sha256 is
kept; an interrupted download continues from its ``.part`` file on the next run (HTTP Range).
Offline, fetch the file on another machine and install it with ``--from FILE`` (verified, then
hard-linked or copied in); a file copied into the folder under its name is verified as it is.

On success each file's option is printed on stdout (``--clip pretrains/ViT-B-16.pt``), ready for
``tools/demo.py`` / ``tools/reproduce.py``; progress and states go to stderr. Exit codes: 0 all
files in place, 1 a download failed or a file has the wrong sha256, 2 bad arguments.

Examples::

    python tools/download.py clip sam
    python tools/download.py clip --from ~/Downloads/ViT-B-16.pt
    python tools/download.py --list
"""

import fma  # noqa: F401, I001  (first: a missing install fails here, with a plain ImportError)

import argparse
import sys
import urllib.error
from pathlib import Path

from fma.io.atomic import OutputError
from fma.io.download import part_path
from fma.io.manifest import folder_lock
from fma.stage import tool_exit
from fma.weights import WEIGHTS, fetch_weights, get_weights, weights_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"known names: {', '.join(WEIGHTS)}",
    )
    p.add_argument("names", nargs="*", help=f"weights to fetch ({', '.join(WEIGHTS)})")
    p.add_argument(
        "--dir", type=Path, help="weights folder (default: $FMA_WEIGHTS_DIR, else pretrains)"
    )
    p.add_argument(
        "--from", dest="source", type=Path, metavar="FILE",
        help="install this local copy of the one named file instead of downloading it",
    )  # fmt: skip
    p.add_argument("--list", action="store_true", help="show the known weights and their state")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in WEIGHTS]
    if unknown:
        p.error(f"unknown weights {', '.join(unknown)}; known: {', '.join(WEIGHTS)}")
    if not args.names and not args.list:
        p.error(f"name the weights to fetch ({', '.join(WEIGHTS)}), or pass --list")
    if args.source is not None:
        if len(args.names) != 1:
            p.error("--from FILE installs one file: name exactly one weights entry")
        if not args.source.is_file():
            p.error(f"--from {args.source}: file not found")
    args.names = list(dict.fromkeys(args.names))
    return args


def _state(folder: Path, filename: str) -> str:
    path = folder / filename
    if path.is_file():
        return "present"
    part = part_path(path)
    if part.is_file():
        return f"partial ({part.stat().st_size / 2**20:.0f} MiB)"
    return "missing"


def print_list(folder: Path) -> None:
    """The table of known weights and their state in ``folder`` (stdout)."""
    rows = [("name", "file", f"in {folder}", "option", "what")]
    for w in WEIGHTS.values():
        rows.append((w.name, w.filename, _state(folder, w.filename), w.flag, w.note))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(n) for c, n in zip(row[:4], widths, strict=True)) + "  " + row[4])


def fetch_one(name: str, folder: Path, source: Path | None, progress: bool) -> Path | None:
    """Fetch one entry; on failure print one ``error:`` line and return None."""
    weights = get_weights(name)
    try:
        path, how = fetch_weights(weights, folder, source=source, progress=progress)
    except (ValueError, OutputError) as exc:  # another sha256; a folder that cannot be written
        print(f"error: {name}: {exc}", file=sys.stderr)
        return None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        part = part_path(folder / weights.filename)
        kept = f"; {part} is kept and the next run continues it" if part.is_file() else ""
        print(
            f"error: {name}: download of {weights.url} failed ({reason}){kept}. Offline: fetch "
            f"that URL on another machine, then run `python tools/download.py {name} --from "
            "FILE`",
            file=sys.stderr,
        )
        return None
    print(f"{name}: {how} {path} (sha256 verified)", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = weights_dir(args.dir)
    if args.list:
        print_list(folder)
        if not args.names:
            return 0
    done: list[tuple[str, Path]] = []
    failed = 0
    try:
        with folder_lock(folder):
            for name in args.names:
                path = fetch_one(name, folder, args.source, progress=not args.no_progress)
                if path is None:
                    failed += 1
                else:
                    done.append((name, path))
    except KeyboardInterrupt:
        print(
            "\nstopped: a partial download is kept as <file>.part; rerun the same command to "
            "continue it",
            file=sys.stderr,
        )
        return 130
    for name, path in done:
        print(f"{get_weights(name).flag} {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(tool_exit(main))
