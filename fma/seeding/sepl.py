"""SEPL: SAM-enhanced pseudo labels (Chen, Mai et al., arXiv 2305.05803).

A training-free refinement of a class-aware pseudo label with class-agnostic SAM masks: for every
foreground class present in the pseudo label, the SAM masks that agree with that class's region
are selected and their union is painted with the class; class pixels no SAM mask touches keep the
pseudo label ("trust the CAM where SAM says nothing"); everything else is background.

Published variants (bit-exact with ``merge/{max_iou,max_iou_imp,max_iou_imp2}.py`` of the
official code ``cskyl/SAM_WSSS``). Notation: ``P_c = [label == c]``, ``M_k`` a mask, ``|.|`` a
pixel count, ``I = |M_k & P_c|``.

1. Loop over the classes ``c = 1 .. num_classes - 1`` in ascending order; skip absent classes.
2. The pool ``U`` holds the masks no earlier class has selected.
3. Select ``S_c = {k in U : 2 * I - |M_k| > 0}`` (strictly more than half of the mask inside the
   class, integer test); ``max_iou_imp2`` also selects ``I / |P_c| >= 0.85`` (float division, as
   the official code). A selected mask leaves the pool for later classes.
4. ``R_c = union(M_k, k in S_c)``; ``max_iou_imp`` and ``max_iou_imp2`` add the CAM fallback
   ``P_c - union(M_k, k in U)`` (class pixels no pool mask covers).
5. ``out[R_c] = c``: a later class overwrites an earlier one. Pixels equal to the ignore index
   become background unless a selected mask covers them; the output never holds the ignore index.

| method          | selection                         | CAM fallback |
|-----------------|-----------------------------------|--------------|
| ``max_iou``     | inside > 50 %                     | no           |
| ``max_iou_imp`` | inside > 50 %                     | yes          |
| ``max_iou_imp2``| inside > 50 % or coverage >= 85 % | yes (default)|

Opt-in deviations (off by default; not part of the published method):

* ``keep_ignore=True``: input pixels equal to ``ignore_index`` that no selected mask covers stay
  ``ignore_index`` instead of becoming background.
* ``max_area_ratio=r`` with a published method: a mask with ``|M_k| > r * |P_c|`` cannot be
  selected for class ``c`` (it stays in the pool and still counts as coverage).
* ``method="majority"``: an order-independent assignment; see :func:`refine_pseudo_label`.

Implementation: the (K, H, W) masks are bit-packed once (64 pixels per uint64 word) and
``|M_k|`` comes from popcounts. For each present class, ``|M_k & P_c|`` for all K masks is one
popcount over the word columns where the class has pixels, so the class loop only touches
K-length vectors and (K, words of the class) blocks; every union (selected masks, coverage) is
one OR-reduction over packed rows. Nothing loops over masks or pixels in Python. Peak extra
memory is about K * H * W / 8 bytes plus one image-sized buffer per class. The tools use
:mod:`fma.seeding.sepl_runs`, which gives the same labels from the masks' RLE runs without
decoding them (memory O(runs + H * W)).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "COVER_THRESHOLD",
    "MAJORITY_MAX_AREA_RATIO",
    "METHODS",
    "PUBLISHED_METHODS",
    "refine_pseudo_label",
]

#: Published variants of the official code, in the order of its ``merge/`` folder.
PUBLISHED_METHODS = ("max_iou", "max_iou_imp", "max_iou_imp2")
#: All accepted ``method`` values; ``majority`` is an fma extension.
METHODS = (*PUBLISHED_METHODS, "majority")
#: Coverage threshold of ``max_iou_imp2`` (inclusive): ``|M & P_c| / |P_c| >= 0.85``.
COVER_THRESHOLD = 0.85
#: Area cap used by ``method="majority"`` when ``max_area_ratio`` is None.
MAJORITY_MAX_AREA_RATIO = 2.0

_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount_rows(words: np.ndarray) -> np.ndarray:
    """Number of set bits per row of an (R, W) uint64 array, as (R,) int64."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(words).sum(axis=-1, dtype=np.uint32).astype(np.int64)
    return _POP8[words.view(np.uint8)].sum(axis=-1, dtype=np.int64)


