"""PromptCLIP: frozen CLIP + CoOp prompts, trained with L_cls or L_act, predicting CAMs.

Size (~470 lines): one Runner model (loss and predict modes share the CLIP forward).

Shape shorthand: ``N`` images, ``F`` foreground classes, ``B`` background prompts,
``G = F + B``, ``P`` positive pairs, ``h x w`` patch grid, ``T = h * w``.

Data samples (``mmengine.structures.BaseDataElement``, built by
:class:`fma.datasets.transforms.PackClsInputs`) carry ``gt_labels`` (int64 dataset class ids of
the image-level labels, 1..F) and, for the segmentation task, ``seed`` ((H, W) int64 seed crop).

Modes (mmengine ``BaseModel.forward``):

* ``loss``: ``loss_cls`` (L_cls on the foreground logits) when ``cls_loss_weight > 0``;
  ``loss_act_fg`` / ``loss_act_bg`` (L_act on Softmax-GradCAMs of the positives, the gradient
  graph kept) when ``act_loss_weights`` are non-zero. Positives of L_act come from the image
  labels (``act_positives="image"``) or from the classes present in the seed crop
  (``"seed"``, VOC's setting). With ``sub_batches = k > 1`` the batch is split into ``k``
  equal parts whose losses are computed on their own and averaged (see :class:`PromptCLIP`).
* ``predict``: GradCAMs of the image-level positives, optionally CAA-refined with the mean
  attention of the last ``att_layers`` blocks; fields ``cam`` (K, h, w), ``fg_cls`` (K,) dataset
  class ids, ``fg_logit`` (K,), ``all_logit`` (F,), optional ``cam_raw`` and ``att`` (T, T).
  With ``tta`` set, the CAM is a multi-scale / flip fusion (see :class:`PromptCLIP`).
* ``tensor``: (N, G) logits.

Checkpoints hold only the prompt contexts: the frozen CLIP is kept outside the module tree
(reloaded from its own weights file) and moved along in :meth:`_apply`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

from fma.cam import caa_refine, fuse_cams, positive_pairs, scaled_aligned_size, softmax_gradcam
from fma.cam.gradcam import GradCAMOutput
from fma.clip import CLIPImageEncoder, PromptLearner, TextEncoder, load_clip
from fma.clip.backbone import VisualFeatures
from fma.datasets.custom import custom_dataset_meta
from fma.datasets.meta import get_dataset_meta
from fma.models.data_preprocessor import CLIPDataPreprocessor
from fma.models.losses import CAMActivationLoss, MultiLabelContrastiveLoss
from fma.registry import MODELS

__all__ = ["DEFAULT_TTA", "PromptCLIP", "resize_images", "tta_settings"]

#: Multi-scale + flip CAM fusion used by ``tta=True`` (``tools/test.py --tta`` without a config
#: ``tta``): CLIP-ES's scales, both flips, summed.
DEFAULT_TTA: dict[str, Any] = {"scales": (1.0, 0.5, 1.5, 2.0), "flip": True, "reduce": "sum"}
_TTA_KEYS = ("scales", "flip", "reduce")


def tta_settings(tta: bool | dict[str, Any] | None) -> dict[str, Any] | None:
    """Check and complete a ``tta`` argument of :class:`PromptCLIP`.

    Args:
        tta: None / False (off), True (:data:`DEFAULT_TTA`) or a dict with any of ``scales``
            (positive floats), ``flip`` (bool) and ``reduce`` (``"sum"`` or ``"mean"``); missing
            keys take the :data:`DEFAULT_TTA` values.

    Returns:
        None or ``{"scales": tuple[float, ...], "flip": bool, "reduce": str}``.
    """
    if tta is None or tta is False:
        return None
    if tta is True:
        tta = DEFAULT_TTA
    if not isinstance(tta, Mapping):
        raise ValueError(f"tta must be None, a bool or a dict with keys {_TTA_KEYS}, got {tta!r}")
    unknown = sorted(set(tta) - set(_TTA_KEYS))
    if unknown:
        raise ValueError(f"unknown tta keys {unknown}; valid keys are {_TTA_KEYS}")
    raw = tta.get("scales", DEFAULT_TTA["scales"])
    scales = (float(raw),) if isinstance(raw, int | float) else tuple(float(v) for v in raw)
    if not scales or any(not v > 0 for v in scales):
        raise ValueError(f"tta scales must be a non-empty list of positive numbers, got {raw!r}")
    reduce = tta.get("reduce", DEFAULT_TTA["reduce"])
    if reduce not in ("sum", "mean"):
        raise ValueError(f"tta reduce must be 'sum' or 'mean', got {reduce!r}")
    return {"scales": scales, "flip": bool(tta.get("flip", DEFAULT_TTA["flip"])), "reduce": reduce}


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a normalised image batch as the loader's PIL bicubic resize does.

    Bicubic with ``antialias=True`` uses PIL's kernel (a = -0.5, support widened when
    shrinking), so it matches ``PIL.Image.resize(..., BICUBIC)`` up to PIL's uint8 rounding and
    clipping; applied to the normalised tensor it equals resizing before normalising, because
    the interpolation weights sum to one.

    Args:
        images: (N, 3, H, W) float images.
        size: target ``(H', W')``.

    Returns:
        (N, 3, H', W'); the input itself when the size already matches.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True)


class _Frozen:
    """Holds the frozen CLIP parts outside the module tree (not in state_dict/parameters)."""

    def __init__(self, clip: nn.Module) -> None:
        self.clip = clip
        self.image = CLIPImageEncoder(clip.visual)
        self.text = TextEncoder(clip)


@MODELS.register_module()
class PromptCLIP(BaseModel):
    """Frozen CLIP ViT with learnable prompt contexts (FMA-WSSS stage I).

    Args:
        clip: keyword arguments of :func:`fma.clip.load_clip` (``model_name``, ``pretrained``,
            ``quick_gelu``, ``cache_dir``, ``model_config``).
        dataset: dataset key giving the foreground prompt names (CLIP-ES names); ``custom``
            takes them from ``dataset_root`` (:func:`fma.datasets.custom.custom_dataset_meta`).
        dataset_root: the custom dataset folder (``classes.txt``, optional ``prompt_names.txt``).
        bg_prompts: ``"clip"`` = the dataset's CLIP-ES background names, an int ``k`` = ``k``
            empty (fully learnable) prompts, or an explicit list of names.
        fg_names: explicit foreground prompt names instead of the dataset's.
        n_ctx: context vectors per prompt.
        csc: class-specific contexts.
        class_token_position: ``"end"``, ``"front"`` or ``"middle"``.
        ctx_std: std of the N(0, std^2) context initialisation.
        ctx_seed: seed of the initialisation (int or str).
        cls_loss_weight: weight of L_cls.
        act_loss_weights: ``(fg, bg)`` weights of L_act.
        act_positives: ``"image"`` or ``"seed"`` (see module docstring).
        act_loss_cfg: extra keyword arguments of :class:`fma.models.losses.CAMActivationLoss`.
        sub_batches: split each training batch into this many consecutive parts, compute every
            loss on each part on its own and average the parts (1 = the whole batch at once).
            This is the original's ``loader.train.sub_iter_num`` (COCO: 4 for classification,
            8 for segmentation prompts): it ran ``sub_iter_num`` sub-batches of
            ``batch_size // sub_iter_num`` images per step and back-propagated
            ``loss / sub_iter_num`` of each, which gives the same gradient as this average. It
            matters because the losses normalise over the batch (L_cls's mean over positive
            pairs, L_act's pixel normalisation). A batch smaller than ``sub_batches`` is split
            into one part per image. Peak memory is that of the whole batch (one backward).
        att_layers: attention layers averaged for CAA / ``att`` (8 in the paper).
        caa: keyword arguments of :func:`fma.cam.caa_refine` (``sinkhorn_iters``, ``power``,
            ``box_thresh``, ``apply_to``, ``box_end_exclusive``) or None for raw CAMs.
        keep_raw_cam: also return the unrefined CAM as ``cam_raw`` (with ``tta``: the fused CAM
            before CAA).
        save_att: also return the merged attention as ``att`` (float16; with ``tta``: the
            attention of the scale-1.0 input).
        tta: multi-scale / flip CAM fusion at inference, off by default (the paper infers at
            one scale without flipping, method-fma 6.1): None, True (:data:`DEFAULT_TTA`) or a
            dict (see :func:`tta_settings`). See "Test-time augmentation" below.
        gradcam_batching: ``batching`` of :func:`fma.cam.softmax_gradcam` (``"func"``,
            ``"rows"`` or ``"vmap"``; same CAMs, different speed and memory).
        data_preprocessor: config or module; default :class:`CLIPDataPreprocessor`.
        init_cfg: mmengine init config (unused).

    Test-time augmentation (CLIP-ES style). For every scale ``s`` the (already 16-aligned)
    input of ``H x W`` pixels is resized to :func:`fma.cam.scaled_aligned_size` (``s * H``,
    ``s * W`` rounded up to multiples of 16) with :func:`resize_images` (bicubic, as the
    loader's PIL resize; bilinear would blur the input more than the paper's pipeline does);
    with ``flip`` the horizontally flipped input is added. Each view gets the Softmax-GradCAM of
    the same positives (the masked softmax of that view's own logits); the CAMs of flipped
    views are flipped back, and all views are resized bilinearly onto the scale-1.0 patch grid
    ``H/16 x W/16`` and summed (or averaged) by :func:`fma.cam.fuse_cams`. ``fg_logit`` /
    ``all_logit`` (and ``att``) always come from the scale-1.0 unflipped input (an extra
    no-backward pass when 1.0 is not among the scales). CAA is applied once, to the fused CAM,
    with the scale-1.0 attention, so CAA requires 1.0 among the scales. CLIP-ES fuses the maps
    the same way (resize, flip back, sum) but at image resolution, and refines only the
    scale-1.0 CAM with its attention.
    """

    def __init__(
        self,
        clip: dict[str, Any] | None = None,
        dataset: str = "voc12",
        dataset_root: str | None = None,
        bg_prompts: str | int | Sequence[str] = "clip",
        fg_names: Sequence[str] | None = None,
        n_ctx: int = 16,
        csc: bool = False,
        class_token_position: str = "end",
        ctx_std: float = 0.015,
        ctx_seed: int | str = 0,
        cls_loss_weight: float = 1.0,
        act_loss_weights: tuple[float, float] = (0.0, 0.0),
        act_positives: str = "image",
        act_loss_cfg: dict[str, Any] | None = None,
        sub_batches: int = 1,
        att_layers: int = 8,
        caa: dict[str, Any] | None = None,
        keep_raw_cam: bool = False,
        save_att: bool = False,
        tta: bool | dict[str, Any] | None = None,
        gradcam_batching: str = "func",
        data_preprocessor: dict | nn.Module | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        if data_preprocessor is None:
            data_preprocessor = CLIPDataPreprocessor()
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if isinstance(sub_batches, bool) or not isinstance(sub_batches, int) or sub_batches < 1:
            raise ValueError(f"sub_batches must be an int >= 1, got {sub_batches!r}")
        self.sub_batches = sub_batches
        if act_positives not in ("image", "seed"):
            raise ValueError(f"act_positives must be 'image' or 'seed', got {act_positives!r}")
        if dataset == "custom":
            if dataset_root is None:
                raise ValueError(
                    "dataset='custom' needs dataset_root, the folder whose classes.txt names the "
                    "classes (set model.dataset_root in the config)"
                )
            meta = custom_dataset_meta(dataset_root)
        else:
            meta = get_dataset_meta(dataset)
        fg = list(fg_names) if fg_names is not None else list(meta.clip_fg_names)
        if isinstance(bg_prompts, str):
            if bg_prompts != "clip":
                raise ValueError(f"bg_prompts must be 'clip', an int or a list, got {bg_prompts!r}")
            bg = list(meta.clip_bg_names)
        elif isinstance(bg_prompts, int):
            bg = [""] * bg_prompts
        else:
            bg = list(bg_prompts)
        self.num_fg, self.num_bg = len(fg), len(bg)

        clip_model = load_clip(**(clip or {}))
        self._frozen = _Frozen(clip_model)
        self.prompt_learner = PromptLearner(
            fg + bg,
            clip_model.token_embedding,
            n_ctx=n_ctx,
            csc=csc,
            class_token_position=class_token_position,
            ctx_std=ctx_std,
            seed=ctx_seed,
            context_length=self._frozen.text.context_length,
        )
        self.cls_loss_weight = float(cls_loss_weight)
        self.act_loss_weights = (float(act_loss_weights[0]), float(act_loss_weights[1]))
        self.act_positives = act_positives
        self.cls_loss = MultiLabelContrastiveLoss(loss_weight=self.cls_loss_weight)
        self.act_loss = CAMActivationLoss(
            fg_weight=self.act_loss_weights[0],
            bg_weight=self.act_loss_weights[1],
            **(act_loss_cfg or {}),
        )
        if not 0 <= att_layers <= self._frozen.image.num_layers:
            raise ValueError(f"att_layers must be in [0, {self._frozen.image.num_layers}]")
        if caa is not None and att_layers == 0:
            raise ValueError("caa needs attention maps: set att_layers > 0")
        self.att_layers = att_layers
        self.caa = dict(caa) if caa is not None else None
        self.keep_raw_cam = keep_raw_cam
        self.save_att = save_att
        self.tta = tta_settings(tta)
        if gradcam_batching not in ("func", "rows", "vmap"):
            raise ValueError(
                f"gradcam_batching must be 'func', 'rows' or 'vmap', got {gradcam_batching!r}"
            )
        self.gradcam_batching = gradcam_batching
        if self.tta is not None and self.caa is not None and 1.0 not in self.tta["scales"]:
            raise ValueError(
                f"tta scales {self.tta['scales']} lack 1.0: CAA refines the fused CAM with the "
                "attention of the scale-1.0 input; add 1.0 to tta.scales or set caa=None"
            )
        self._text_cache: tuple[tuple[int, int, torch.device], torch.Tensor] | None = None

    # ------------------------------------------------------------------ frozen CLIP plumbing
    @property
    def clip(self) -> nn.Module:
        """The frozen open_clip model (not a registered submodule)."""
        return self._frozen.clip

    def _apply(self, fn: Any, recurse: bool = True) -> PromptCLIP:  # type: ignore[override]
        super()._apply(fn, recurse)
        self._frozen.clip._apply(fn)
        # The wrappers keep references to CLIP buffers (the text attention mask), which _apply
        # replaces by new tensors: rebuild them so that .to(device) moves everything.
        self._frozen = _Frozen(self._frozen.clip)
        self._text_cache = None
        return self

    def train(self, mode: bool = True) -> PromptCLIP:
        """Set train mode of the prompts; the frozen CLIP always stays in eval mode."""
        super().train(mode)
        self._frozen.clip.eval()
        self._text_cache = None
        return self

    # ------------------------------------------------------------------ building blocks
    @property
    def logit_scale(self) -> torch.Tensor:
        """CLIP's (frozen) logit scale, ``exp(logit_scale)`` (100 for OpenAI weights)."""
        return self.clip.logit_scale.exp()

    def text_features(self) -> torch.Tensor:
        """(G, E) L2-normalised prompt features; cached (no grad) outside training."""
        pl = self.prompt_learner
        ctx = pl.ctx
        if self.training:
            return F.normalize(self._frozen.text(pl(), pl.token_ids), dim=-1)
        key = (ctx._version, ctx.data_ptr(), ctx.device)
        if self._text_cache is None or self._text_cache[0] != key:
            with torch.no_grad():
                feats = self._frozen.text(pl(), pl.token_ids)
            self._text_cache = (key, F.normalize(feats, dim=-1))
        return self._text_cache[1]

    def _head(self, feats: VisualFeatures, txt: torch.Tensor):
        enc, scale = self._frozen.image, self.logit_scale

        def head(act: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            x_out, _ = enc.last_block(feats.x_in[rows], act)
            return scale * F.normalize(enc.pool(x_out), dim=-1) @ txt.T

        return head

    def _labels(self, data_samples: Sequence[Any], n: int, device: torch.device) -> torch.Tensor:
        """(N, F) multi-hot image-level labels from ``gt_labels`` (dataset class ids 1..F)."""
        if data_samples is None or len(data_samples) != n:
            raise ValueError("every image needs a data sample with 'gt_labels'")
        labels = torch.zeros(n, self.num_fg, dtype=torch.long, device=device)
        for i, ds in enumerate(data_samples):
            ids = torch.as_tensor(ds.gt_labels, device=device).long().reshape(-1)
            if ids.numel() and (ids.min() < 1 or ids.max() > self.num_fg):
                raise ValueError(f"gt_labels must be class ids in 1..{self.num_fg}, got {ids}")
            labels[i, ids - 1] = 1
        return labels

    def _seeds(self, data_samples: Sequence[Any], device: torch.device) -> torch.Tensor:
        if not all(hasattr(ds, "seed") for ds in data_samples):
            raise ValueError(
                "L_act needs seed maps: add LoadSeed to the pipeline and set the dataset's seed_dir"
            )
        return torch.stack([torch.as_tensor(ds.seed, device=device).long() for ds in data_samples])

    def _seed_positives(self, seeds: torch.Tensor) -> torch.Tensor:
        """(N, F) multi-hot of the foreground classes present in each seed crop."""
        n = seeds.shape[0]
        flat = seeds.reshape(n, -1)
        valid = (flat >= 1) & (flat <= self.num_fg)
        labels = torch.zeros(n, self.num_fg + 1, dtype=torch.long, device=seeds.device)
        labels.scatter_(1, torch.where(valid, flat, torch.zeros_like(flat)), 1)
        return labels[:, 1:]

    # ------------------------------------------------------------------ modes
    def forward(
        self,
        inputs: torch.Tensor,
        data_samples: Sequence[Any] | None = None,
        mode: str = "tensor",
    ) -> dict[str, torch.Tensor] | list[Any] | torch.Tensor:
        """mmengine entry point; see the module docstring for the three modes."""
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            return self.predict(inputs, data_samples)
        if mode == "tensor":
            feats = self._frozen.image.forward_features(inputs)
            head = self._head(feats, self.text_features())
            return head(feats.act.detach(), torch.arange(inputs.shape[0], device=inputs.device))
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def loss(self, inputs: torch.Tensor, data_samples: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Training losses of one batch (N, 3, H, W): the mean over its ``sub_batches`` parts."""
        n = inputs.shape[0]
        k = min(self.sub_batches, n)
        if k <= 1:
            return self._part_loss(inputs, data_samples)
        if data_samples is None or len(data_samples) != n:
            raise ValueError("every image needs a data sample with 'gt_labels'")
        parts = [
            self._part_loss(inputs[idx[0] : idx[-1] + 1], list(data_samples[idx[0] : idx[-1] + 1]))
            for idx in torch.arange(n).tensor_split(k)
        ]
        return {key: sum(p[key] for p in parts) / k for key in parts[0]}

    def _part_loss(
        self, inputs: torch.Tensor, data_samples: Sequence[Any]
    ) -> dict[str, torch.Tensor]:
        """Losses of one (sub-)batch (N, 3, H, W), normalised over its own images."""
        n, dev = inputs.shape[0], inputs.device
        labels = self._labels(data_samples, n, dev)
        feats = self._frozen.image.forward_features(inputs)
        head = self._head(feats, self.text_features())
        losses: dict[str, torch.Tensor] = {}
        if any(w != 0 for w in self.act_loss_weights):
            seeds = self._seeds(data_samples, dev)
            pos = labels if self.act_positives == "image" else self._seed_positives(seeds)
            out = softmax_gradcam(
                feats.act, head, pos, feats.grid, create_graph=True,
                batching=self.gradcam_batching,
            )  # fmt: skip
            act = self.act_loss(out.cam, out.img_idx, out.fg_idx + 1, seeds)
            keep_graph = out.logits.sum() * 0  # a batch without positives still back-propagates
            losses.update({k: v + keep_graph for k, v in act.items()})
            logits = out.logits
        else:
            logits = head(feats.act.detach(), torch.arange(n, device=dev))
        if self.cls_loss_weight != 0:
            losses["loss_cls"] = self.cls_loss(logits[:, : self.num_fg], labels)
        if not losses:
            raise ValueError("all loss weights are 0: set cls_loss_weight or act_loss_weights")
        return losses

    def predict(self, inputs: torch.Tensor, data_samples: Sequence[Any]) -> list[Any]:
        """CAMs of the image-level positives of each image, written into its data sample."""
        n, dev = inputs.shape[0], inputs.device
        labels = self._labels(data_samples, n, dev)
        need_att = self.caa is not None or self.save_att
        att_layers = self.att_layers if need_att else 0
        if self.tta is None:
            out, att = self._view_cams(inputs, labels, att_layers)
            cams = out.cam.detach()
        else:
            cams, out, att = self._tta_cams(inputs, labels, att_layers)
        img_idx, fg_idx = positive_pairs(labels)
        logits = out.logits.detach()
        for i, ds in enumerate(data_samples):
            sel = img_idx == i
            cam = cams[sel]
            fg = fg_idx[sel]
            refined = caa_refine(cam, att[i], **self.caa) if self.caa is not None else cam
            ds.cam = refined
            ds.fg_cls = fg + 1
            ds.fg_logit = logits[i, fg]
            ds.all_logit = logits[i, : self.num_fg]
            if self.keep_raw_cam:
                ds.cam_raw = cam
            if self.save_att and att is not None:
                ds.att = att[i].half()
        return list(data_samples)

    def _view_cams(
        self, inputs: torch.Tensor, labels: torch.Tensor, att_layers: int
    ) -> tuple[GradCAMOutput, torch.Tensor | None]:
        """Softmax-GradCAM of one view (N, 3, H, W) and its merged attention (N, T, T) or None."""
        enc = self._frozen.image
        txt = self.text_features()
        with torch.enable_grad():  # mmengine's test loop runs under no_grad
            feats = enc.forward_features(inputs, att_layers)
            out = softmax_gradcam(
                feats.act, self._head(feats, txt), labels, feats.grid,
                batching=self.gradcam_batching,
            )  # fmt: skip
        att = None
        if att_layers:
            with torch.no_grad():
                _, last = enc.last_block(feats.x_in, feats.act, need_weights=True)
            att = enc.merge_attention(feats.att, last, att_layers)
        return out, att

    def _tta_cams(
        self, inputs: torch.Tensor, labels: torch.Tensor, att_layers: int
    ) -> tuple[torch.Tensor, GradCAMOutput, torch.Tensor | None]:
        """Fused (P, h, w) CAM of all views, the scale-1.0 view's output and its attention."""
        assert self.tta is not None
        h, w = inputs.shape[-2:]
        grid = self._frozen.image.grid_of(h, w)
        cams: list[torch.Tensor] = []
        flipped: list[bool] = []
        base: tuple[GradCAMOutput, torch.Tensor | None] | None = None
        for scale in self.tta["scales"]:
            x = resize_images(inputs, scaled_aligned_size(h, w, scale))
            for flip in (False, True) if self.tta["flip"] else (False,):
                first = scale == 1.0 and not flip and base is None
                out, att = self._view_cams(
                    x.flip(-1) if flip else x, labels, att_layers if first else 0
                )
                cams.append(out.cam.detach())
                flipped.append(flip)
                if first:
                    base = (out, att)
        if base is None:  # logits (and attention) of the plain input, without a backward pass
            base = self._view_cams(inputs, torch.zeros_like(labels), att_layers)
        fused = fuse_cams(cams, grid, flipped, reduce=self.tta["reduce"])
        return fused, base[0], base[1]
