"""The restricted unpickler and the reader of the official FMA-WSSS annotation pickles."""

from __future__ import annotations

import io
import pickle
import sys

import numpy as np
import pytest
from official_files import (
    SAM_MODULE,
    Hostile,
    official_modules,
    official_record,
    sam_uncompressed_rle,
    write_official_anns,
)

from fma.io.masks.records import SamMaskError, decode_rle
from fma.io.official_release import (
    OfficialAnns,
    official_mask_records,
    official_substitutes,
    read_official_anns,
)
from fma.io.safe_pickle import UnsafePickleError, load_data_pickle


def _masks() -> np.ndarray:
    """Three masks of a 3 x 4 image: left half (whole), right half (whole), one pixel (part)."""
    m = np.zeros((3, 3, 4), dtype=bool)
    m[0, :, :2] = True
    m[1, :, 2:] = True
    m[2, 1, 3] = True
    return m


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_data_pickles_load_with_numpy_arrays_and_containers(tmp_path, protocol) -> None:
    obj = {
        "a": np.arange(6, dtype=np.int16).reshape(2, 3),
        "b": [np.float32(1.5), np.int64(7), True, None, 2.5, 3 + 1j, "x", b"\x00\xff"],
        "c": (frozenset({1, 2}), {3}, slice(1, 5, 2), bytearray(b"ab")),
        "d": np.zeros((2, 2), dtype=bool),
    }
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    got = load_data_pickle(path)
    np.testing.assert_array_equal(got["a"], obj["a"])
    assert got["a"].dtype == np.int16 and got["d"].dtype == bool
    assert got["b"][:7] == obj["b"][:7] and got["b"][7] == b"\x00\xff"
    assert got["c"] == obj["c"]


def test_a_hostile_pickle_is_refused_and_never_runs(tmp_path) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "anns" / "2007_000032.pkl"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps(Hostile(marker)))
    with pytest.raises(UnsafePickleError) as err:
        load_data_pickle(path)
    assert str(err.value) == (
        f"{path}: refused to load: it references posix.system, which is not data"
    )
    assert not marker.exists()
    # The same through the official reader, with the authors' classes allowed.
    with pytest.raises(UnsafePickleError, match=r"2007_000032\.pkl: refused .* posix\.system"):
        read_official_anns(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("payload", "name"),
    [
        (b"cbuiltins\neval\n(S'1+1'\ntR.", "builtins.eval"),
        (b"cbuiltins\ngetattr\n(cbuiltins\nint\nS'real'\ntR.", "builtins.getattr"),
        (b"cnumpy\nload\n(S'x.npy'\ntR.", "numpy.load"),
        (b"csubprocess\nPopen\n(S'true'\ntR.", "subprocess.Popen"),
    ],
)
def test_names_outside_the_allowlist_are_refused(tmp_path, payload, name) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafePickleError, match=rf"x\.pkl: refused to load: it references {name}"):
        load_data_pickle(path)


def test_persistent_ids_codecs_and_corrupt_files_are_refused(tmp_path) -> None:
    class Persistent(pickle.Pickler):
        def persistent_id(self, obj):
            return "ext" if obj == "outside" else None

    buf = io.BytesIO()
    Persistent(buf, protocol=4).dump(["outside"])
    path = tmp_path / "p.pkl"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafePickleError, match="persistent id"):
        load_data_pickle(path)
    path.write_bytes(b"c_codecs\nencode\n(S'abc'\nS'rot13'\ntR.")
    with pytest.raises(UnsafePickleError, match="p.pkl: refused to load: .*codec 'rot13'"):
        load_data_pickle(path)
    path.write_bytes(pickle.dumps({"a": list(range(100))})[:-10])
    with pytest.raises(UnsafePickleError, match="p.pkl: not a readable data pickle"):
        load_data_pickle(path)


def test_official_annotations_read_without_the_authors_code(tmp_path) -> None:
    masks = _masks()
    recs = [official_record(m, lv) for m, lv in zip(masks, (2, 2, 1), strict=True)]
    path = tmp_path / "anns" / "img.pkl"
    write_official_anns(path, recs)
    assert SAM_MODULE not in sys.modules  # the writer's classes are gone again
    # An unrestricted load would need the authors' module; the restricted one does not.
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(path.read_bytes())
    got = read_official_anns(path)
    assert type(got) is list and len(got) == 3
    assert got[0]["segmentation"] == sam_uncompressed_rle(masks[0])
    assert [r["level"] for r in got] == [2, 2, 1] and got[2]["img_hw"] == (3, 4)
    records, h, w = official_mask_records(path)
    assert (h, w) == (3, 4)
    np.testing.assert_array_equal(decode_rle([r["segmentation"] for r in records], h, w), masks)
    assert [r["level"] for r in records] == [2, 2, 1]
    assert [r["area"] for r in records] == [6, 6, 1]
    assert records[0]["point_coords"] == [[0.0, 0.0]] and records[1]["bbox"] == [2, 0, 1, 2]


def test_binary_mask_mode_pickles_hold_numpy_arrays(tmp_path) -> None:
    masks = _masks()
    recs = [official_record(m, 2, mode="binary_mask") for m in masks]
    path = tmp_path / "anns" / "bin.pkl"
    write_official_anns(path, recs)
    with official_modules():  # loadable by the authors' own reader: a SamAnns of ndarrays
        loaded = pickle.loads(path.read_bytes())
        assert type(loaded).__name__ == "SamAnns" and isinstance(loaded[0]["segmentation"],
                                                                  np.ndarray)  # fmt: skip
    records, h, w = official_mask_records(path)
    np.testing.assert_array_equal(decode_rle([r["segmentation"] for r in records], h, w), masks)


def test_stand_in_classes_and_bad_records(tmp_path) -> None:
    masks = _masks()
    path = tmp_path / "a.pkl"
    write_official_anns(path, [official_record(masks[0], 2)])
    obj = load_data_pickle(path, substitutes=official_substitutes)
    assert type(obj) is OfficialAnns and not vars(obj)  # the pickled ``data`` is dropped
    bad = official_record(masks[0], 3)
    write_official_anns(path, [bad])
    with pytest.raises(SamMaskError, match="record 0: level 3 is not one of"):
        official_mask_records(path)
    bad = official_record(masks[0], 2)
    bad["img_hw"] = (4, 3)
    write_official_anns(path, [bad])
    with pytest.raises(SamMaskError, match=r"img_hw \[4, 3\] differs from the mask size \[3, 4\]"):
        official_mask_records(path)
    bad = official_record(masks[0], 2)
    bad["segmentation"]["counts"][-1] += 1
    write_official_anns(path, [bad])
    with pytest.raises(SamMaskError, match="covers 13 pixels"):
        official_mask_records(path)
    write_official_anns(path, [])
    with pytest.raises(SamMaskError, match="holds no masks"):
        official_mask_records(path)
    path.write_bytes(pickle.dumps({"not": "a list"}))
    with pytest.raises(SamMaskError, match="holds a dict, not the list of mask records"):
        read_official_anns(path)