class _Bits(NamedTuple):
    """(R, N) bool rows, bit-packed: pixels [0, N64) in uint64 words, the last N % 64 as bool.

    Packing only the whole words avoids padding packed rows whose byte length is not a
    multiple of 8, which costs several times more than the packing itself.
    """

    head: np.ndarray  # (R, N64 / 64) uint64, bit i of word j = pixel 64 j + i
    tail: np.ndarray  # (R, N - N64) bool

    @classmethod
    def pack(cls, flat: np.ndarray) -> _Bits:
        n64 = flat.shape[1] - flat.shape[1] % 64
        head = np.packbits(flat[:, :n64], axis=1, bitorder="little").view(np.uint64)
        return cls(head, flat[:, n64:])

    def counts(self) -> np.ndarray:
        """(R,) int64 set pixels per row."""
        return _popcount_rows(self.head) + np.count_nonzero(self.tail, axis=1)

    def union(self, select: np.ndarray) -> _Bits:
        """OR of the selected rows, as a one-row :class:`_Bits`."""
        if not select.any():
            head = np.zeros((1, self.head.shape[1]), dtype=np.uint64)
            return _Bits(head, np.zeros((1, self.tail.shape[1]), dtype=bool))
        head = np.bitwise_or.reduce(self.head[select], axis=0, keepdims=True)
        return _Bits(head, self.tail[select].any(axis=0, keepdims=True))

    def unpack(self) -> np.ndarray:
        """(R, N) bool."""
        n64 = self.head.shape[1] * 64
        bits = np.unpackbits(self.head.view(np.uint8), axis=1, count=n64, bitorder="little")
        return np.concatenate([bits.view(bool), self.tail], axis=1)


def _check_inputs(
    label: np.ndarray, masks: np.ndarray, num_classes: int, ignore_index: int
) -> tuple[np.ndarray, np.ndarray]:
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be a (K, H, W) array, got shape {masks.shape}")
    label = check_label(label, masks.shape[1:], num_classes, ignore_index)
    if masks.dtype != bool:
        if not (np.issubdtype(masks.dtype, np.integer) or np.issubdtype(masks.dtype, np.floating)):
            raise ValueError(f"masks must be bool (or 0/1 numbers), got dtype {masks.dtype}")
        masks = masks != 0
    return label, masks


