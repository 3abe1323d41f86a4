"""The settings of SAMS (:class:`SamsOptions`) and the checks of its CAM inputs.

:class:`SamsOptions` is the one object that carries the seven SAMS settings from a config's
``seeding`` section (:meth:`SamsOptions.from_section`) through :func:`fma.apis.seeds.run_seeding`
and :func:`fma.apis.sweeps.sweep_gamma` to :func:`fma.seeding.sams.sams_seed`. The algorithm
itself is :mod:`fma.seeding.sams`; method-fma section 9.2 lists the published values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal, get_args

import numpy as np

__all__ = [
    "BG_METHODS",
    "DEFAULT_PRIORITY",
    "EPS",
    "GATHER_METHODS",
    "PRIORITIES",
    "BgMethod",
    "GatherMethod",
    "Priority",
    "SamsOptions",
    "check_cam",
    "check_fg_cls",
    "check_priority",
    "to_numpy",
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
    """The settings of SAMS, validated on construction (see :mod:`fma.seeding.sams`).

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
        object.__setattr__(self, "priority", check_priority(self.priority))
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

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The option names, in declaration order (the SAMS keys of a ``seeding`` section)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_section(
        cls, section: Mapping[str, Any], **overrides: Any
    ) -> tuple[SamsOptions, dict[str, Any]]:
        """Split a config section into the options and its other entries.

        Args:
            section: e.g. a config's ``seeding = dict(...)``; keys named like the fields build
                the options, the others are returned untouched.
            overrides: field values that replace the section's.

        Returns:
            ``(options, rest)``.
        """
        names = cls.field_names()
        values = {k: v for k, v in section.items() if k in names}
        values.update(overrides)
        return cls(**values), {k: v for k, v in section.items() if k not in names}

    @property
    def has_bg_channel(self) -> bool:
        """Whether the CAM must carry a background channel first (``no_bg``, ``alpha_bg``)."""
        return self.bg_method in ("no_bg", "alpha_bg")

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python values (for manifests); ``priority`` as a list."""
        out = dataclasses.asdict(self)
        out["priority"] = list(self.priority)
        return out


def check_priority(priority: Any) -> tuple[str, ...]:
    """The priority keys as a tuple; a single string is one key."""
    prio = (priority,) if isinstance(priority, str) else priority
    try:
        prio = tuple(prio)
    except TypeError:
        raise ValueError(
            f"priority must be a string or a sequence of strings, got {priority!r}"
        ) from None
    if not prio:
        raise ValueError(f"priority must name at least one key of {PRIORITIES}")
    for p in prio:
        if p not in PRIORITIES:
            raise ValueError(f"unknown priority {p!r}; choose keys from {PRIORITIES}")
    return prio


def to_numpy(x: Any) -> np.ndarray:
    """A numpy view of ``x`` (torch tensors detached and moved to the CPU, without torch)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_fg_cls(fg_cls: Any) -> np.ndarray:
    """(P,) int64 dataset class ids 1..254 of the CAM channels; raises ValueError otherwise."""
    fg = to_numpy(fg_cls).reshape(-1)
    if fg.size and not np.issubdtype(fg.dtype, np.integer):
        raise ValueError(f"fg_cls must hold integer class ids, got dtype {fg.dtype}")
    fg = fg.astype(np.int64)
    if fg.size and (fg.min() < 1 or fg.max() > _MAX_LABEL):
        raise ValueError(
            f"fg_cls must hold dataset class ids 1..{_MAX_LABEL} (0 is background), "
            f"got {fg.tolist()}"
        )
    return fg


def check_cam(cam: Any, fg_cls: Any, options: SamsOptions) -> tuple[np.ndarray, np.ndarray]:
    """The CAM as numpy and the checked class ids; raises ValueError when they do not fit.

    Returns:
        cam (P', h, w) numpy array and fg_cls (P,) int64, P' = P (+1 with a background channel).
    """
    fg = check_fg_cls(fg_cls)
    c = to_numpy(cam)
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
