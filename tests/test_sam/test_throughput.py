"""SAM throughput: SDPA attention, precision, batched crop passes, batch sizes, run settings."""

from __future__ import annotations

import copy
from functools import partial

import pytest
import torch
from tool_modules import load_tool

from fma.apis.sam_masks import run_sam_masks
from fma.io import read_manifest
from fma.sam.level_masks import FmaMaskGenerator
from fma.sam.presets import get_preset
from fma.sam.run_settings import SamRunSettings
from fma.sam.throughput import (
    SdpaAttention,
    auto_crop_batch,
    auto_points_per_batch,
    check_precision,
    encode_images,
    prepare_sam,
    use_sdpa_attention,
)

TINY = dict(source="sam", model_type="tiny", preset="fast", device="cpu",
            preset_overrides=dict(points_per_side=4))  # fmt: skip
GIB = 1 << 30


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).abs().max() / want.float().abs().max())


# ----------------------------------------------------------------------------------------
# SDPA attention against segment-anything's
# ----------------------------------------------------------------------------------------
def test_sdpa_equals_attention_fp32_tiny_encoder(random_sam):
    """The whole tiny encoder (windowed and global attention, relative positions): fp32 SDPA
    agrees with segment-anything's attention to 1e-5 of the output's largest value."""
    enc = copy.deepcopy(random_sam.image_encoder)
    torch.manual_seed(0)
    for blk in enc.blocks:  # non-zero relative-position tables (zeros in a fresh model)
        blk.attn.rel_pos_h.data.normal_(0, 0.5)
        blk.attn.rel_pos_w.data.normal_(0, 0.5)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        want = enc(x)
        assert use_sdpa_attention(enc) == len(enc.blocks) and use_sdpa_attention(enc) == 0
        got = enc(x)
    assert got.shape == want.shape == (2, 128, 8, 8)
    assert _rel_err(got, want) < 1e-5


@pytest.mark.parametrize(("window", "tokens"), [(14, 20), (0, 16)], ids=["window14", "global"])
def test_sdpa_equals_attention_vit_b_block(window, tokens):
    """A ViT-B block (768 channels, 12 heads, relative positions) on a small input: windowed
    (window 14 on 20x20 tokens: padded windows) and global (16x16 tokens)."""
    from segment_anything.modeling.image_encoder import Block

    torch.manual_seed(0)
    size = (window, window) if window else (tokens, tokens)
    blk = Block(768, 12, qkv_bias=True, use_rel_pos=True, window_size=window, input_size=size,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))  # fmt: skip
    blk.attn.rel_pos_h.data.normal_(0, 0.5)
    blk.attn.rel_pos_w.data.normal_(0, 0.5)
    blk.eval()
    x = torch.randn(1, tokens, tokens, 768)
    with torch.no_grad():
        want = blk(x)
        ref_attn = blk.attn
        blk.attn = SdpaAttention(ref_attn)
        got = blk(x)
        # reduced precision: close to the fp32 result (bf16 has 8 significant bits)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got_bf16 = blk(x)
    assert _rel_err(got, want) < 1e-5
    assert 1e-4 < _rel_err(got_bf16, want) < 5e-2  # rounded in bf16, close to fp32


def test_prepare_sam_keeps_fp32_and_swaps_reduced(random_sam):
    from segment_anything.modeling.image_encoder import Attention

    sam = copy.deepcopy(random_sam)
    prepare_sam(sam, "fp32")
    assert all(type(b.attn) is Attention for b in sam.image_encoder.blocks)
    qkv, n_params = sam.image_encoder.blocks[0].attn.qkv, len(list(sam.parameters()))
    prepare_sam(sam, "bf16")
    assert all(isinstance(b.attn, SdpaAttention) for b in sam.image_encoder.blocks)
    assert sam.image_encoder.blocks[0].attn.qkv is qkv  # the same weights, not a copy
    assert len(list(sam.parameters())) == n_params