def check_label(
    label: np.ndarray, mask_shape: tuple[int, ...], num_classes: int, ignore_index: int
) -> np.ndarray:
    """Validate a pseudo label against the masks' (H, W); returns it as uint8.

    Raises:
        ValueError: not 2-D, a size other than the masks', a bad class count or ignore index,
            or values outside 0..255.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be an (H, W) array, got shape {label.shape}")
    if tuple(mask_shape) != label.shape:
        raise ValueError(
            f"masks are {mask_shape[0]}x{mask_shape[1]} (HxW) but the pseudo label is "
            f"{label.shape[0]}x{label.shape[1]}; SEPL never resizes, give masks of the label's size"
        )
    if not 2 <= int(num_classes) <= 255:
        raise ValueError(f"num_classes must lie in 2..255, got {num_classes}")
    if not int(num_classes) <= ignore_index <= 255:
        raise ValueError(
            f"ignore_index must lie in {num_classes}..255 (not a class id), got {ignore_index}"
        )
    if not (np.issubdtype(label.dtype, np.integer) or label.dtype == bool):
        raise ValueError(f"label must hold integer class ids, got dtype {label.dtype}")
    if label.dtype != np.uint8 and label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError("label values must lie in 0..255")
    return label.astype(np.uint8, copy=False)


def check_options(method: str, max_area_ratio: float | None) -> None:
    """Raise ValueError for an unknown ``method`` or a ``max_area_ratio`` that is not > 0."""
    if method not in METHODS:
        raise ValueError(f"unknown SEPL method {method!r}; choose one of {', '.join(METHODS)}")
    if max_area_ratio is not None and not max_area_ratio > 0:
        raise ValueError(f"max_area_ratio must be > 0 (or None), got {max_area_ratio}")


def class_counts(
    flat_label: np.ndarray, num_classes: int, ignore_index: int
) -> tuple[np.ndarray, np.ndarray]:
    """(256,) int64 pixel count of every value and the present classes 1..C-1, ascending.

    Raises:
        ValueError: values that are neither classes nor ``ignore_index``.
    """
    counts = np.bincount(flat_label, minlength=256)
    bad = np.flatnonzero(counts[num_classes:] > 0) + num_classes
    bad = bad[bad != ignore_index]
    if bad.size:
        raise ValueError(
            f"label holds values {bad[:10].tolist()} that are neither classes 0..{num_classes - 1} "
            f"nor ignore {ignore_index}; check num_classes"
        )
    return counts, np.flatnonzero(counts[1:num_classes] > 0) + 1


def refine_pseudo_label(
    label: np.ndarray,
    masks: np.ndarray,
    num_classes: int,
    method: str = "max_iou_imp2",
    *,
    keep_ignore: bool = False,
    max_area_ratio: float | None = None,
    ignore_index: int = 255,
) -> np.ndarray:
    """Refine one pseudo label with the SAM masks of its image (SEPL).

    With the defaults the result equals the official ``max_iou_imp2`` merger bit for bit; see
    the module docstring for the published algorithm.

    ``method="majority"`` (fma extension; independent of the mask order and, except for ties, of
    the class order). For each mask ``k`` and present class ``c`` let ``I = |M_k & P_c|``:

    1. ``c`` is a candidate of ``k`` when ``2 * I > |M_k|`` (``c`` is the strict majority
       pseudo label of the mask) or ``I / |P_c| >= 0.85`` (coverage path of ``max_iou_imp2``),
       and ``|M_k| <= max_area_ratio * |P_c|`` (area cap; ``max_area_ratio=None`` uses
       :data:`MAJORITY_MAX_AREA_RATIO` = 2.0, ``math.inf`` disables the cap). Since
       ``2 * I > |M_k|`` implies ``|M_k| < 2 * |P_c|``, a cap of 2 leaves the majority path
       untouched and stops masks holding >= 85 % of a class from flooding more than twice the
       class's area.
    2. Each mask goes to its candidate class with the largest ``I`` (ties: the lower class id),
       or to no class when it has no candidate. Masks are judged independently: no pool.
    3. Where masks of different classes overlap, the pixel takes the class of the smallest
       covering assigned mask (ties in area: the higher class id).
    4. CAM fallback: pixels of ``P_c`` that no mask at all covers keep class ``c``.
    5. Everything else is background (or ignore, with ``keep_ignore``).

    Args:
        label: (H, W) integer pseudo label, 0 = background, 1..num_classes-1 = classes,
            ``ignore_index`` = ignore (treated as no class).
        masks: (K, H, W) bool SAM masks of the same image (K may be 0); 0/1 numbers accepted.
        num_classes: number of classes C including background (21 for VOC, 81 for COCO).
        method: ``max_iou_imp2`` (default, the official default), ``max_iou_imp``, ``max_iou``
            or ``majority``.
        keep_ignore: keep ``ignore_index`` where the input has it and no selected mask covers
            the pixel (deviation from the published method, which writes background there).
        max_area_ratio: masks larger than this times the class area are not selected for that
            class. None: no cap for the published methods (published behaviour), 2.0 for
            ``majority``.
        ignore_index: ignore label of the input (and of the output with ``keep_ignore``).

    Returns:
        (H, W) uint8 refined label with values in 0..C-1 (plus ``ignore_index`` only when
        ``keep_ignore`` is set).

    Raises:
        ValueError: unknown method, shape mismatch, bad dtypes, or label values that are neither
            classes nor ``ignore_index``.
    """
    check_options(method, max_area_ratio)
    label, masks = _check_inputs(label, masks, num_classes, ignore_index)
    h, w = label.shape
    n = h * w
    flat_label = label.reshape(-1)
    counts, present = class_counts(flat_label, num_classes, ignore_index)
    out = np.zeros(n, dtype=np.uint8)
    if present.size:
        bits = _Bits.pack(masks.reshape(masks.shape[0], n))
        classes = _Bits.pack(flat_label[None, :] == present[:, None])
        size = counts[present].astype(np.int64)  # (C',) |P_c|
        if method == "majority":
            ratio = MAJORITY_MAX_AREA_RATIO if max_area_ratio is None else max_area_ratio
            _majority(out, bits, classes, size, present, ratio)
        else:
            _published(out, bits, classes, size, present, method, max_area_ratio)
    if keep_ignore and counts[ignore_index]:
        # An ignore pixel can only receive a class through a selected mask (the CAM fallback
        # covers class pixels only), so "still 0" means "no selected mask covers it".
        out[(flat_label == ignore_index) & (out == 0)] = ignore_index
    return out.reshape(h, w)


class _ClassView(NamedTuple):
    """The mask bits restricted to the words where one class has pixels."""

    inter: np.ndarray  # (K,) int64 |M_k & P_c|
    words: np.ndarray  # (Wc,) int64 indices of the class's nonzero head words
    head: np.ndarray  # (K, Wc) uint64 mask words there
    tail: np.ndarray  # (K, N % 64) bool mask tail pixels


def _class_view(bits: _Bits, classes: _Bits, j: int) -> _ClassView:
    """|M_k & P_c| for all masks, touching only the words where class j has pixels."""
    cls_head = classes.head[j]
    words = np.flatnonzero(cls_head)
    head = bits.head[:, words]
    inter = _popcount_rows(head & cls_head[words])
    inter += np.count_nonzero(bits.tail & classes.tail[j], axis=1)
    return _ClassView(inter, words, head, bits.tail)


def _uncovered(view: _ClassView, classes: _Bits, j: int, pool: np.ndarray) -> _Bits:
    """Pixels of class j that no mask in ``pool`` covers (the CAM fallback), one row."""
    cls_head = classes.head[j]
    head = np.zeros((1, cls_head.shape[0]), dtype=np.uint64)
    tail = classes.tail[j : j + 1].copy()
    if pool.any():
        head[0, view.words] = cls_head[view.words] & ~np.bitwise_or.reduce(view.head[pool], 0)
        tail &= ~view.tail[pool].any(axis=0, keepdims=True)
    else:
        head[0, view.words] = cls_head[view.words]
    return _Bits(head, tail)


def _published(
    out: np.ndarray,
    bits: _Bits,
    classes: _Bits,
    size: np.ndarray,
    present: np.ndarray,
    method: str,
    max_area_ratio: float | None,
) -> None:
    """The ascending class loop of the official mergers, on packed masks; paints ``out``."""
    area = bits.counts()  # (K,) |M_k|
    used = np.zeros(area.shape[0], dtype=bool)
    for j, c in enumerate(present.tolist()):
        avail = ~used
        view = _class_view(bits, classes, j)
        sel = (2 * view.inter - area) > 0
        if method == "max_iou_imp2":
            sel |= (view.inter / size[j]) >= COVER_THRESHOLD  # float64 division, as official
        if max_area_ratio is not None:
            sel &= area <= max_area_ratio * size[j]
        sel &= avail
        region = bits.union(sel).unpack()[0]
        if method != "max_iou":
            region |= _uncovered(view, classes, j, avail).unpack()[0]
        used |= sel
        np.putmask(out, region, c)


def _majority(
    out: np.ndarray,
    bits: _Bits,
    classes: _Bits,
    size: np.ndarray,
    present: np.ndarray,
    max_area_ratio: float,
) -> None:
    """Order-independent assignment (see :func:`refine_pseudo_label`); paints ``out``."""
    area = bits.counts()
    k = area.shape[0]
    inter = np.zeros((k, present.size), dtype=np.int64)
    everything = np.ones(k, dtype=bool)
    for j, c in enumerate(present.tolist()):
        view = _class_view(bits, classes, j)
        inter[:, j] = view.inter
        # CAM fallback: class pixels that no mask at all covers.
        np.putmask(out, _uncovered(view, classes, j, everything).unpack()[0], c)
    chosen_masks = majority_choice(inter, area, size, present, max_area_ratio)
    if chosen_masks is None:
        return
    # Rank 1..S in painting order (0 = uncovered), winner = max rank per pixel.
    idx, cls = chosen_masks
    rank_dtype = np.uint8 if idx.size < 256 else np.uint16
    ranks = np.arange(1, idx.size + 1, dtype=rank_dtype)[:, None]
    chosen = _Bits(bits.head[idx], bits.tail[idx]).unpack()  # (S, N) bool
    winner = (chosen.view(np.uint8).astype(rank_dtype, copy=False) * ranks).max(axis=0)
    hit = winner > 0
    lut = np.concatenate([[0], cls]).astype(np.uint8)
    out[hit] = lut[winner[hit]]


def majority_choice(
    inter: np.ndarray,
    area: np.ndarray,
    size: np.ndarray,
    present: np.ndarray,
    max_area_ratio: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The masks the ``majority`` rule paints, their classes, in painting order.

    Args:
        inter: (K, P) int64 pixels of mask k inside present class j.
        area: (K,) mask areas.
        size: (P,) pixel counts of the present classes.
        present: (P,) the present class ids.
        max_area_ratio: a mask larger than this many times a class's size is not a candidate.

    Returns:
        ``(idx, cls)``: (S,) mask indices and their classes, larger masks first (the smallest
        covering mask is painted last), equal areas with the higher class later; None when no
        mask is a candidate. A mask takes the candidate class it overlaps most (the lowest class
        on ties).
    """
    cand = (2 * inter - area[:, None]) > 0
    cand |= (inter / size[None, :]) >= COVER_THRESHOLD
    cand &= area[:, None] <= max_area_ratio * size[None, :]
    idx = np.flatnonzero(cand.any(axis=1))
    if idx.size == 0:
        return None
    best = np.argmax(np.where(cand, inter, -1), axis=1)  # first (lowest class) on ties
    cls = present[best[idx]]
    order = np.lexsort((cls, -area[idx]))
    return idx[order], cls[order]
