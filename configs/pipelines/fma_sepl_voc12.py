# Pipeline (tools/reproduce.py): FMA-WSSS on VOC12 with the fine seeds refined by SEPL before
# stage II (fma_voc12 with its optional sepl_refine / sepl_eval steps switched on). Consumes and
# produces what fma_voc12 does, in its own work_dir, plus the refined seeds and their metrics.
# An fma extension: neither the FMA-WSSS paper nor the SEPL paper reports this combination (SEPL
# refines other methods' pseudo labels; FMA-WSSS trains stage II on its fine seeds as they are),
# so configs/metafile.yml has no published number for it.
_base_ = ["./fma_voc12.py"]
pipeline = dict(
    name="fma_sepl_voc12",
    description="FMA-WSSS on VOC12, fine seeds refined by SEPL (max_iou_imp2) before stage II "
    "(an fma extension, reported by neither paper)",
)
work_dir = "work_dirs/pipelines/fma_sepl_voc12"
vars = dict(sepl="true", stage2_seeds="{work_dir}/sepl_seeds/train_aug")
