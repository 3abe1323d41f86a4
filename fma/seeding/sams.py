"""SAMS: SAM-based seeding of FMA-WSSS (method-fma section 9).

Size (~640 lines): the SAMS algorithm, its options and their checks; one pure module.

Every SAM mask ("quasi-superpixel") takes one label from the CAM scores pooled inside it, and the
masks are painted into a seed map. With the final setting of the method (``norm_first=True``,
``gather="mean"``, ``bg_method="pow"``, ``priority=("level_bigger", "conf_bigger")``):

1. The CAM (P, h, w), at the patch resolution of the 16-aligned image, is upsampled bilinearly
   (``align_corners=False``) to the image size (H, W) of the masks; the small aspect change of
   the 16-alignment is ignored.
2. ``f_c = max(CAM_c, 0)``, then per-class min-max normalisation over the image's pixels
   (eps 1e-7), as the original code does (``cam2score_cuda`` -> ``min_max_norm(..., thresh=0.)``
   in FMA-WSSS ``src/libs/seeding/score.py``, called by ``seed_anns/score_cw.py``, whose comment
   names the clip at 0 alone as the equivalent form). The step is affine per class, so with
   ``gather="mean"`` the mask-level normalisation of step 4 cancels it up to the epsilon and
   only the clip at 0 matters; with ``gather="sum"`` it cancels only when the class's smallest
   clipped pixel is 0 (some pixel has CAM <= 0, as is usual), because the shift is scaled by
   each mask's area.
3. ``a_kc = mean of f_c over the pixels of mask k``.
4. Per-class min-max normalisation across the masks of the image:
   ``a_kc = (a_kc - min_j a_jc) / (max_j a_jc - min_j a_jc + 1e-7)``.
5. Background score ``(1 - max_c a_kc) ** gamma``.
6. Mask label = argmax over (background, classes); confidence = that maximum. Exact ties go to
   the lower column: background first, then the CAM's channel order.
7. Masks are painted in ascending (level, confidence) order, so each pixel takes the label of
   its covering mask of highest level, then highest confidence. Masks with equal keys are painted
   in file order: **the later mask in the file wins**. Pixels no mask covers are background.
   The seed holds no ignore label (255).

``norm_first=False`` pools the raw (signed) upsampled CAM first and then applies ``max(., 0)``
and the across-mask normalisation, as the original code does.

Background methods (``bg_method``):

* ``"pow"``: ``(1 - max_c a_kc) ** gamma`` (the final setting).
* ``"thresh"``: a constant background score ``bg_thresh``; a mask is foreground when its best
  class score exceeds it.
* ``"no_bg"``: the CAM carries its own background channel first, ``cam`` is (1 + P, h, w) for
  ``P = len(fg_cls)`` classes; channel 0 is normalised like the classes and competes directly.
* ``"alpha_bg"``: as ``"no_bg"``, with the normalised background channel raised to ``alpha``.

Painting priorities (``priority``, most significant first): ``"level_bigger"``,
``"level_smaller"``, ``"conf_bigger"``, ``"conf_smaller"``, ``"area_bigger"``,
``"area_smaller"``; "bigger" means a bigger value is painted later and so wins.

Implementation: one pass over the dense (K, H, W) bool masks lists the covered pixels of every
mask (a sparse mask-by-pixel incidence, as flat indices). The mask sums are segment sums of the
gathered scores, which equal the (K, H*W) x (H*W, P) product with the dense masks without
building a float copy of them; the painting takes, for every pixel, the highest painting rank
among its covering masks with one scatter-max. Nothing loops over masks or pixels in Python.
Masks with no pixel take no part in the normalisation, get label 0 and paint nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np

from fma.io.cams import CamRecord
from fma.io.masks.records import SamMasks
from fma.io.masks.runs import MaskRuns
from fma.seeding.upsample import bilinear_resize

__all__ = [
    "BG_METHODS",
    "DEFAULT_PRIORITY",
    "EPS",
    "GATHER_METHODS",
    "PRIORITIES",
    "BgMethod",
    "GatherMethod",
    "MaskIndex",
    "Priority",
    "SamsOptions",
    "SamsResult",
    "add_background",
    "index_masks",
    "label_masks",
    "mask_fg_scores",
    "paint_masks",
    "painting_order",
    "sams_seed",
    "seed_from_scores",
    "seeds_from_masks",
    "top_mask",
    "upsample_cam",
]

BgMethod = Literal["pow", "thresh", "no_bg", "alpha_bg"]
GatherMethod = Literal["mean", "sum"]
Priority = Literal[
    "level_bigger", "level_smaller", "conf_bigger", "conf_smaller", "area_bigger", "area_smaller"
]

#: Accepted values of ``bg_method``, ``gather`` and the entries of ``priority``.
BG_METHODS: tuple[str, ...] = get_args(BgMethod)
GATHER_METHODS: tuple[str, ...] = get_args(GatherMethod)
PRIORITIES: tuple[str, ...] = get_args(Priority)
#: Painting priority of the final FMA-WSSS setting.
DEFAULT_PRIORITY: tuple[str, ...] = ("level_bigger", "conf_bigger")
#: Epsilon of every min-max normalisation.
EPS = 1e-7

_MAX_LABEL = 254  # seeds are uint8 and never hold the ignore label 255


def _check_number(name: str, value: Any, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite number{' > 0' if positive else ''}, got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class SamsOptions:
    """The settings of SAMS, validated on construction (see the module docstring).

    Attributes:
        gamma: background exponent of ``bg_method="pow"`` (required there), > 0.
        norm_first: True: ReLU and pixel-level normalisation before pooling (final setting);
            False: pool the raw CAM, then ReLU and normalise.
        bg_method: ``"pow"``, ``"thresh"``, ``"no_bg"`` or ``"alpha_bg"``.
        bg_thresh: constant background score of ``bg_method="thresh"`` (required there).
        alpha: exponent of the background channel for ``bg_method="alpha_bg"`` (required), > 0.
        priority: painting priority keys, most significant first (a str or a sequence of str).
        gather: ``"mean"`` (final setting) or ``"sum"`` of the scores inside a mask.

    Raises:
        ValueError: an unknown method or priority, or a missing or invalid number; the message
            lists the accepted values.
    """

    gamma: float | None = None
    norm_first: bool = True
    bg_method: BgMethod = "pow"
    bg_thresh: float | None = None
    alpha: float | None = None
    priority: tuple[Priority, ...] = DEFAULT_PRIORITY  # type: ignore[assignment]
    gather: GatherMethod = "mean"

    def __post_init__(self) -> None:
        if not isinstance(self.norm_first, (bool, np.bool_)):
            raise ValueError(f"norm_first must be True or False, got {self.norm_first!r}")
        object.__setattr__(self, "norm_first", bool(self.norm_first))
        if self.bg_method not in BG_METHODS:
            raise ValueError(f"unknown bg_method {self.bg_method!r}; choose one of {BG_METHODS}")
        if self.gather not in GATHER_METHODS:
            raise ValueError(f"unknown gather {self.gather!r}; choose one of {GATHER_METHODS}")
        prio = (self.priority,) if isinstance(self.priority, str) else self.priority
        try:
            prio = tuple(prio)
        except TypeError:
            raise ValueError(
                f"priority must be a string or a sequence of strings, got {self.priority!r}"
            ) from None
        if not prio:
            raise ValueError(f"priority must name at least one key of {PRIORITIES}")
        for p in prio:
            if p not in PRIORITIES:
                raise ValueError(f"unknown priority {p!r}; choose keys from {PRIORITIES}")
        object.__setattr__(self, "priority", prio)
        need = {"pow": "gamma", "thresh": "bg_thresh", "alpha_bg": "alpha"}.get(self.bg_method)
        for name in ("gamma", "bg_thresh", "alpha"):
            value = getattr(self, name)
            if value is None:
                if name == need:
                    raise ValueError(
                        f"bg_method={self.bg_method!r} needs {name}; set it in the seeding "
                        "config (method-fma 9.2 lists the values)"
                    )
                continue
            object.__setattr__(self, name, _check_number(name, value, positive=name != "bg_thresh"))

    @property
    def has_bg_channel(self) -> bool:
        """Whether the CAM must carry a background channel first (``no_bg``, ``alpha_bg``)."""
        return self.bg_method in ("no_bg", "alpha_bg")

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python values (for manifests); ``priority`` as a list."""
        out = dataclasses.asdict(self)
        out["priority"] = list(self.priority)
        return out


