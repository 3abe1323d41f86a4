"""tools/download.py and the weights table (file:// URLs only), and the one-line error of the
stage I tools for a missing CLIP file."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest
import torch
from tool_modules import load_tool

from fma import weights as weights_module
from fma.io.download import part_path
from fma.sam.builder import SAM_CHECKPOINTS
from fma.weights import WEIGHTS, expected_sha256, get_weights, weights_dir

REPO = Path(__file__).resolve().parents[2]
VOC_CLS = REPO / "configs" / "stage1" / "fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py"
PAYLOAD = b"not really CLIP weights\n" * 5000


@pytest.fixture(scope="module")
def tool():
    return load_tool("download")


@pytest.fixture
def served(tmp_path, monkeypatch):
    """The ``clip`` entry pointed at a local file:// copy of PAYLOAD with its sha256."""
    src = tmp_path / "server" / "ViT-B-16.pt"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    entry = dataclasses.replace(
        WEIGHTS["clip"], url=src.as_uri(), sha256=hashlib.sha256(PAYLOAD).hexdigest()
    )
    monkeypatch.setitem(WEIGHTS, "clip", entry)
    return src


def test_one_table_reuses_the_sam_checkpoints() -> None:
    assert list(WEIGHTS) == ["clip", "sam", "sam_vit_l", "sam_vit_b"]
    clip = WEIGHTS["clip"]
    assert clip.filename == "ViT-B-16.pt" and clip.flag == "--clip"
    assert clip.url.split("/")[-2] == clip.sha256  # OpenAI's URL holds the file's sha256
    for name, kind in (("sam", "vit_h"), ("sam_vit_l", "vit_l"), ("sam_vit_b", "vit_b")):
        sam = SAM_CHECKPOINTS[kind]
        w = WEIGHTS[name]
        assert (w.filename, w.url, w.sha256, w.flag) == (sam.filename, sam.url, sam.sha256, "--sam")
    assert expected_sha256("sam_vit_h_4b8939.pth") == SAM_CHECKPOINTS["vit_h"].sha256
    assert expected_sha256("ViT-B-16.pt") == clip.sha256
    assert expected_sha256("mine.pt") is None
    with pytest.raises(KeyError, match="known: clip, sam"):
        get_weights("sam_vit_x")


def test_weights_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("FMA_WEIGHTS_DIR", raising=False)
    assert weights_dir() == Path("pretrains")
    monkeypatch.setenv("FMA_WEIGHTS_DIR", str(tmp_path))
    assert weights_dir() == tmp_path and weights_dir("x") == Path("x")


