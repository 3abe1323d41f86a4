"""SAM rows of ``benchmarks/gpu.py``: image-encoder and FMA-preset seconds per image per precision.

:func:`sam_rows` builds SAM with :func:`fma.sam.builder.build_sam` (ViT-H with random weights
unless a checkpoint is given; ``smoke``: the tiny SAM of :mod:`fma.sam.tiny`), and per precision:

* ``sam_encoder``: one image-embedding pass (:func:`fma.sam.throughput.encode_images`, the
  resize/normalise/pad of ``SamPredictor.set_image``), 1024x1024 for ViT-H;
* ``sam_fma_preset``: the mask stage's per-image work as ``tools/gen_sam_masks.py`` does it
  (read the image, :func:`fma.sam.builder.mask_generator` with the preset of
  ``configs/sam/sam_vit-h_amg-fma_voc12.py``, write the ``.npz`` mask file), points per batch and
  crop batching chosen as the tool chooses them.

The first image warms up (not timed); the others are timed (CUDA synchronised around each),
and ``peak_gib`` is ``torch.cuda.max_memory_allocated`` over the timed images (None on CPU).
With random weights no mask passes the predicted-IoU test, so the preset row is a lower bound
(the note says so). ``smoke`` uses the tiny SAM with 8x8 points on CPU-sized work.
"""

from __future__ import annotations

import pathlib
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import fma

_PRESET_CONFIG = "configs/sam/sam_vit-h_amg-fma_voc12.py"


def _preset(smoke: bool) -> Any:
    from mmengine.config import Config

    from fma.sam.presets import get_preset

    repo = pathlib.Path(__file__).resolve().parents[1]
    section = Config.fromfile(str(repo / _PRESET_CONFIG)).sam_masks
    overrides = dict(section.get("preset_overrides") or {})
    if smoke:
        overrides["points_per_side"] = 8
    return get_preset(section.get("preset", "fma"), **overrides)


def _timed(fn: Callable[[int], Any], n: int, device: str) -> tuple[float, float | None, list[Any]]:
    """Run ``fn(0)`` untimed, then ``fn(1..n-1)`` timed (``fn(0)`` again when n == 1).

    Returns:
        (seconds per call, peak GiB on CUDA or None, the timed results).
    """
    import torch

    cuda = device.startswith("cuda")
    fn(0)
    idx = list(range(1, n)) or [0]
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    out, start = [], time.perf_counter()
    for i in idx:
        out.append(fn(i))
    if cuda:
        torch.cuda.synchronize(device)
    sec = (time.perf_counter() - start) / len(idx)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    return sec, peak, out


def _row(stage: str, precision: str, s: float | None, peak: float | None,
         masks: float | None, note: str) -> dict[str, Any]:  # fmt: skip
    return {"stage": stage, "precision": precision, "s_per_img": s, "peak_gib": peak,
            "masks_per_img": masks, "note": note}  # fmt: skip


def _build(smoke: bool, checkpoint: str | None, device: str) -> Any:
    from fma.sam.builder import build_sam

    if smoke:
        return build_sam("tiny", device=device)
    if checkpoint:
        return build_sam("vit_h", checkpoint, device=device)
    return build_sam("vit_h", device=device, random_weights=True)


def _precision_rows(
    device: str, smoke: bool, image_paths: list[pathlib.Path], checkpoint: str | None,
    precision: str, tmp: pathlib.Path,
) -> list[dict[str, Any]]:  # fmt: skip

    from fma.io.masks.records import save_sam_masks
    from fma.sam.builder import mask_generator
    from fma.sam.show import read_image_rgb
    from fma.sam.throughput import encode_images

    sam = _build(smoke, checkpoint, device)
    generator = mask_generator(sam, _preset(smoke), precision=precision)
    weights = "tiny SAM" if smoke else ("ViT-H checkpoint" if checkpoint else "ViT-H random")
    images = [read_image_rgb(p) for p in image_paths]
    n = len(images)

    def encode(i: int) -> None:
        encode_images(generator.predictor, [images[i]], precision)

    def preset_image(i: int) -> int:
        image = read_image_rgb(image_paths[i])
        records = generator.generate(image)
        h, w = image.shape[:2]
        save_sam_masks(tmp / f"{precision}_{i}.npz", image_paths[i].stem, h, w, records)
        return len(records)

    side = sam.image_encoder.img_size
    enc_s, enc_peak, _ = _timed(encode, n, device)
    rows = [_row("sam_encoder", precision, enc_s, enc_peak, None,
                 f"{weights}, {side}x{side}, batch 1, {max(1, n - 1)} timed")]  # fmt: skip
    pre_s, pre_peak, counts = _timed(preset_image, n, device)
    note = (f"{weights}, {generator.crop_n_layers} crop layer(s), crops per encoder call "
            f"{generator.crop_batch}, points_per_batch {generator.points_per_batch}, "
            f"{max(1, n - 1)} timed")  # fmt: skip
    if not smoke and not checkpoint:
        note += "; random weights: masks fail the IoU test, a lower bound"
    rows.append(_row("sam_fma_preset", precision, pre_s, pre_peak,
                     sum(counts) / len(counts), note))  # fmt: skip
    return rows


def sam_rows(
    device: str,
    smoke: bool,
    image_paths: list[pathlib.Path],
    checkpoint: str | None,
    precisions: Sequence[str],
) -> list[dict[str, Any]]:
    """Encoder and FMA-preset rows per precision (see the module docstring).

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        smoke: tiny SAM and 8x8 points (CPU smoke runs).
        image_paths: images; the first warms up, the others are timed (>= 1).
        checkpoint: ViT-H weights file; None: random weights.
        precisions: names from ``fp32``, ``bf16``, ``fp16``; fp16 off CUDA gives a row with
            ``s_per_img`` None saying why.

    Returns:
        Rows ``{"stage", "precision", "s_per_img", "peak_gib", "masks_per_img", "note"}``.
    """
    if hasattr(fma, "setup"):
        fma.setup()  # torchvision's repairs before segment-anything imports it
    import torch

    from fma.sam.throughput import check_precision

    if not image_paths:
        raise ValueError("sam_rows needs at least one image")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in precisions:
            try:
                check_precision(precision, device)
            except ValueError as exc:
                for stage in ("sam_encoder", "sam_fma_preset"):
                    rows.append(_row(stage, precision, None, None, None, f"skipped: {exc}"))
                continue
            with torch.inference_mode():
                rows += _precision_rows(device, smoke, list(image_paths), checkpoint, precision,
                                        pathlib.Path(tmp))  # fmt: skip
            if device.startswith("cuda"):
                torch.cuda.empty_cache()  # the model of this precision is gone
    return rows
