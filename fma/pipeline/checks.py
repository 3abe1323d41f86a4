"""Checks a pipeline runs before its first step, ``--dry-run`` included.

A pipeline config may list ``checks = [dict(type="custom_dataset", root="{data_root}")]``; the
arguments take ``{var}`` placeholders like the steps. A check returns every problem it finds
(the run stops before anything is computed, with all of them listed), notes to print, and
values for the vars the config sets to ``"auto"`` (e.g. whether the folder has ground truth,
which switches the evaluation steps on or off).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

__all__ = ["CHECKS", "CheckResult", "check_custom_dataset", "check_dataset"]

_PREPARE = {
    "voc12": "python tools/prepare_voc.py {root} --sbd SBD_ROOT (docs/datasets.md)",
    "coco14": "python tools/prepare_coco.py --ann instances_<split>2014.json --split <split> "
    "--root {root} (docs/datasets.md)",
}


@dataclasses.dataclass
class CheckResult:
    """What a check found: problems (each naming its file), notes, values of ``auto`` vars."""

    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    derived: dict[str, str] = dataclasses.field(default_factory=dict)
    images: int | None = None  # images of the training split, for the preflight's plan


def check_custom_dataset(root: str) -> CheckResult:
    """Check a custom dataset folder the way every stage will read it.

    Runs :func:`fma.datasets.custom.load_custom_dataset` on split ``all`` (and on ``train``
    and ``val`` when ``splits/`` has them) and reads the class and prompt names. Derived vars:

    * ``train_split``: ``train`` with ``splits/train.txt``, else ``all`` (prompts, seeds and
      stage II training use it);
    * ``seed_eval``: ``true`` when ``ground_truth/`` holds a map for every image of
      ``train_split`` (the seeds are scored there);
    * ``stage2_eval``: ``true`` with ``splits/val.txt`` and a map for each of its images.

    Missing ground truth is a note, not a problem: those evaluations are switched off.
    """
    from fma.datasets.checks import DatasetCheckError
    from fma.datasets.custom import custom_dataset_meta, load_custom_dataset

    folder = Path(root).expanduser()
    result = CheckResult()
    if not folder.is_dir():
        result.problems.append(f"{folder}: dataset folder not found (--data-root)")
        return result
    needed = {
        "images": "the photos, ROOT/images/<id>.jpg",
        "classes.txt": "the foreground class names, one per line",
    }
    for name, what in needed.items():
        if not (folder / name).exists():
            result.problems.append(f"{folder / name}: missing ({what})")
    if not (folder / "labels.csv").is_file() and not (folder / "labels.json").is_file():
        result.problems.append(f"{folder}: no labels.csv or labels.json (image-level tags)")
    if result.problems:
        return result
    try:
        custom_dataset_meta(folder)
    except DatasetCheckError as exc:  # the label file cannot be read without the classes
        where = folder / "classes.txt"
        result.problems += [
            p if p.startswith(str(folder)) else f"{where}: {p}" for p in exc.problems
        ]
        result.problems += _id_problems(folder)
        return result
    splits = ["all"] + [s for s in ("train", "val") if (folder / "splits" / f"{s}.txt").is_file()]
    loaded = {}
    for split in splits:
        try:
            loaded[split] = load_custom_dataset(folder, split)
        except DatasetCheckError as exc:
            result.problems += [p for p in exc.problems if p not in result.problems]
        except FileNotFoundError as exc:
            result.problems.append(str(exc))
    if result.problems:
        return result
    train_split = "train" if "train" in loaded else "all"
    gt = folder / "ground_truth"

    def covered(split: str) -> bool:
        ids = loaded[split].image_ids
        missing = [i for i in ids if not (gt / f"{i}.png").is_file()]
        if missing and gt.is_dir():
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            result.notes.append(f"{gt}: no <id>.png for {len(missing)} of the {len(ids)} images "
                                f"of split {split!r} ({shown})")  # fmt: skip
        return gt.is_dir() and not missing

    seed_eval = covered(train_split)
    stage2_eval = "val" in loaded and covered("val")
    if not gt.is_dir():
        result.notes.append(f"{folder}: no ground_truth/ folder; seeds and the segmenter are "
                            "made but not evaluated")  # fmt: skip
    elif not seed_eval:
        result.notes.append(f"the seeds are not evaluated (split {train_split!r} lacks ground "
                            "truth)")  # fmt: skip
    if gt.is_dir() and not stage2_eval:
        result.notes.append("stage II is not evaluated (it needs splits/val.txt and ground truth "
                            "for those images)")  # fmt: skip
    if train_split == "all" and "val" in loaded:
        result.notes.append(f"{folder}: no splits/train.txt, so the val images are trained on "
                            "too (with their image-level tags); list the others in "
                            "splits/train.txt to keep them apart")  # fmt: skip
    n, c = len(loaded[train_split].image_ids), len(loaded["all"].class_names) - 1
    result.notes.append(f"{folder}: {c} classes; training on {n} images (split {train_split!r})")
    result.derived = {
        "train_split": train_split,
        "seed_eval": "true" if seed_eval else "false",
        "stage2_eval": "true" if stage2_eval else "false",
    }
    result.images = n
    return result


def _id_problems(folder: Path) -> list[str]:
    """Label rows without an image and images without a label row, by id only (used when the
    class list is broken, so that these problems are reported in the same run). The label file
    is read by :func:`fma.datasets.custom_labels.read_image_labels_checked` without classes: its tag
    problems are left to the run after ``classes.txt`` is fixed."""
    from fma.datasets.custom_labels import read_image_labels_checked
    from fma.datasets.labels import ImageLabelsError
    from fma.datasets.layout import IMAGE_SUFFIXES

    images = {p.stem for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    path = folder / "labels.csv"
    if not path.is_file():
        path = folder / "labels.json"
    try:
        labelled = set(read_image_labels_checked(path, ())[0])
    except (OSError, ImageLabelsError):
        return []  # unreadable without the classes; the next run names the file's problems
    out = [f"{path}: labels for {i!r} but no image in {folder / 'images'}"
           for i in sorted(labelled - images)]  # fmt: skip
    out += [f"{folder / 'images'}: {i} has no image-level labels in {path.name}"
            for i in sorted(images - labelled)]  # fmt: skip
    return out


def _names(csv: str) -> list[str]:
    return list(dict.fromkeys(x.strip() for x in csv.split(",") if x.strip()))


def _shown(ids: list[str]) -> str:
    return ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")


def _report_missing(
    result: CheckResult,
    where: Path,
    what: str,
    split: str,
    ids: list[str],
    have: set[str],
    tail: str,
) -> None:
    """One problem naming how many of ``ids`` have no ``what`` in ``where`` (the first few)."""
    missing = [i for i in ids if i not in have]
    if missing:
        result.problems.append(f"{where}: no {what} for {len(missing)} of the {len(ids)} ids of "
                               f"{split!r} ({_shown(missing)}){tail}")  # fmt: skip


def check_dataset(
    dataset: str, root: str, splits: str, labels: str = "", ground_truth: str = ""
) -> CheckResult:
    """Check a VOC or COCO root as the steps will read it, without opening any image.

    Args:
        dataset: ``voc12`` or ``coco14``.
        root: the data root (``--data-root``).
        splits: comma-separated splits whose list file and images must exist.
        labels: splits that need image-level labels (``cls_labels/<split>.json``, every id).
        ground_truth: splits that need a ground-truth PNG for every id (evaluations).

    Returns:
        Every missing folder, list, image, label or ground-truth file (counted, the first few
        named), with the command that makes it; notes with the image counts.
    """
    from fma.datasets.labels import ImageLabelsError, load_image_labels
    from fma.datasets.layout import DatasetLayout
    from fma.datasets.meta import SPLIT_SIZES

    layout = DatasetLayout.of(dataset, root)
    result = CheckResult()
    fix = _PREPARE.get(layout.dataset, "").format(root=root)
    if not layout.root.is_dir():
        result.problems.append(
            f"{layout.root}: data root not found (--data-root); make it with {fix}"
        )
        return result
    images = layout.images_dir(_names(splits)[0] if _names(splits) else "train")
    if layout.dataset == "voc12" and not images.is_dir():
        result.problems.append(
            f"{layout.root}: not a VOC2012 folder (no JPEGImages/): --data-root must point to "
            "VOCdevkit/VOC2012 of the VOC 2012 trainval archive (docs/datasets.md)"
        )
        return result
    listed: dict[str, list[str]] = {}
    for split in dict.fromkeys(_names(splits) + _names(labels) + _names(ground_truth)):
        path = layout.split_file(split)
        if not path.is_file():
            hint = layout.split_hint(split) or f"; make it with {fix}"
            result.problems.append(f"{path}: split list of {split!r} not found{hint}")
            continue
        ids = layout.image_ids(split)
        listed[split] = ids
        official = SPLIT_SIZES.get((layout.dataset, split))
        count = f"{split}: {len(ids):,} images"
        if official is not None and official != len(ids):
            count += f" (the official {split} has {official:,})"
        result.notes.append(f"{path}: {count}")
    wanted = [(s, "image", layout.images_dir(s), "") for s in _names(splits)]
    wanted += [(s, "ground truth <id>.png", layout.labels_dir(s), f"; make it with {fix}")
               for s in _names(ground_truth)]  # fmt: skip
    for split in _names(labels):
        if split not in listed:
            continue
        try:
            known = load_image_labels(layout.image_labels_file(split), dataset=layout.dataset)
        except (FileNotFoundError, ImageLabelsError) as exc:
            result.problems.append(f"{exc}; for {root}: {fix}")
            continue
        _report_missing(result, layout.image_labels_file(split), "image-level labels", split,
                        listed[split], set(known), f"; make it again with {fix}")  # fmt: skip
    for split, what, folder, tail in wanted:
        if split in listed:
            pattern = "*.png" if what.startswith("ground") else "*"
            have = {p.stem for p in folder.glob(pattern)} if folder.is_dir() else set()
            _report_missing(result, folder, what, split, listed[split], have, tail)
    return result


#: Check types a pipeline config may name.
CHECKS: dict[str, Callable[..., CheckResult]] = {
    "custom_dataset": check_custom_dataset,
    "dataset": check_dataset,
}
