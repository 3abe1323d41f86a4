"""A Mask2Former checkpoint in the authors' layout loads into the VOC Swin-L config through the
loading path of tools/test.py, with no missing, unexpected or mis-shaped key.

The authors release ``best_mIoU_iter_30000.pth``, written by mmengine's ``CheckpointHook`` in
their mmsegmentation 1.x run: ``{"meta", "state_dict", "message_hub", "optimizer",
"param_schedulers"}`` with the model's ``state_dict`` under mmseg's key names. Here the same
layout is written from the real config's model (full Swin-L, random weights, 50 queries) and read
back the way ``tools/test.py`` does (its ``build_cfg``, ``Runner.from_cfg``, the runner's
``load_checkpoint`` inside ``mmengine_checkpoint_globals``), but strictly, so that any key that
would not load fails the test.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from stage2_helpers import STAGE2

pytest.importorskip("mmseg", reason="stage II needs mmsegmentation (pip install fma[seg])")

import torch

pytestmark = pytest.mark.slow  # ~15 s, ~3 GB: the full Swin-L network, saved and loaded

VOC = STAGE2 / "mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py"
QUERY_KEYS = ("decode_head.query_embed.weight", "decode_head.query_feat.weight")


def _authors_layout(model: torch.nn.Module) -> dict:
    """A checkpoint dict as mmengine's Runner.save_checkpoint writes it (mmengine 0.x)."""
    import mmengine
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import get_state_dict, weights_to_cpu

    from fma.datasets.meta import VOC12

    hub = MessageHub.get_instance("authors_voc_run")
    for value in (1.9, 1.7):
        hub.update_scalar("train/loss", value)
    hub.update_info("best_score", np.float64(83.1))  # IoUMetric's mIoU is a numpy scalar
    hub.update_info("best_ckpt", "work_dirs/m2f-sl22-bt4-80k-512x-VOC/best_mIoU_iter_30000.pth")
    query = model.decode_head.query_feat.weight
    optimizer = torch.optim.AdamW([query], lr=1e-4, weight_decay=0.05)
    query.grad = torch.ones_like(query)
    optimizer.step()  # exp_avg / exp_avg_sq / step tensors in the state, as after training
    query.grad = None
    meta = dict(
        epoch=0,
        iter=30000,
        cfg="model = dict(type='EncoderDecoder')",  # the run's config text
        seed=1234,
        experiment_name="m2f-sl22-bt4-80k-512x-VOC_20231201_000000",
        time=time.strftime("%Y%m%d_%H%M%S"),
        mmengine_version=mmengine.__version__,
        dataset_meta=dict(
            classes=tuple(VOC12.class_names),
            palette=[[int(c) for c in rgb] for rgb in VOC12.palette[:21]],
        ),
    )
    return dict(
        meta=meta,
        state_dict=weights_to_cpu(get_state_dict(model)),
        message_hub=hub.state_dict(),
        optimizer=optimizer.state_dict(),
        param_schedulers=[
            dict(eta_min=0, power=0.9, begin=0, end=80000, by_epoch=False, last_step=30000)
        ],
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(checkpoint path, its state_dict) of a random full-size model of the VOC config."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings
    from mmseg.registry import MODELS

    cfg = Config.fromfile(VOC)
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope("mmseg")
    cfg.model.backbone.init_cfg = None  # random weights; no download
    torch.manual_seed(7)
    model = MODELS.build(cfg.model)
    checkpoint = _authors_layout(model)
    path = tmp_path_factory.mktemp("authors") / "best_mIoU_iter_30000.pth"
    torch.save(checkpoint, path)
    return path, checkpoint["state_dict"]


@pytest.fixture(scope="module")
def runner(saved, tmp_path_factory):
    """The runner tools/test.py builds for the VOC config and the saved checkpoint."""
    from mmengine.runner import Runner
    from tool_modules import load_tool

    test_tool = load_tool("test")
    work = tmp_path_factory.mktemp("test_work")
    args = test_tool.parse_args([str(VOC), str(saved[0]), "--work-dir", str(work)])
    cfg = test_tool.build_cfg(args)
    assert cfg.load_from == str(saved[0])
    cfg.model.backbone.init_cfg = None  # no Pretrained weights file on a test machine
    return Runner.from_cfg(cfg)


def test_the_saved_model_has_50_queries(saved):
    _, state = saved
    for key in QUERY_KEYS:
        assert tuple(state[key].shape) == (50, 256), key
    assert tuple(state["decode_head.cls_embed.weight"].shape) == (22, 256)  # 21 + no-object
    assert sum(v.numel() for v in state.values()) > 200e6  # the full Swin-L network


def test_authors_layout_loads_strictly_through_the_test_tool(saved, runner):
    from fma._compat import mmengine_checkpoint_globals

    _, state = saved
    model = runner.model
    before = model.state_dict()
    assert not torch.equal(before[QUERY_KEYS[1]], state[QUERY_KEYS[1]])  # a different init
    with mmengine_checkpoint_globals():  # what tools/test.py wraps runner.test() in
        checkpoint = runner.load_checkpoint(runner._load_from, strict=True)
    assert checkpoint["meta"]["iter"] == 30000
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


@pytest.mark.parametrize(
    "change, message",
    [
        ("queries_100", r"size mismatch for decode_head\.query_embed\.weight"),
        ("missing", r"missing keys in source state_dict: decode_head\.query_feat\.weight"),
        ("unexpected", r"unexpected key in source state_dict: decode_head\.extra\.weight"),
    ],
)
def test_a_checkpoint_that_does_not_fit_is_refused(saved, runner, change, message):
    """Known failures: mmseg's default 100 queries, a missing key, an extra key."""
    from mmengine.runner.checkpoint import _load_checkpoint_to_model

    state = dict(saved[1])
    if change == "queries_100":
        for key in QUERY_KEYS:
            state[key] = torch.zeros(100, 256)
    elif change == "missing":
        del state[QUERY_KEYS[1]]
    else:
        state["decode_head.extra.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match=re.compile(message)):
        _load_checkpoint_to_model(runner.model, {"state_dict": state}, strict=True)