@dataclasses.dataclass(frozen=True)
class MaskIndex:
    """Sparse incidence of K masks over the H*W pixels of an image, from :func:`index_masks`.

    Attributes:
        shape: (H, W) image size.
        rows: (nnz,) int32 mask index of every (mask, pixel) pair, ascending.
        cols: (nnz,) int32 row-major flat pixel index, ascending within each mask.
        areas: (K,) int64 pixel count of every mask.
        starts: (K,) int64 offset of each mask's first pair in ``rows``/``cols``.
    """

    shape: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray
    areas: np.ndarray
    starts: np.ndarray

    def __len__(self) -> int:
        return int(self.areas.shape[0])


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        return x.detach().cpu().numpy()
    return np.asarray(x)


def index_masks(masks: Any) -> MaskIndex:
    """List the pixels of every mask: one pass over the dense masks.

    Args:
        masks: (K, H, W) bool masks (numpy or torch; integer arrays count non-zero as inside).

    Returns:
        :class:`MaskIndex`.
    """
    m = _to_numpy(masks)
    if m.ndim != 3:
        raise ValueError(f"masks must be (K, H, W), got shape {m.shape}")
    if m.dtype != np.bool_:
        m = m != 0
    K, H, W = m.shape
    N = H * W
    if N >= 2**31:
        raise ValueError(f"image of {H}x{W} pixels is too large for int32 pixel indices")
    flat = np.flatnonzero(m.reshape(K, N))
    rows, cols = np.divmod(flat, N)
    areas = np.bincount(rows, minlength=K).astype(np.int64)
    starts = np.zeros(K, dtype=np.int64)
    np.cumsum(areas[:-1], out=starts[1:])
    return MaskIndex((H, W), rows.astype(np.int32), cols.astype(np.int32), areas, starts)


