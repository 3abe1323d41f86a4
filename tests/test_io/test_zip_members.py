"""The one-read zip member reader: equal to zipfile on what numpy and zipfile write, None for
what it does not handle, BadZipFile for damaged members."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest

from fma.io import zip_members
from fma.io.npz_members import read_npz
from fma.io.zip_members import read_members


def _zipfile_members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "cam": rng.random((3, 17, 29), dtype=np.float32),
        "ids": np.arange(5, dtype=np.int64),
        "empty": np.zeros((0, 4), np.uint8),
        "scalar": np.array(7, dtype=np.int32),
        "text": np.array('{"a": 1}'),
        "big_endian": np.arange(6, dtype=">f8").reshape(2, 3),
        "flags": np.array([True, False, True]),
    }


@pytest.mark.parametrize("saver", [np.savez, np.savez_compressed])
def test_equals_zipfile_and_np_load_on_numpy_files(tmp_path, saver):
    path = tmp_path / "a.npz"
    saver(path, **_arrays())
    names, blobs = read_members(path)
    want = _zipfile_members(path)
    assert names == list(want) and blobs == want
    names, blobs = read_members(path, ["ids.npy", "missing.npy", "cam.npy"])
    assert names == list(want) and list(blobs) == ["ids.npy", "cam.npy"]
    assert blobs["cam.npy"] == want["cam.npy"]
    got = read_npz(path)
    with np.load(path, allow_pickle=False) as z:
        assert sorted(got) == sorted(z.files)
        for k in z.files:
            assert got[k].dtype == z[k].dtype and np.array_equal(got[k], z[k]), k


def test_plain_headers_skip_numpys_parser(tmp_path, monkeypatch):
    path = tmp_path / "a.npz"
    np.savez_compressed(path, **_arrays())

    def refuse(*args, **kwargs):
        raise AssertionError("numpy's header parser was called")

    monkeypatch.setattr(np.lib.format, "read_array_header_1_0", refuse)
    got = read_npz(path)
    for k, v in _arrays().items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape and np.array_equal(got[k], v)


def test_comment_stored_and_deflated_members_and_utf8_names(tmp_path):
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("stored.bin", b"abc" * 100, compress_type=zipfile.ZIP_STORED)
        zf.writestr("deflated.bin", b"xyz" * 1000, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("caf\u00e9.bin", b"", compress_type=zipfile.ZIP_DEFLATED)
        zf.comment = b"a comment after the directory"
    names, blobs = read_members(path)
    assert blobs == _zipfile_members(path)
    assert names == ["stored.bin", "deflated.bin", "caf\u00e9.bin"]


def _central_offset(data: bytes) -> int:
    end = data.rfind(b"PK\x05\x06")
    return struct.unpack_from("<I", data, end + 16)[0]


def test_returns_none_for_what_zipfile_must_read(tmp_path, monkeypatch):
    """Not a zip, bzip2 members, an encrypted flag, a ZIP64 directory entry, a large file:
    None, and read_npz then gives zipfile's own answer."""
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all" * 10)
    assert read_members(junk) is None
    with pytest.raises(zipfile.BadZipFile):
        read_npz(junk)

    cut = tmp_path / "cut.npz"
    np.savez_compressed(cut, x=np.arange(10))
    cut.write_bytes(cut.read_bytes()[:-30])  # truncated: no end-of-directory record
    assert read_members(cut) is None
    with pytest.raises(zipfile.BadZipFile):
        read_npz(cut)

    bz = tmp_path / "bz.npz"
    with zipfile.ZipFile(bz, "w", compression=zipfile.ZIP_BZIP2) as zf, zf.open("x.npy", "w") as f:
        np.save(f, np.arange(4))
    assert read_members(bz) is None
    assert np.array_equal(read_npz(bz)["x"], np.arange(4))

    src = tmp_path / "src.npz"
    np.savez_compressed(src, x=np.arange(10))
    data = bytearray(src.read_bytes())
    cd = _central_offset(data)
    enc = tmp_path / "enc.npz"
    flagged = bytearray(data)
    flagged[cd + 8] |= 0x1  # general purpose flag: encrypted
    enc.write_bytes(flagged)
    assert read_members(enc) is None
    z64 = tmp_path / "z64.npz"
    sized = bytearray(data)
    struct.pack_into("<I", sized, cd + 20, 0xFFFFFFFF)  # compressed size in a ZIP64 field
    z64.write_bytes(sized)
    assert read_members(z64) is None

    monkeypatch.setattr(zip_members, "MAX_BYTES", 16)
    assert read_members(src) is None
    assert np.array_equal(read_npz(src)["x"], np.arange(10))


def test_damaged_members_raise_bad_zip_file(tmp_path):
    src = tmp_path / "src.npz"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.bin", bytes(range(200)), compress_type=zipfile.ZIP_STORED)
        zf.writestr("b.bin", b"hello" * 50, compress_type=zipfile.ZIP_DEFLATED)
    data = buf.getvalue()
    src.write_bytes(data)
    assert read_members(src)[1] == _zipfile_members(src)

    def damaged(name: str, change) -> str:
        out = bytearray(data)
        change(out)
        (tmp_path / name).write_bytes(out)
        return str(tmp_path / name)

    first_data = 30 + len("a.bin")
    bad_crc = damaged("crc.zip", lambda b: b.__setitem__(first_data + 3, b[first_data + 3] ^ 1))
    with pytest.raises(zipfile.BadZipFile, match="CRC-32"):
        read_members(bad_crc, ["a.bin"])
    assert read_members(bad_crc, ["b.bin"])[1]["b.bin"] == b"hello" * 50  # others still read
    bad_name = damaged("name.zip", lambda b: b.__setitem__(30, ord("z")))
    with pytest.raises(zipfile.BadZipFile, match="local header"):
        read_members(bad_name, ["a.bin"])
    second = data.index(b"PK\x03\x04", 1)
    start = second + 30 + len("b.bin")
    bad_deflate = damaged("deflate.zip", lambda b: b.__setitem__(start, 0xFF))
    with pytest.raises(zipfile.BadZipFile, match="b.bin"):
        read_members(bad_deflate, ["b.bin"])
