"""Seeding benchmarks: SAMS and SEPL on VOC-sized images with 50, 150 and 300 masks.

Run: ``python benchmarks/seeding.py`` (prints one table per method; single process).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sams_bench
import _sepl_bench


def main() -> None:
    print("== SAMS (method-fma 9.1)")
    _sams_bench.main()
    print("\n== SEPL (max_iou_imp2)")
    _sepl_bench.main([])


if __name__ == "__main__":
    main()