def test_check_precision():
    check_precision("fp32", "cpu")
    check_precision("bf16", "cpu")
    check_precision("fp16", "cuda:0")  # a name check only: no device needed
    with pytest.raises(ValueError, match="needs a CUDA device"):
        check_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        check_precision("fp8", "cpu")


# ----------------------------------------------------------------------------------------
# batched crop passes
# ----------------------------------------------------------------------------------------
def test_encode_images_equals_set_image(tiny_sam, synthetic_image):
    gen = FmaMaskGenerator(tiny_sam, points_per_side=4)
    images = [synthetic_image(48, 64, 0), synthetic_image(90, 40, 1), synthetic_image(64, 64, 2)]
    feats, sizes = encode_images(gen.predictor, images)
    assert feats.shape == (3, 128, 8, 8) and feats.dtype == torch.float32
    for i, image in enumerate(images):
        gen.predictor.set_image(image)
        assert sizes[i] == gen.predictor.input_size
        assert torch.allclose(feats[i : i + 1], gen.predictor.features, rtol=0, atol=1e-6)
    gen.predictor.reset_image()


def test_batched_crops_write_the_same_fp32_records(tiny_sam, synthetic_image):
    """fp32: one encoder call for all 5 crops (or 2 per call) gives the records of one call per
    crop (the tiny SAM on CPU; auto_crop_batch still keeps fp32 at one crop per call)."""
    kw = get_preset("fma", points_per_side=6).generator_kwargs()
    image = synthetic_image(72, 96, 3)
    want = FmaMaskGenerator(tiny_sam, **kw).generate(image)
    assert len(want) > 3 and {r["crop_box"][2] for r in want} != {96}  # masks from crops too
    for crop_batch in (2, 5):
        assert FmaMaskGenerator(tiny_sam, crop_batch=crop_batch, **kw).generate(image) == want


