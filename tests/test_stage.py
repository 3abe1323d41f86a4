"""fma.stage: skip-done, failures by name, worker processes, sharding."""

from __future__ import annotations

from pathlib import Path

import pytest

from fma.io import write_text_atomic
from fma.stage import run_per_image, shard_ids


def _write_upper(image_id: str, out_dir: str) -> None:
    if image_id == "bad":
        raise ValueError("cannot read image")
    write_text_atomic(Path(out_dir) / f"{image_id}.txt", image_id.upper())


@pytest.mark.parametrize("workers", [0, 2])
def test_run_per_image_skips_and_reports(tmp_path, workers):
    (tmp_path / "a.txt").write_text("A")
    ids = ["a", "b", "bad", "c"]
    rep = run_per_image(
        ids,
        _write_upper,
        (str(tmp_path),),
        output_path=lambda i: tmp_path / f"{i}.txt",
        workers=workers,
        progress=False,
    )
    assert rep.skipped == ["a"]
    assert sorted(rep.done) == ["b", "c"]
    assert rep.failed == {"bad": "ValueError: cannot read image"}
    assert not rep.ok and "FAILED bad" in rep.summary()
    assert (tmp_path / "c.txt").read_text() == "C"


def test_rerun_with_nothing_to_do_says_so_in_one_line(tmp_path, capsys):
    args = (str(tmp_path),)
    out = lambda i: tmp_path / f"{i}.txt"  # noqa: E731
    run_per_image(["a", "b"], _write_upper, args, output_path=out, desc="SAMS", progress=True)
    first = capsys.readouterr().err
    assert "SAMS" in first and "2/2" in first  # the progress bar of the first run
    rep = run_per_image(["a", "b"], _write_upper, args, output_path=out, desc="SAMS")
    assert rep.skipped == ["a", "b"] and rep.ok
    assert capsys.readouterr().err == "SAMS: nothing to do, all 2 images done\n"
    run_per_image(["a", "b"], _write_upper, args, output_path=out, progress=False)
    assert capsys.readouterr().err == ""


def test_shard_ids_are_disjoint_and_complete():
    ids = [str(i) for i in range(11)]
    shards = [shard_ids(ids, i, 3) for i in range(3)]
    assert sorted(i for s in shards for i in s) == sorted(ids)
    assert shards[0] == ["0", "3", "6", "9"]
    with pytest.raises(ValueError):
        shard_ids(ids, 3, 3)


def _square(image_id: str, offset: int) -> int:
    if image_id == "bad":
        raise ValueError("no such image")
    if image_id == "dies":
        import os

        os._exit(3)  # a worker killed mid-image
    return int(image_id) ** 2 + offset


@pytest.mark.parametrize("workers", [0, 2])
def test_map_per_image_returns_values(workers):
    from fma.stage import map_per_image

    ids = [str(i) for i in range(7)]
    got = map_per_image(ids, _square, (1,), workers=workers, progress=False)
    assert got == {i: int(i) ** 2 + 1 for i in ids}


def test_map_per_image_names_every_failed_image_after_the_rest():
    from fma.stage import StageFailedError, map_per_image

    ids = ["1", "bad", "2", "dies", "3"]
    with pytest.raises(StageFailedError) as info:
        map_per_image(ids, _square, (0,), workers=2, progress=False)
    assert set(info.value.failed) == {"bad", "dies"}
    assert "ValueError: no such image" in info.value.failed["bad"]
    assert "2 image(s) failed" in str(info.value) and "bad:" in str(info.value)
