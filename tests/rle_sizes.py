"""The original FMA-WSSS storage of SAM masks, for size comparisons in tests.

FMA-WSSS pickled each image's records with segment-anything's *uncompressed* RLE: column-major
run lengths that start with the zero run. :func:`uncompressed_rle_records` rebuilds such records
from fma's (compressed-RLE) records; only their pickled size is used, nothing is ever unpickled.

Import as ``from rle_sizes import ...`` (``tests/`` is on ``sys.path`` through the rootdir
conftest).
"""

from __future__ import annotations

import pickle

import numpy as np

from fma.io.masks.records import decode_rle


def uncompressed_rle_records(records: list[dict]) -> list[dict]:
    """The same records with ``segmentation`` as ``{"size": [H, W], "counts": [int, ...]}``."""
    out = []
    for rec in records:
        h, w = rec["segmentation"]["size"]
        flat = decode_rle([rec["segmentation"]], h, w)[0].T.reshape(-1)
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        counts = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
        if flat[0]:
            counts = [0, *counts]
        out.append({**rec, "segmentation": {"size": [h, w], "counts": counts}})
    return out


def uncompressed_rle_pickle_size(records: list[dict]) -> int:
    """Bytes of a pickle of :func:`uncompressed_rle_records` (the original's file size)."""
    return len(pickle.dumps(uncompressed_rle_records(records)))
