"""Stage II plug-in parts on their own: seed datasets, provenance, the mmcv-ops check, backbone
weights and the VOC server archive."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmseg", reason="stage II needs mmsegmentation (pip install fma[seg])")

from mmengine.config import Config

from fma.engine import stage2
from fma.io import file_sha256
from fma.mmseg_ext import (
    COCOObjectDataset,
    MmcvOpsMissingError,
    VOCSeedDataset,
    check_compiled_ops,
    describe_seeds,
)
from fma.mmseg_ext import hooks as hooks_module


def test_voc_dataset_reads_labels_from_the_seed_folder(stage2_voc):
    voc, seeds = stage2_voc["voc"], stage2_voc["seeds_no_255"]
    ds = VOCSeedDataset(split="train_aug", data_root=str(voc), seed_dir=str(seeds))
    assert len(ds) == 6 and ds.metainfo["classes"][20] == "tvmonitor"
    first = ds.get_data_info(0)
    assert first["img_path"] == str(voc / "JPEGImages" / "synth_000.jpg")
    assert first["seg_map_path"] == str(seeds / "synth_000.png")
    assert first["reduce_zero_label"] is False
    gt = VOCSeedDataset(split="val", data_root=str(voc))
    assert gt.get_data_info(0)["seg_map_path"] == str(voc / "SegmentationClass" / "synth_000.png")
    images_only = VOCSeedDataset(split="test", data_root=str(voc), with_labels=False)
    assert "seg_map_path" not in images_only.get_data_info(0)


def test_relative_seed_dir_is_taken_from_the_cwd_not_data_root(stage2_voc, tmp_path, monkeypatch):
    voc, seeds = stage2_voc["voc"], stage2_voc["seeds_no_255"]
    monkeypatch.chdir(seeds.parent)
    ds = VOCSeedDataset(split="train_aug", data_root=str(voc), seed_dir=seeds.name)
    assert Path(ds.get_data_info(0)["seg_map_path"]).parent == seeds
    monkeypatch.chdir(tmp_path)  # the same relative path elsewhere does not exist
    with pytest.raises(FileNotFoundError, match="seed folder .* not found .*current directory"):
        VOCSeedDataset(split="train_aug", data_root=str(voc), seed_dir=seeds.name)


def test_missing_seed_files_are_listed_before_training(stage2_voc, tmp_path):
    voc = stage2_voc["voc"]
    partial = tmp_path / "seeds"
    partial.mkdir()
    (partial / "synth_001.png").write_bytes(
        (stage2_voc["seeds_no_255"] / "synth_001.png").read_bytes()
    )
    with pytest.raises(
        FileNotFoundError, match=r"5 of 6 label maps missing \(synth_000, synth_002"
    ):
        VOCSeedDataset(split="train_aug", data_root=str(voc), seed_dir=str(partial))


def test_coco_dataset_has_81_classes():
    assert len(COCOObjectDataset.METAINFO["classes"]) == 81
    assert COCOObjectDataset.METAINFO["classes"][80] == "toothbrush"
    assert len(COCOObjectDataset.METAINFO["palette"]) == 81


def test_describe_seeds_names_the_manifest(stage2_voc):
    voc, seeds = stage2_voc["voc"], stage2_voc["seeds_no_255"]
    ds = VOCSeedDataset(split="train_aug", data_root=str(voc), seed_dir=str(seeds))
    (rec,) = describe_seeds(ds)["seeds"]
    assert rec["dir"] == str(seeds) and rec["format"] == "label_maps" and rec["count"] == 6
    assert rec["manifest_sha256"] == file_sha256(seeds / "manifest.json")
    assert rec["producer"]["tool"] == "tests"
    gt = VOCSeedDataset(split="val", data_root=str(voc))
    assert describe_seeds(gt)["seeds"][0]["manifest_sha256"] is None


class _FakeDeformable(torch.nn.Module):
    pass


_FakeDeformable.__name__ = "MultiScaleDeformableAttention"


@pytest.fixture
def restore_deform_attn(monkeypatch):
    """Undo ``use_pytorch_deform_attn`` (a process-wide patch) after the test."""
    from mmcv.ops import multi_scale_deform_attn as msda

    monkeypatch.setattr(
        msda, "MultiScaleDeformableAttnFunction", msda.MultiScaleDeformableAttnFunction
    )
    return msda


def test_cuda_without_compiled_ops_falls_back_or_is_refused_with_the_flag(
    monkeypatch, restore_deform_attn
):
    msda = restore_deform_attn
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), _FakeDeformable())
    monkeypatch.setattr(hooks_module, "compiled_ops_missing", lambda: True)
    with pytest.raises(MmcvOpsMissingError, match="--require-compiled-ops"):
        check_compiled_ops(model, cuda=True, require_compiled=True)
    assert not getattr(msda.MultiScaleDeformableAttnFunction, "fma_pytorch_fallback", False)
    assert check_compiled_ops(model, cuda=False, require_compiled=True) == "pytorch"  # CPU
    assert check_compiled_ops(torch.nn.Conv2d(1, 1, 1), cuda=True, require_compiled=True) is None
    assert check_compiled_ops(model, cuda=True) == "fallback"  # without the flag: PyTorch op
    assert msda.MultiScaleDeformableAttnFunction.fma_pytorch_fallback
    monkeypatch.setattr(hooks_module, "compiled_ops_missing", lambda: False)
    assert check_compiled_ops(model, cuda=True, require_compiled=True) == "compiled"


def test_cuda_check_from_the_config(restore_deform_attn):
    from stage2_helpers import STAGE2

    msda = restore_deform_attn
    m2f = Config.fromfile(STAGE2 / "mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py")
    dl = Config.fromfile(STAGE2 / "deeplabv3plus_r101-d8_4xb4-40k_voc12aug-seed-512x512.py")
    assert hooks_module.compiled_ops_missing()  # the CPU set runs on mmcv-lite
    with pytest.raises(MmcvOpsMissingError, match="mmcv-lite"):
        stage2.check_cuda_ops(m2f, cuda=True, require_compiled=True)
    assert stage2.check_cuda_ops(dl, cuda=True, require_compiled=True) is None
    assert stage2.check_cuda_ops(m2f, cuda=False, require_compiled=True) == "pytorch"
    assert not getattr(msda.MultiScaleDeformableAttnFunction, "fma_pytorch_fallback", False)
    assert stage2.check_cuda_ops(m2f, cuda=True) == "fallback"
    assert msda.MultiScaleDeformableAttnFunction.fma_pytorch_fallback


def test_the_tools_pass_the_flag_on(tmp_path, monkeypatch, restore_deform_attn):
    from stage2_helpers import STAGE2
    from tool_modules import load_tool

    msda = restore_deform_attn
    config = str(STAGE2 / "mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py")
    ckpt = tmp_path / "iter_1.pth"
    torch.save({"state_dict": {}}, ckpt)  # a readable checkpoint: the ops check comes next
    monkeypatch.chdir(tmp_path)  # the config's relative backbone path does not exist here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    work = ["--work-dir", str(tmp_path / "w")]
    with pytest.raises(MmcvOpsMissingError, match="--require-compiled-ops"):
        load_tool("train").main([config, "--require-compiled-ops", *work])
    with pytest.raises(MmcvOpsMissingError, match="--require-compiled-ops"):
        load_tool("test").main([config, str(ckpt), "--require-compiled-ops", *work])
    assert not getattr(msda.MultiScaleDeformableAttnFunction, "fma_pytorch_fallback", False)
    # without the flag the run goes on with the PyTorch op, up to the missing backbone weights
    with pytest.raises(FileNotFoundError, match="backbone weights"):
        load_tool("train").main([config, "--no-download", *work])
    assert msda.MultiScaleDeformableAttnFunction.fma_pytorch_fallback


class _Response(io.BytesIO):
    length = None


def _opener(payload: bytes, calls: list):
    def open_url(url: str):
        calls.append(url)
        return _Response(payload)

    return open_url


def _cfg_with_weights(path: Path) -> Config:
    return Config(
        dict(model=dict(backbone=dict(init_cfg=dict(type="Pretrained", checkpoint=str(path)))))
    )


def test_known_backbone_weights_are_downloaded_with_a_hash_check(tmp_path, monkeypatch):
    payload = b"not really a swin checkpoint"
    name = "swin_large_patch4_window12_384_22k_20220412-6580f57d.pth"
    digest = hashlib.sha256(payload).hexdigest()
    known = stage2.PretrainedWeights("https://example.invalid/" + name, digest[:8], "test")
    monkeypatch.setitem(stage2.PRETRAINED, name, known)
    target = tmp_path / "checkpoints" / name
    calls: list = []
    assert stage2.resolve_pretrained(_cfg_with_weights(target), opener=_opener(payload, calls)) == [
        target
    ]
    assert target.read_bytes() == payload and calls == [known.url]
    # present: used as it is, nothing fetched
    assert stage2.resolve_pretrained(_cfg_with_weights(target), opener=_opener(b"", calls))
    assert len(calls) == 1


def test_a_corrupt_download_leaves_no_file(tmp_path, monkeypatch):
    name = "resnet101_v1c-e67eebb6.pth"
    target = tmp_path / name
    with pytest.raises(ValueError, match="does not match the expected e67eebb6"):
        stage2.resolve_pretrained(_cfg_with_weights(target), opener=_opener(b"garbage", []))
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_missing_weights_say_where_to_put_them(tmp_path):
    known = tmp_path / "resnet101_v1c-e67eebb6.pth"
    with pytest.raises(FileNotFoundError, match=r"download https://download\.openmmlab\.com/.*"):
        stage2.resolve_pretrained(_cfg_with_weights(known), download=False)

    def offline(url):
        raise OSError("no network")

    with pytest.raises(FileNotFoundError, match="download failed .*no network.*save it as"):
        stage2.resolve_pretrained(_cfg_with_weights(known), opener=offline)
    with pytest.raises(FileNotFoundError, match="model.backbone.init_cfg.checkpoint"):
        stage2.resolve_pretrained(_cfg_with_weights(tmp_path / "mine.pth"))


def test_drop_annotations_inside_test_time_aug():
    tta = [
        dict(type="LoadImageFromFile"),
        dict(
            type="TestTimeAug",
            transforms=[[dict(type="Resize")], [dict(type="LoadAnnotations")], [dict(type="Pack")]],
        ),
    ]
    out = stage2._drop_annotations(tta)
    assert out[1]["transforms"] == [[dict(type="Resize")], [dict(type="Pack")]]
    assert tta[1]["transforms"][1] == [dict(type="LoadAnnotations")]  # input unchanged


def test_server_archive_needs_every_prediction(tmp_path):
    folder = tmp_path / stage2.VOC_SERVER_SUBDIR
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(b"png")
    with pytest.raises(FileNotFoundError, match="1 of 2 predictions missing \\(b\\)"):
        stage2.make_server_archive(tmp_path, ["a", "b"])
    (folder / "b.png").write_bytes(b"png")
    archive = stage2.make_server_archive(tmp_path, ["b", "a"])
    with tarfile.open(archive) as tar:
        assert tar.getnames() == [
            "results/VOC2012/Segmentation/comp6_test_cls/a.png",
            "results/VOC2012/Segmentation/comp6_test_cls/b.png",
        ]


def test_other_local_ranks_wait_for_the_download_of_rank_0(tmp_path):
    import threading

    target = tmp_path / "resnet101_v1c-e67eebb6.pth"

    def fail(url):
        raise AssertionError("only local rank 0 downloads")

    writer = threading.Timer(0.5, lambda: target.write_bytes(b"weights"))
    writer.start()
    got = stage2.resolve_pretrained(_cfg_with_weights(target), opener=fail, local_rank=1)
    writer.join()
    assert got == [target]
    target.unlink()
    with pytest.raises(FileNotFoundError, match="local rank 0 did not finish the download"):
        stage2.resolve_pretrained(_cfg_with_weights(target), opener=fail, local_rank=1, wait_s=0)
