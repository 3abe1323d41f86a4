"""Stage II (MMSegmentation) settings applied by ``tools/train.py`` and ``tools/test.py``.

A stage II config is an mmseg config (``default_scope='mmseg'``) that loads the ``fma.mmseg_ext``
plug-in. Before the Runner is built the tools:

* resolve the backbone weights of every ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``:
  an existing file is used as it is (mmengine loads it with torch's ``weights_only=True``); a
  missing file whose name is in :data:`PRETRAINED` is downloaded from its official URL and checked
  against the sha256 prefix in its OpenMMLab file name; any other missing file stops the run with
  the path to fill;
* size the network for the classes of its dataset, any dataset (:func:`adapt_to_dataset`: VOC's
  21, COCO's 81, a custom folder's ``classes.txt``); no validation when a custom folder has no
  ground truth for the validation split;
* choose the deformable attention of a CUDA run of a Mask2Former-type model before anything is
  loaded: mmcv's compiled op, or, without compiled ops (mmcv-lite), mmcv's pure-PyTorch function
  with one warning; ``--require-compiled-ops`` stops instead (one message with the install
  command);
* at test time set the prediction folder, panels, TTA (mmseg's ``tta_model`` + ``tta_pipeline``)
  and the metrics file ``<work_dir>/metrics_<split>.json`` with the protocol it used.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "PRETRAINED",
    "PretrainedWeights",
    "adapt_to_custom_dataset",
    "adapt_to_dataset",
    "apply_test_options",
    "check_cuda_ops",
    "is_stage2",
    "pretrained_paths",
    "resolve_pretrained",
]


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """A backbone weight file the stage II configs name."""

    url: str  # official download URL
    sha256: str  # the sha256 prefix OpenMMLab writes into the file name (<name>-<sha256[:8]>.pth)
    note: str  # what it is


PRETRAINED: dict[str, PretrainedWeights] = {
    "swin_large_patch4_window12_384_22k_20220412-6580f57d.pth": PretrainedWeights(
        "https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/"
        "swin_large_patch4_window12_384_22k_20220412-6580f57d.pth",
        "6580f57d",
        "Swin-L, ImageNet-22k, 384x384 (mmseg's Mask2Former Swin-L configs)",
    ),
    "resnet101_v1c-e67eebb6.pth": PretrainedWeights(
        "https://download.openmmlab.com/pretrain/third_party/resnet101_v1c-e67eebb6.pth",
        "e67eebb6",
        "ResNet-101-V1c, ImageNet-1k (open-mmlab://resnet101_v1c)",
    ),
}


def is_stage2(cfg: Any) -> bool:
    """True for an mmseg config (stage II); stage I configs use ``default_scope='fma'``."""
    return cfg.get("default_scope") == "mmseg"


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _walk(value)


def pretrained_paths(cfg: Any) -> list[str]:
    """Local checkpoint paths of the ``Pretrained`` init configs in ``cfg.model``."""
    model = cfg.model.to_dict() if hasattr(cfg.model, "to_dict") else dict(cfg.model)
    out = []
    for node in _walk(model):
        init = node.get("init_cfg")
        if isinstance(init, dict) and init.get("type") == "Pretrained":
            ckpt = str(init.get("checkpoint", ""))
            if ckpt and "://" not in ckpt and ckpt not in out:
                out.append(ckpt)
    return out


CUSTOM_DATASET = "CustomSeedDataset"


def _loader_dataset(cfg: Any, key: str) -> Any:
    loader = cfg.get(key)
    return loader.get("dataset") if isinstance(loader, dict) else None


def _has_ground_truth(dataset: Any) -> bool:
    """True when a custom folder has ``ground_truth/`` and the list of the split (or ``all``)."""
    root = Path(str(dataset.get("data_root", ""))).expanduser()
    split = str(dataset.get("split", "all"))
    split_ok = split == "all" or (root / "splits" / f"{split}.txt").is_file()
    return (root / "ground_truth").is_dir() and split_ok


def adapt_to_dataset(
    cfg: Any, *, for_test: bool = False, log: Callable[[str], None] = print
) -> int | None:
    """Fit a stage II config to the classes of its dataset (VOC, COCO, a custom folder, ...).

    The count is that of ``train_dataloader.dataset`` (``test_dataloader.dataset`` with
    ``for_test``; :func:`fma.mmseg_ext.classes.dataset_classes`): 21 for VOC, 81 for COCO, a
    custom folder's ``classes.txt`` plus background. Every ``num_classes`` of ``cfg.model`` and
    the top-level ``num_classes`` become it; the heads' class weights are rebuilt for it
    (Mask2Former's ``[1.0] * C + [0.1]``). A config count that differs is replaced with a note:
    configs inherit their count from a base, and switching the dataset (type, data_root) is all
    a user changes. For training, when a custom folder has no ground truth for the validation
    split (``ground_truth/`` and ``splits/<split>.txt``), validation is switched off with a
    note, and checkpoints are kept by interval instead of by best mIoU.

    Returns:
        The class count, or None when the loader's dataset type declares no classes.

    Raises:
        fma.mmseg_ext.classes.DatasetClassesError: the validation dataset has another class
            count than the training one, or per-class weights cannot be resized.
    """
    from fma.mmseg_ext.classes import DatasetClassesError, dataset_classes, fit_num_classes

    key = "test_dataloader" if for_test else "train_dataloader"
    dataset = _loader_dataset(cfg, key)
    classes = dataset_classes(dataset) if dataset is not None else None
    if classes is None:
        return None
    num_classes = len(classes)
    kind = dataset.get("type")
    kind = getattr(kind, "__name__", kind)
    val = _loader_dataset(cfg, "val_dataloader")
    if not for_test and val is not None:
        val_classes = dataset_classes(val)
        if val_classes is not None and len(val_classes) != num_classes:
            raise DatasetClassesError(
                f"train_dataloader reads {kind} ({num_classes} classes) but val_dataloader reads "
                f"{val.get('type')} ({len(val_classes)} classes); validate on the training "
                "dataset (val_dataloader.dataset.type and data_root)"
            )
    held = fit_num_classes(cfg.model, num_classes)
    if isinstance(cfg.get("num_classes"), int):
        cfg.num_classes = num_classes
    if held - {num_classes}:
        log(
            f"note: the network is sized for the {num_classes} classes of {kind} ({key}); "
            f"the config said num_classes={', '.join(map(str, sorted(held)))}"
        )
    if not for_test and val is not None and kind == CUSTOM_DATASET and not _has_ground_truth(val):
        log(
            f"note: {val.get('data_root')} has no ground truth for split "
            f"{val.get('split', 'all')!r} (ground_truth/ and splits/<split>.txt); training "
            "without validation, checkpoints by interval"
        )
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
        checkpoint = cfg.get("default_hooks", {}).get("checkpoint")
        if isinstance(checkpoint, dict):
            checkpoint.pop("save_best", None)
            checkpoint.pop("rule", None)
    return num_classes


#: The name tools/train.py and tools/test.py call; it fits every dataset, not only custom ones.
adapt_to_custom_dataset = adapt_to_dataset


def resolve_pretrained(
    cfg: Any,
    *,
    download: bool = True,
    opener: Callable[[str], Any] | None = None,
    local_rank: int = 0,
    wait_s: float = 3600.0,
) -> list[Path]:
    """Make sure every local backbone weight file of ``cfg`` exists.

    Args:
        cfg: the stage II config.
        download: fetch known files (:data:`PRETRAINED`) that are missing.
        opener: URL opener for the download (tests pass a fake one).
        local_rank: in a multi-process launch only local rank 0 downloads; the other ranks of
            the machine wait up to ``wait_s`` seconds for its file.
        wait_s: how long a rank > 0 waits for the download of rank 0.

    Returns:
        The weight files, all present.

    Raises:
        FileNotFoundError: a file is missing and cannot be downloaded; the message names the
            path, the URL and the config key to change.
    """
    from fma.io.download import download_verified

    found = []
    for ckpt in pretrained_paths(cfg):
        path = Path(ckpt).expanduser()
        if path.is_file():
            found.append(path)
            continue
        known = PRETRAINED.get(path.name)
        if known is None:
            raise FileNotFoundError(
                f"backbone weights {path} not found; put the file there or set the config's "
                "model...init_cfg.checkpoint (e.g. --cfg-options "
                "model.backbone.init_cfg.checkpoint=PATH)"
            )
        where = f"download {known.url} (sha256 {known.sha256}...) and save it as {path}"
        if not download:
            raise FileNotFoundError(f"backbone weights {path} not found: {where}")
        if local_rank > 0:  # local rank 0 downloads it
            deadline = time.monotonic() + wait_s
            while not path.is_file():
                if time.monotonic() > deadline:
                    raise FileNotFoundError(
                        f"backbone weights {path}: local rank 0 did not finish the download "
                        f"within {wait_s:.0f} s: {where}"
                    )
                time.sleep(1.0)
            found.append(path)
            continue
        kwargs = {"opener": opener} if opener is not None else {}
        try:
            download_verified(known.url, path, sha256=known.sha256, **kwargs)
        except OSError as exc:
            raise FileNotFoundError(
                f"backbone weights {path} not found and the download failed ({exc}): {where}"
            ) from exc
        found.append(path)
    return found


def _uses_deformable_attention(cfg: Any) -> bool:
    text = repr(cfg.model.to_dict() if hasattr(cfg.model, "to_dict") else cfg.model)
    return "MSDeformAttnPixelDecoder" in text or "MultiScaleDeformableAttention" in text


def check_cuda_ops(
    cfg: Any, cuda: bool | None = None, require_compiled: bool = False
) -> str | None:
    """Choose the deformable attention of a CUDA run when mmcv may lack compiled ops.

    Checked from the config, before anything is built; ``SeedProvenanceHook`` checks the built
    model again (for runs started by mmseg's own tools). Without compiled ops (mmcv-lite) on
    CUDA, mmcv's ``MultiScaleDeformableAttention`` is switched to its pure-PyTorch function
    (one warning), unless ``require_compiled`` (``--require-compiled-ops``) asks to stop.

    Returns:
        :func:`fma.mmseg_ext.hooks.deform_attn_path`'s answer, None for a config without
        deformable attention.

    Raises:
        MmcvOpsMissingError: ``require_compiled`` on CUDA without compiled ops, with the
            command that installs the full mmcv.
    """
    import torch

    if not _uses_deformable_attention(cfg):
        return None
    from fma.mmseg_ext.hooks import apply_deform_attn_path, compiled_ops_missing, deform_attn_path

    cuda = torch.cuda.is_available() if cuda is None else cuda
    compiled = not compiled_ops_missing()
    path = deform_attn_path(compiled_ops=compiled, cuda=cuda, require_compiled=require_compiled)
    apply_deform_attn_path(path, "config")
    return path


def _use_tta(cfg: Any, config: str | os.PathLike) -> None:
    """mmseg's test-time augmentation: the test loader runs ``tta_pipeline`` and the model is
    wrapped in ``tta_model`` (as mmseg's ``tools/test.py --tta`` does)."""
    if "tta_pipeline" not in cfg or "tta_model" not in cfg:
        raise KeyError(f"{config} has no tta_pipeline / tta_model; --tta needs both")
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def _tta_scales(cfg: Any) -> list[float]:
    scales = []
    for node in _walk(cfg.get("tta_pipeline", [])):
        if node.get("type") == "Resize" and "scale_factor" in node:
            scales.append(float(node["scale_factor"]))
    return scales


def apply_test_options(
    cfg: Any,
    *,
    config: str | os.PathLike,
    out: str | None,
    tta: bool,
    show_dir: str | None,
    show_num: int,
    metrics_file: str | None = None,
) -> None:
    """Set the stage II test options on ``cfg`` in place (see the module docstring).

    ``out`` gets ``<img_id>.png`` palette predictions; the metrics go to ``metrics_file``
    (default ``<work_dir>/metrics_<split>.json``, ``metrics_<split>_tta.json`` with TTA).
    """
    split = cfg.test_dataloader.dataset.get("split", "test")
    if tta:
        _use_tta(cfg, config)
        protocol = {"mode": "ms_flip", "scales": _tta_scales(cfg), "flip": True}
    else:
        protocol = {"mode": "ss", "scales": [1.0], "flip": False}
    evaluator = cfg.test_evaluator
    evaluator.protocol = protocol
    evaluator.split = split
    evaluator.config = str(config)
    evaluator.tool = "tools/test.py"
    if out is not None:
        evaluator.output_dir = str(out)
    if show_dir is not None:
        evaluator.show_dir = str(show_dir)
        evaluator.show_num = show_num
    name = f"metrics_{split}_tta.json" if tta else f"metrics_{split}.json"
    evaluator.metrics_file = str(metrics_file or Path(cfg.work_dir) / name)


#: Where the PASCAL VOC evaluation server expects segmentation results (comp6: own training data).
VOC_SERVER_SUBDIR = Path("results") / "VOC2012" / "Segmentation" / "comp6_test_cls"


def _drop_annotations(pipeline: list) -> list:
    """``pipeline`` without ``LoadAnnotations`` (also inside ``TestTimeAug`` transform lists)."""
    out = []
    for step in pipeline:
        if isinstance(step, list):
            kept = _drop_annotations(step)
            if kept:
                out.append(kept)
            continue
        if step.get("type") == "LoadAnnotations":
            continue
        if step.get("type") == "TestTimeAug":
            step = dict(step, transforms=_drop_annotations(step["transforms"]))
        out.append(step)
    return out


def apply_export_options(cfg: Any, *, out_root: str | os.PathLike, split: str, tta: bool) -> Path:
    """Turn a stage II test config into a label-free prediction run for the VOC server.

    Returns:
        The folder of the palette PNGs,
        ``<out_root>/results/VOC2012/Segmentation/comp6_test_cls``.
    """
    if tta:
        cfg.tta_pipeline = _drop_annotations(cfg.tta_pipeline)
    dataset = cfg.test_dataloader.dataset
    dataset.split = split
    dataset.with_labels = False
    dataset.pipeline = _drop_annotations(dataset.pipeline)
    folder = Path(out_root) / VOC_SERVER_SUBDIR
    cfg.test_evaluator = dict(
        type="SegMetric", format_only=True, output_dir=str(folder), dataset="voc12", split=split
    )
    if tta:
        _use_tta(cfg, "the config")
    return folder


def make_server_archive(out_root: str | os.PathLike, expected_ids: list[str]) -> Path:
    """Pack ``<out_root>/results`` into ``<out_root>/results.tar.gz`` for upload.

    Raises:
        FileNotFoundError: a prediction of ``expected_ids`` is missing (names the first ids).
    """
    import tarfile

    from fma.io.atomic import atomic_path

    out_root = Path(out_root)
    folder = out_root / VOC_SERVER_SUBDIR
    missing = [i for i in expected_ids if not (folder / f"{i}.png").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder}: {len(missing)} of {len(expected_ids)} predictions missing "
            f"({', '.join(missing[:10])}); re-run the export"
        )
    archive = out_root / "results.tar.gz"
    with atomic_path(archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for image_id in sorted(expected_ids):
            name = (VOC_SERVER_SUBDIR / f"{image_id}.png").as_posix()
            tar.add(folder / f"{image_id}.png", arcname=name)
    return archive