def test_bf16_generator(tiny_sam, synthetic_image):
    sam = prepare_sam(copy.deepcopy(tiny_sam), "bf16")
    kw = get_preset("fma", points_per_side=6).generator_kwargs()
    image = synthetic_image(72, 96, 3)
    ref = FmaMaskGenerator(tiny_sam, **kw)
    gen = FmaMaskGenerator(sam, precision="bf16", crop_batch=5, **kw)
    ref.predictor.set_image(image)
    feats, _ = encode_images(gen.predictor, [image], "bf16")
    assert feats.dtype == torch.float32 and _rel_err(feats, ref.predictor.features) < 2e-2
    got = gen.generate(image)
    want = ref.generate(image)
    assert len(got) > 0 and abs(len(got) - len(want)) <= max(2, len(want) // 4)
    assert set(got[0]) == set(want[0])
    with pytest.raises(ValueError, match="needs a CUDA device"):
        FmaMaskGenerator(tiny_sam, precision="fp16")
    with pytest.raises(ValueError, match="crop_batch"):
        FmaMaskGenerator(tiny_sam, crop_batch=0)


# ----------------------------------------------------------------------------------------
# batch sizes from free memory
# ----------------------------------------------------------------------------------------
def test_auto_points_per_batch():
    assert auto_points_per_batch("cpu", 64) == 64
    assert auto_points_per_batch("cpu", 32, free_bytes=100 * GIB) == 32
    # half the free memory over 96 MiB per point, a power of two in [64, 256]
    assert auto_points_per_batch("cuda", 64, free_bytes=0) == 64
    assert auto_points_per_batch("cuda:0", 64, free_bytes=20 * GIB) == 64  # 106
    assert auto_points_per_batch("cuda:0", 64, free_bytes=40 * GIB) == 128  # 213
    assert auto_points_per_batch("cuda:0", 64, free_bytes=130 * GIB) == 256  # 693


def test_auto_crop_batch():
    assert auto_crop_batch("cuda", "fp32", 5, free_bytes=130 * GIB) == 1
    assert auto_crop_batch("cpu", "bf16", 5) == 1
    assert auto_crop_batch("cuda", "bf16", 1, free_bytes=130 * GIB) == 1
    assert auto_crop_batch("cuda", "bf16", 5, free_bytes=130 * GIB) == 5
    assert auto_crop_batch("cuda", "fp16", 5, free_bytes=14 * GIB) == 2  # 14 / 2 / 3
    assert auto_crop_batch("cuda", "bf16", 5, free_bytes=4 * GIB) == 1


# ----------------------------------------------------------------------------------------
# the run: settings object, precision in the manifest
# ----------------------------------------------------------------------------------------
def test_precision_recorded_and_a_change_refused(tmp_path, write_images):
    write_images(tmp_path / "imgs", 2)
    kw = dict(image_dir=tmp_path / "imgs", progress=False, **TINY)
    fp32 = run_sam_masks(tmp_path / "a", **kw)
    assert "precision" not in read_manifest(fp32.out_dir).params  # absent = fp32
    with pytest.raises(ValueError, match="precision='fp32', this run has precision='bf16'"):
        run_sam_masks(tmp_path / "a", precision="bf16", **kw)
    bf16 = run_sam_masks(tmp_path / "b", precision="bf16", **kw)
    assert bf16.report.ok and len(bf16.report.done) == 2
    assert read_manifest(bf16.out_dir).params["precision"] == "bf16"
    again = run_sam_masks(tmp_path / "b", precision="bf16", **kw)
    assert again.report.done == [] and len(again.report.skipped) == 2
    with pytest.raises(ValueError, match="precision='bf16', this run has precision='fp32'"):
        run_sam_masks(tmp_path / "b", **kw)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        run_sam_masks(tmp_path / "c", precision="fp16", **kw)
    assert not (tmp_path / "c" / "masks" / "all" / "manifest.json").exists()
    with pytest.raises(ValueError, match="source='sam' only"):
        run_sam_masks(tmp_path / "d", image_dir=tmp_path / "imgs", source="superpixels",
                      precision="bf16")  # fmt: skip


def test_settings_object_and_keywords_write_the_same_files(tmp_path, write_images):
    write_images(tmp_path / "imgs", 2)
    settings = SamRunSettings(image_dir=tmp_path / "imgs", progress=False, **TINY)
    a = run_sam_masks(tmp_path / "a", settings)
    b = run_sam_masks(tmp_path / "b", image_dir=tmp_path / "imgs", progress=False, **TINY)
    c = run_sam_masks(tmp_path / "c", settings, crop_batch=3)  # a speed setting: same bytes
    files = [sorted((r.out_dir).glob("*.npz")) for r in (a, b, c)]
    assert len(files[0]) == 2
    for other in files[1:]:
        assert [p.read_bytes() for p in other] == [p.read_bytes() for p in files[0]]
    with pytest.raises(TypeError):
        run_sam_masks(tmp_path / "e", settings, no_such_setting=1)
    for bad in (dict(precision="fp8"), dict(crop_batch=0), dict(launcher="slurm"),
                dict(shard="2/2"), dict(workers=-1)):  # fmt: skip
        with pytest.raises(ValueError):
            settings.replace(**bad)


def test_tool_precision_option(tmp_path, write_images, write_config):
    write_images(tmp_path / "imgs", 1)
    cfg = write_config(tmp_path / "cfg.py", image_dir=str(tmp_path / "imgs"), precision="fp32",
                       **TINY)  # fmt: skip
    argv = [str(cfg), "--work-dir", str(tmp_path / "wd"), "--no-progress"]
    tool = load_tool("gen_sam_masks")
    assert tool.main([*argv, "--cfg-options", "sam_masks.precision=bf16"]) == 0
    assert read_manifest(tmp_path / "wd" / "masks" / "all").params["precision"] == "bf16"
    assert tool.main(argv) == 2  # fp32 into the bf16 folder: refused
    assert tool.main([*argv, "--cfg-options", "+sam_masks.precison=bf16"]) == 2  # not a setting
