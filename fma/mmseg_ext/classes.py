"""The class count of a stage II dataset, read from its config, and a model sized for it.

The tools call these (through :func:`fma.engine.stage2.adapt_to_dataset`) before the Runner is
built, so that a config's network always has the classes of the data it reads: VOC's 21, COCO's
81, a custom folder's ``classes.txt`` plus background, whatever count the config inherited.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmengine.fileio import list_from_file
from mmseg.registry import DATASETS

from fma.mmseg_ext.datasets import CustomSeedDataset, custom_metainfo

__all__ = ["DatasetClassesError", "dataset_classes", "fit_num_classes"]


class DatasetClassesError(ValueError):
    """A stage II config whose loaders or class weights do not fit the dataset's class count."""


def dataset_classes(dataset: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The class names (background first) of the dataset a loader's ``dataset`` config builds.

    Read from the config, nothing is built: an explicit ``metainfo=dict(classes=...)`` (a tuple
    or a file of names); for :class:`CustomSeedDataset` the folder's ``classes.txt``
    (:func:`custom_metainfo`); otherwise the ``METAINFO`` classes of the registered type (21 for
    ``VOCSeedDataset``, 81 for ``COCOObjectDataset``, mmseg's own datasets likewise). A wrapper
    (``ConcatDataset``, ``RepeatDataset``, ...) answers for its first dataset.

    Returns:
        The names, or None when the type is not registered or declares no classes.

    Raises:
        FileNotFoundError / fma.datasets.checks.DatasetCheckError: a custom folder's missing or
            bad ``classes.txt``.
    """
    metainfo = dataset.get("metainfo")
    if isinstance(metainfo, Mapping) and metainfo.get("classes") is not None:
        classes = metainfo["classes"]
        names = list_from_file(classes) if isinstance(classes, str) else classes
        return tuple(str(c) for c in names)
    inner = dataset.get("datasets")
    if isinstance(inner, list | tuple) and inner and isinstance(inner[0], Mapping):
        return dataset_classes(inner[0])
    if isinstance(dataset.get("dataset"), Mapping):
        return dataset_classes(dataset["dataset"])
    kind = dataset.get("type")
    cls = DATASETS.get(kind) if isinstance(kind, str) else kind
    if not isinstance(cls, type):
        return None
    if issubclass(cls, CustomSeedDataset):
        return tuple(custom_metainfo(dataset.get("data_root", ""))["classes"])
    classes = (getattr(cls, "METAINFO", None) or {}).get("classes")
    return tuple(str(c) for c in classes) if classes else None


def _resized_weights(weights: list, old: int, new: int, where: str) -> list:
    """A head's class-weight list for ``new`` classes.

    The list holds one weight per class, optionally followed by Mask2Former's no-object weight.
    It is read against the head's ``old`` count; when the config already held ``new`` (an
    override) but the list was built for another count, an equal per-class weight followed by
    a different last one is read as per-class weights plus the no-object weight.
    """
    n = len(weights)
    if old != new and n in (old, old + 1):
        per_class, extra = weights[:old], weights[old:]
    elif n in (new, new + 1):
        return weights
    elif n > 1 and len(set(weights[:-1])) == 1 and weights[-1] != weights[0]:
        per_class, extra = weights[:-1], weights[-1:]
    else:
        raise DatasetClassesError(
            f"{where}.class_weight has {n} entries for num_classes={new}; give {new} (one per "
            f"class) or {new + 1} (the no-object weight last), or drop the num_classes override "
            "(the tools size the network for the dataset)"
        )
    if len(set(per_class)) > 1:
        raise DatasetClassesError(
            f"{where}.class_weight holds per-class weights for {len(per_class)} classes and "
            f"cannot be resized to the dataset's {new}; set it for {new} classes with --cfg-options"
        )
    return [per_class[0]] * new + extra


def fit_num_classes(model: Any, num_classes: int) -> set[int]:
    """Set every ``num_classes`` of a model config (in place) and resize its losses' weights.

    A head's ``num_classes`` becomes ``num_classes``; a ``class_weight`` list of one of its losses
    (``loss_cls``, ``loss_decode``, ...) with one equal weight per class, optionally followed by
    Mask2Former's no-object weight, is rebuilt for the new count
    (``[1.0] * 21 + [0.1]`` -> ``[1.0] * 81 + [0.1]``), also when only ``num_classes`` was
    overridden.

    Returns:
        The counts the config held (empty when it names none).

    Raises:
        DatasetClassesError: a weight list of another length, or unequal per-class weights (they
            cannot be carried over to other classes).
    """
    held: set[int] = set()
    nodes = [model]
    while nodes:
        node = nodes.pop()
        if isinstance(node, list | tuple):
            nodes.extend(node)
        if not isinstance(node, dict):
            continue
        nodes.extend(node.values())
        old = node.get("num_classes")
        if not isinstance(old, int) or isinstance(old, bool):
            continue
        held.add(old)
        node["num_classes"] = num_classes
        for key, value in node.items():
            for loss in value if isinstance(value, list | tuple) else [value]:
                weights = loss.get("class_weight") if isinstance(loss, dict) else None
                if isinstance(weights, list | tuple):
                    where = f"{node.get('type', 'model')}.{key}"
                    loss["class_weight"] = _resized_weights(list(weights), old, num_classes, where)
    return held