def test_download_prints_the_option_then_skips(tool, served, tmp_path, capsys) -> None:
    folder = tmp_path / "pretrains"
    assert tool.main(["clip", "--dir", str(folder), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    target = folder / "ViT-B-16.pt"
    assert out == f"--clip {target}\n"
    assert f"clip: downloaded {target}" in err
    assert target.read_bytes() == PAYLOAD and not part_path(target).exists()
    served.unlink()  # a complete file is verified and kept: no download
    assert tool.main(["clip", "--dir", str(folder), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert out == f"--clip {target}\n" and f"clip: present {target}" in err


def test_env_dir_and_a_part_file_a_server_cannot_resume(
    tool, served, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("FMA_WEIGHTS_DIR", str(tmp_path / "env_dir"))
    target = tmp_path / "env_dir" / "ViT-B-16.pt"
    target.parent.mkdir()
    part_path(target).write_bytes(PAYLOAD[:5000])  # file:// ignores the range: starts over
    assert tool.main(["clip", "--no-progress"]) == 0
    assert capsys.readouterr().out == f"--clip {target}\n"
    assert target.read_bytes() == PAYLOAD and not part_path(target).exists()


def test_a_mismatched_download_fails_and_keeps_nothing(tool, served, tmp_path, capsys) -> None:
    served.write_bytes(PAYLOAD + b"changed")
    folder = tmp_path / "pretrains"
    assert tool.main(["clip", "--dir", str(folder), "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: clip: download of ") and "does not match" in err
    assert not (folder / "ViT-B-16.pt").exists() and not part_path(folder / "ViT-B-16.pt").exists()


def test_an_unreachable_url_names_the_offline_fix(tool, served, tmp_path, capsys) -> None:
    served.unlink()
    assert tool.main(["clip", "--dir", str(tmp_path / "w"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: clip: download of file://") and err.count("\n") == 1
    assert "python tools/download.py clip --from FILE" in err


@pytest.mark.parametrize("link", [True, False], ids=["hard-link", "copy"])
def test_from_file_installs_offline(tool, served, tmp_path, monkeypatch, capsys, link) -> None:
    copy = tmp_path / "Downloads" / "clip.pt"
    copy.parent.mkdir()
    copy.write_bytes(PAYLOAD)
    served.unlink()  # offline: the URL is never read
    if not link:

        def no_links(src, dst):
            raise OSError(1, "Operation not permitted")

        monkeypatch.setattr(weights_module.os, "link", no_links)
    folder = tmp_path / "pretrains"
    assert tool.main(["clip", "--dir", str(folder), "--from", str(copy), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    target = folder / "ViT-B-16.pt"
    assert out == f"--clip {target}\n"
    assert f"clip: {'linked' if link else 'copied'} {target}" in err
    assert target.read_bytes() == PAYLOAD
    assert os.path.samefile(copy, target) is link


def test_from_a_wrong_file_installs_nothing(tool, served, tmp_path, capsys) -> None:
    wrong = tmp_path / "other.pt"
    wrong.write_bytes(b"another file")
    folder = tmp_path / "pretrains"
    assert tool.main(["clip", "--dir", str(folder), "--from", str(wrong), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: clip: {wrong}: sha256 ") and "is not the published" in err
    assert not (folder / "ViT-B-16.pt").exists()


def test_a_wrong_file_in_the_folder_is_reported_and_left(tool, served, tmp_path, capsys) -> None:
    folder = tmp_path / "pretrains"
    folder.mkdir()
    (folder / "ViT-B-16.pt").write_bytes(b"half a file")
    assert tool.main(["clip", "--dir", str(folder), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "delete it and run `python tools/download.py clip` again" in err
    assert (folder / "ViT-B-16.pt").read_bytes() == b"half a file"


def test_list_shows_the_state(tool, served, tmp_path, capsys) -> None:
    folder = tmp_path / "pretrains"
    folder.mkdir()
    (folder / "ViT-B-16.pt").write_bytes(PAYLOAD)
    part_path(folder / "sam_vit_h_4b8939.pth").write_bytes(b"x" * 3 * 2**20)
    assert tool.main(["--list", "--dir", str(folder)]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["clip"][:4] == ["clip", "ViT-B-16.pt", "present", "--clip"]
    assert rows["sam"][2:4] == ["partial", "(3"]
    assert rows["sam_vit_b"][2] == "missing"


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["clip", "sam", "--from", "x.pt"], ["clip", "--from", "/nonexistent/x.pt"]],
    ids=["no-name", "unknown", "from-two-names", "from-missing"],
)
def test_bad_arguments_exit_2(tool, argv, capsys) -> None:
    with pytest.raises(SystemExit) as err:
        tool.main(argv)
    assert err.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["train", "test"])
def test_stage1_tools_stop_on_a_missing_clip_file_in_one_line(name, tmp_path, capsys) -> None:
    missing = tmp_path / "pretrains" / "ViT-B-16.pt"
    argv = [str(VOC_CLS)]
    if name == "test":
        ckpt = tmp_path / "iter_1800.pth"
        torch.save({"state_dict": {}}, ckpt)  # readable, so the CLIP file is what stops it
        argv.append(str(ckpt))
    argv += ["--work-dir", str(tmp_path / "wd"), "--cfg-options"]
    argv.append(f"model.clip.pretrained={missing}")
    with pytest.raises(SystemExit) as err:
        load_tool(name).main(argv)
    assert err.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: {missing}: CLIP weights file not found; run `python tools/download.py clip` "
        "and pass the path it prints (model.clip.pretrained)\n"
    )
    assert not (tmp_path / "wd").exists()  # stopped before the Runner made its work dir


def test_check_clip_weights_passes_tags_files_and_other_configs(tmp_path) -> None:
    from mmengine.config import Config

    from fma.engine.config import check_clip_weights

    present = tmp_path / "ViT-B-16.pt"
    present.write_bytes(b"")
    for pretrained in ("openai", None, str(present)):
        check_clip_weights(Config(dict(model=dict(clip=dict(pretrained=pretrained)))))
    check_clip_weights(Config(dict(model=dict(type="EncoderDecoder"))))  # stage II: no CLIP
    with pytest.raises(FileNotFoundError, match="tools/download.py clip"):
        check_clip_weights(Config(dict(model=dict(clip=dict(pretrained=str(tmp_path / "x.pt"))))))