def upsample_cam(cam: Any, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (``align_corners=False``) resize of a CAM to the image size.

    The numbers of ``F.interpolate`` on the CPU, computed without torch
    (:func:`fma.seeding.upsample.bilinear_resize`).

    Args:
        cam: (P, h, w) float CAM (numpy or torch, any float dtype).
        size: target (H, W).

    Returns:
        (P, H, W) float32 numpy array (a float32 copy when already at that size).
    """
    c = _to_numpy(cam)
    if c.ndim != 3:
        raise ValueError(f"cam must be (P, h, w), got shape {c.shape}")
    H, W = int(size[0]), int(size[1])
    c = np.ascontiguousarray(c, dtype=np.float32)
    if c.shape[1:] == (H, W) or c.shape[0] == 0:
        return np.zeros((0, H, W), np.float32) if c.shape[0] == 0 else c.copy()
    return bilinear_resize(c, (H, W))


def _min_max(
    x: np.ndarray, axis: int, valid: np.ndarray | None = None, *, overwrite: bool = False
) -> np.ndarray:
    """``max(x, 0)`` then ``(x - min) / (max - min + EPS)`` along ``axis`` over ``valid`` rows
    (into ``x`` itself with ``overwrite``, for a caller that no longer needs it)."""
    x = np.maximum(x, x.dtype.type(0), out=x if overwrite else None)
    ref = x if valid is None else x[valid]
    if ref.shape[axis] == 0:
        return np.zeros_like(x)
    lo = ref.min(axis=axis, keepdims=True)
    hi = ref.max(axis=axis, keepdims=True)
    # In place on the clipped copy: the same two operations per element as
    # (x - lo) / (hi - lo + EPS), without two more arrays of x's size.
    out = np.subtract(x, lo, out=x)
    np.divide(out, hi - lo + x.dtype.type(EPS), out=out)
    if valid is not None:
        out[~valid] = 0
    return out


def mask_fg_scores(
    cam: Any, index: MaskIndex, *, norm_first: bool = True, gather: GatherMethod = "mean"
) -> np.ndarray:
    """Steps 1-4: normalised class scores of every mask.

    Args:
        cam: (P, h, w) CAM (channel 0 is the background for ``no_bg``/``alpha_bg``).
        index: the image's masks (:func:`index_masks`), which fix the size (H, W).
        norm_first: see :class:`SamsOptions`.
        gather: ``"mean"`` or ``"sum"``.

    Returns:
        (K, P) float64 scores in [0, 1); rows of empty masks are 0.
    """
    if gather not in GATHER_METHODS:
        raise ValueError(f"unknown gather {gather!r}; choose one of {GATHER_METHODS}")
    H, W = index.shape
    score = upsample_cam(cam, (H, W)).reshape(-1, H * W)  # (P, N) float32
    P, K = score.shape[0], len(index)
    if norm_first:
        score = _min_max(score, axis=1)
    pooled = np.zeros((K, P), dtype=np.float64)
    valid = index.areas > 0
    if P and index.cols.size:
        gathered = score[:, index.cols]  # (P, nnz) float32
        sums = np.add.reduceat(gathered, index.starts[valid], axis=1, dtype=np.float64)
        pooled[valid] = sums.T
    if gather == "mean":
        pooled[valid] /= index.areas[valid, None]
    return _min_max(pooled, axis=0, valid=valid)


def add_background(
    fg_score: np.ndarray,
    bg_method: BgMethod = "pow",
    *,
    gamma: float | None = None,
    bg_thresh: float | None = None,
    alpha: float | None = None,
) -> np.ndarray:
    """Step 5: the (K, 1 + P) score table whose column 0 is the background.

    Args:
        fg_score: (K, P) normalised scores from :func:`mask_fg_scores`; for ``no_bg`` and
            ``alpha_bg`` column 0 already is the background channel.
        bg_method, gamma, bg_thresh, alpha: see :class:`SamsOptions`.

    Returns:
        (K, 1 + P) float64 for ``pow``/``thresh``; (K, P) for ``no_bg``/``alpha_bg``.
    """
    opts = SamsOptions(gamma=gamma, bg_method=bg_method, bg_thresh=bg_thresh, alpha=alpha)
    fg = np.asarray(fg_score, dtype=np.float64)
    if fg.ndim != 2:
        raise ValueError(f"fg_score must be (K, P), got shape {fg.shape}")
    if opts.bg_method == "pow":
        top = fg.max(axis=1) if fg.shape[1] else np.zeros(fg.shape[0])
        bg = np.power(1.0 - top, opts.gamma)
    elif opts.bg_method == "thresh":
        bg = np.full(fg.shape[0], opts.bg_thresh)
    else:
        if fg.shape[1] == 0:
            raise ValueError(f"bg_method={opts.bg_method!r} needs a background channel 0")
        if opts.bg_method == "alpha_bg":
            fg = fg.copy()
            fg[:, 0] = np.power(fg[:, 0], opts.alpha)
        return fg
    return np.concatenate([bg[:, None], fg], axis=1)


def label_masks(scores: np.ndarray, fg_cls: Any) -> tuple[np.ndarray, np.ndarray]:
    """Step 6: label and confidence of every mask.

    Args:
        scores: (K, 1 + P) table with the background in column 0 (:func:`add_background`).
        fg_cls: (P,) dataset class ids of columns 1..P.

    Returns:
        labels (K,) uint8 (0 = background) and confidences (K,) float64. Ties go to the lower
        column.
    """
    fg = _check_fg_cls(fg_cls)
    if scores.ndim != 2 or scores.shape[1] != fg.shape[0] + 1:
        raise ValueError(
            f"score table {scores.shape} does not match {fg.shape[0]} classes plus background"
        )
    lut = np.concatenate([[0], fg]).astype(np.uint8)
    idx = np.argmax(scores, axis=1) if scores.shape[0] else np.zeros(0, np.int64)
    conf = scores[np.arange(scores.shape[0]), idx]
    return lut[idx], conf.astype(np.float64)


def painting_order(
    priority: str | Sequence[str],
    *,
    levels: np.ndarray | None = None,
    conf: np.ndarray | None = None,
    areas: np.ndarray | None = None,
) -> np.ndarray:
    """Step 7a: the order in which masks are painted (the last painted wins).

    Args:
        priority: keys, most significant first (see :data:`PRIORITIES`).
        levels: (K,) SAM levels (needed by ``level_*``).
        conf: (K,) confidences (needed by ``conf_*``).
        areas: (K,) pixel counts (needed by ``area_*``).

    Returns:
        (K,) int64 mask indices in ascending painting order. Masks equal in every key keep their
        file order, so the later one is painted later and wins.
    """
    prio = SamsOptions(gamma=1.0, priority=priority).priority  # type: ignore[arg-type]
    given = {"level": levels, "conf": conf, "area": areas}
    sizes = {k: np.asarray(v).reshape(-1).shape[0] for k, v in given.items() if v is not None}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"levels, conf and areas differ in length: {sizes}")
    K = next(iter(sizes.values()), 0)
    keys = []
    for p in prio:
        name, direction = p.split("_")
        value = given[name]
        if value is None:
            raise ValueError(f"priority {p!r} needs the mask {name}s")
        v = np.asarray(value, dtype=np.float64).reshape(-1)
        keys.append(v if direction == "bigger" else -v)
    # np.lexsort sorts by the last key first; the mask index makes the order total.
    return np.lexsort((np.arange(K), *reversed(keys))).astype(np.int64)


def _winner_rank(index: MaskIndex, order: np.ndarray) -> np.ndarray:
    """(H*W,) int32: 1 + position in ``order`` of the last-painted mask covering each pixel."""
    K = len(index)
    order = np.asarray(order, dtype=np.int64).reshape(-1)
    if order.shape[0] != K or (K and not np.array_equal(np.sort(order), np.arange(K))):
        raise ValueError(f"order must be a permutation of the {K} masks")
    rank = np.empty(K, dtype=np.int32)
    rank[order] = np.arange(1, K + 1, dtype=np.int32)
    H, W = index.shape
    win = np.zeros(H * W, dtype=np.int32)
    if index.cols.size:
        np.maximum.at(win, index.cols, rank[index.rows])
    return win


def top_mask(index: MaskIndex, order: np.ndarray) -> np.ndarray:
    """Index of the covering mask painted last at every pixel.

    Args:
        index: the masks (:func:`index_masks`).
        order: (K,) painting order (:func:`painting_order`).

    Returns:
        (H, W) int64 mask index, -1 where no mask covers the pixel.
    """
    lut = np.concatenate([[-1], np.asarray(order, dtype=np.int64)])
    return lut[_winner_rank(index, order)].reshape(index.shape)


def paint_masks(index: MaskIndex, labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Step 7b: paint the mask labels in ``order``; uncovered pixels are 0.

    Args:
        index: the masks (:func:`index_masks`).
        labels: (K,) uint8 mask labels.
        order: (K,) painting order.

    Returns:
        (H, W) uint8 label map.
    """
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != len(index):
        raise ValueError(f"{labels.shape[0]} labels for {len(index)} masks")
    lut = np.zeros(len(index) + 1, dtype=np.uint8)
    lut[1:] = labels[np.asarray(order, dtype=np.int64)]
    return lut[_winner_rank(index, order)].reshape(index.shape)


@dataclasses.dataclass
class SamsResult:
    """Output of SAMS for one image.

    Attributes:
        seed: (H, W) uint8 label map, 0 = background, no 255.
        labels: (K,) uint8 label of every mask (file order).
        conf: (K,) float64 confidence of every mask.
        fg_score: (K, P) float64 normalised class scores (steps 1-4).
        order: (K,) int64 painting order (first painted first; the last wins).
    """

    seed: np.ndarray
    labels: np.ndarray
    conf: np.ndarray
    fg_score: np.ndarray
    order: np.ndarray


def _check_fg_cls(fg_cls: Any) -> np.ndarray:
    fg = _to_numpy(fg_cls).reshape(-1)
    if fg.size and not np.issubdtype(fg.dtype, np.integer):
        raise ValueError(f"fg_cls must hold integer class ids, got dtype {fg.dtype}")
    fg = fg.astype(np.int64)
    if fg.size and (fg.min() < 1 or fg.max() > _MAX_LABEL):
        raise ValueError(
            f"fg_cls must hold dataset class ids 1..{_MAX_LABEL} (0 is background), "
            f"got {fg.tolist()}"
        )
    return fg


def seed_from_scores(
    index: MaskIndex,
    fg_score: np.ndarray,
    fg_cls: Any,
    options: SamsOptions,
    *,
    levels: np.ndarray | None = None,
) -> SamsResult:
    """Steps 5-7 from the normalised scores of :func:`mask_fg_scores`.

    Scores do not depend on ``gamma``, ``bg_method`` or ``priority``, so a sweep over those
    computes them once per image.

    Args:
        index: the masks.
        fg_score: (K, P) scores (P = len(fg_cls), plus 1 for a background channel).
        fg_cls: (P,) dataset class ids.
        options: :class:`SamsOptions`.
        levels: (K,) SAM levels; None means unknown (all equal).

    Returns:
        :class:`SamsResult`.
    """
    labels, conf, order = label_and_order(fg_score, fg_cls, options, index.areas, levels)
    seed = paint_masks(index, labels, order)
    return SamsResult(seed, labels, conf, fg_score, order)


def label_and_order(
    fg_score: np.ndarray,
    fg_cls: Any,
    options: SamsOptions,
    areas: np.ndarray,
    levels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 5-6 for K masks, whatever their representation: background score, each mask's
    label and confidence (empty masks -> background), and the painting order.

    Args:
        fg_score: (K, P) scores of :func:`mask_fg_scores` (P = len(fg_cls), +1 background).
        fg_cls: (P,) dataset class ids.
        options: :class:`SamsOptions`.
        areas: (K,) mask areas.
        levels: (K,) SAM levels; None means unknown (all equal).

    Returns:
        ``(labels, conf, order)``: (K,) class ids, (K,) confidences, mask indices in painting
        order (painted first to last).
    """
    K = areas.shape[0]
    fg = _check_fg_cls(fg_cls)
    want = fg.shape[0] + int(options.has_bg_channel)
    if fg_score.shape != (K, want):
        raise ValueError(f"fg_score has shape {fg_score.shape}, expected {(K, want)}")
    lv = np.full(K, -1, np.int64) if levels is None else np.asarray(levels).reshape(-1)
    if lv.shape[0] != K:
        raise ValueError(f"{lv.shape[0]} levels for {K} masks")
    scores = add_background(
        fg_score, options.bg_method, gamma=options.gamma, bg_thresh=options.bg_thresh,
        alpha=options.alpha,
    )  # fmt: skip
    labels, conf = label_masks(scores, fg)
    labels[areas == 0] = 0
    order = painting_order(options.priority, levels=lv, conf=conf, areas=areas)
    return labels, conf, order


def seeds_from_masks(
    masks: Any,
    cam: Any,
    fg_cls: Any,
    options: SamsOptions | None = None,
    *,
    levels: Any = None,
    gamma: float | None = None,
    norm_first: bool = True,
    bg_method: BgMethod = "pow",
    bg_thresh: float | None = None,
    alpha: float | None = None,
    priority: str | Sequence[str] = DEFAULT_PRIORITY,
    gather: GatherMethod = "mean",
) -> SamsResult:
    """SAMS seed of one image from arrays.

    Args:
        masks: (K, H, W) bool SAM masks at the image's original size (file order).
        cam: (P, h, w) float CAM at any resolution (upsampled to (H, W)); (1 + P, h, w) with a
            background channel first for ``bg_method`` ``no_bg``/``alpha_bg``.
        fg_cls: (P,) int dataset class ids (1..254) of the CAM's class channels.
        levels: (K,) int SAM levels (0 sub-part, 1 part, 2 whole); None: all unknown.
        options: a :class:`SamsOptions`; without it the keyword options below build one.
        gamma, norm_first, bg_method, bg_thresh, alpha, priority, gather: see
            :class:`SamsOptions` (only without ``options``).

    Returns:
        :class:`SamsResult`; ``seed`` is (H, W) uint8 without 255.

    Raises:
        ValueError: invalid options or inconsistent shapes.
    """
    given = dict(gamma=gamma, norm_first=norm_first, bg_method=bg_method, bg_thresh=bg_thresh,
                 alpha=alpha, priority=priority, gather=gather)  # fmt: skip
    if options is None:
        options = SamsOptions(**given)  # type: ignore[arg-type]
    else:
        defaults = seeds_from_masks.__kwdefaults__
        changed = sorted(k for k, v in given.items() if v != defaults[k])
        if changed:
            raise ValueError(f"give either options= or keyword options, not both ({changed})")
    return _run(index_masks(masks), cam, fg_cls, levels, options)


def sams_seed(cam: CamRecord, masks: SamMasks | MaskRuns, options: SamsOptions) -> SamsResult:
    """SAMS seed of one image from its loaded CAM record and SAM masks.

    Args:
        cam: the image's :class:`~fma.io.cams.CamRecord` (``fg_cls`` dataset ids).
        masks: the image's masks at its original size: decoded
            (:class:`~fma.io.masks.records.SamMasks`) or as runs
            (:class:`~fma.io.masks.runs.MaskRuns`, computed by
            :func:`fma.seeding.sams_runs.sams_seed_runs` without decoding them).
        options: :class:`SamsOptions`.

    Returns:
        :class:`SamsResult`.

    Raises:
        ValueError: the CAM's ``ori_size`` differs from the mask size, or other inconsistencies.
    """
    if isinstance(masks, MaskRuns):
        from fma.seeding.sams_runs import sams_seed_runs

        return sams_seed_runs(cam, masks, options)
    if cam.ori_size is not None and tuple(cam.ori_size) != masks.shape:
        raise ValueError(
            f"CAM is for an image of size {tuple(cam.ori_size)}, masks are {masks.shape}; "
            "the CAM and mask folders belong to different images or resizings"
        )
    return _run(index_masks(masks.masks), cam.cam, cam.fg_cls, masks.levels, options)


def _run(index: MaskIndex, cam: Any, fg_cls: Any, levels: Any, options: SamsOptions) -> SamsResult:
    c, fg = check_cam(cam, fg_cls, options)
    score = mask_fg_scores(c, index, norm_first=options.norm_first, gather=options.gather)
    lv = None if levels is None else _to_numpy(levels)
    return seed_from_scores(index, score, fg, options, levels=lv)


def check_cam(cam: Any, fg_cls: Any, options: SamsOptions) -> tuple[np.ndarray, np.ndarray]:
    """The CAM as numpy and the checked class ids; raises ValueError when they do not fit.

    Returns:
        cam (P', h, w) numpy array and fg_cls (P,) int64, P' = P (+1 with a background channel).
    """
    fg = _check_fg_cls(fg_cls)
    c = _to_numpy(cam)
    want = fg.shape[0] + int(options.has_bg_channel)
    if c.ndim != 3 or c.shape[0] != want:
        extra = (
            " (a background channel first, then one per class)" if options.has_bg_channel else ""
        )
        raise ValueError(
            f"cam of shape {c.shape} does not fit {fg.shape[0]} classes with "
            f"bg_method={options.bg_method!r}: expected ({want}, h, w){extra}"
        )
    return c, fg
