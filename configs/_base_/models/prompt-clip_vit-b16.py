# Frozen CLIP ViT-B/16 + CoOp prompts (method-fma 3), the classification-task defaults.
# Consumes CLIP weights: the open_clip tag "openai" (download) or a local file via
# --cfg-options model.clip.pretrained=/path/to/ViT-B-16.pt. Produces prompt checkpoints / CAMs.
model = dict(
    type="PromptCLIP",
    clip=dict(model_name="ViT-B-16", pretrained="openai", quick_gelu=True),
    dataset="voc12",
    bg_prompts="clip",
    n_ctx=16,
    csc=False,
    class_token_position="end",
    # N(0, 0.015^2) contexts: the original's value for VOC and COCO classification prompts and
    # for COCO segmentation prompts (configs/VOC/cls/cfg.py, configs/COCO/cls/cfg.py and
    # configs/COCO/seg/cfg.py set model.ini.ctx_cfg.ctx_std = 0.015); VOC segmentation: 0.0125.
    ctx_std=0.015,
    ctx_seed=0,
    sub_batches=1,  # VOC: the whole batch of 16 (configs/clip_cam/base.py: sub_iter_num = 1)
    cls_loss_weight=1.0,
    act_loss_weights=(0.0, 0.0),
    att_layers=8,
    caa=dict(sinkhorn_iters=1, power=2, box_thresh=0.4, apply_to="score"),
    tta=None,  # single-scale CAMs (method-fma 6.1); tools/test.py --tta sets the values below
)
# Multi-scale + flip CAM fusion (CLIP-ES scales), used only with tools/test.py --tta.
tta = dict(scales=(1.0, 0.5, 1.5, 2.0), flip=True, reduce="sum")
