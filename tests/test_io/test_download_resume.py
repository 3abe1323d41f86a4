"""Verified, resumable downloads (no network: file:// URLs and fake openers)."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request

import pytest

from fma.io.download import download_verified, part_path, sha256_matches

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes: more than one read block
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
URL = "https://example.invalid/weights.pt"


class _Response(io.BytesIO):
    """A urlopen-like response: read(), status, headers, length, context manager."""

    def __init__(self, body: bytes, status: int = 200, headers: dict | None = None, fail_at=None):
        super().__init__(body)
        self.status = status
        self.headers = headers or {}
        self.length = len(body)
        self.fail_at = fail_at  # raise after this many bytes (a dropped connection)

    def read(self, n: int = -1) -> bytes:
        if self.fail_at is not None and self.tell() >= self.fail_at:
            raise ConnectionResetError(104, "Connection reset by peer")
        if self.fail_at is not None:
            n = min(n, self.fail_at - self.tell())
        return super().read(n)


class _Server:
    """A fake opener serving ``body``; honours Range requests unless ``ranges`` is False."""

    def __init__(self, body: bytes, *, ranges: bool = True, fail_at=None, start_shift: int = 0):
        self.body = body
        self.ranges = ranges
        self.fail_at = fail_at
        self.start_shift = start_shift
        self.requests: list[tuple[str, str | None]] = []

    def __call__(self, request):
        if isinstance(request, urllib.request.Request):
            url, rng = request.full_url, request.get_header("Range")
        else:
            url, rng = request, None
        self.requests.append((url, rng))
        fail_at, self.fail_at = self.fail_at, None  # only the first answer breaks
        if rng is None or not self.ranges:
            return _Response(self.body, fail_at=fail_at)
        start = int(rng.removeprefix("bytes=").rstrip("-")) + self.start_shift
        if start >= len(self.body):
            raise urllib.error.HTTPError(url, 416, "Range Not Satisfiable", {}, None)
        total = len(self.body)
        headers = {"Content-Range": f"bytes {start}-{total - 1}/{total}"}
        return _Response(self.body[start:], status=206, headers=headers, fail_at=fail_at)


def test_full_download_from_a_file_url(tmp_path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    target = tmp_path / "w" / "weights.pt"
    assert download_verified(src.as_uri(), target, sha256=DIGEST, progress=False) == target
    assert target.read_bytes() == PAYLOAD
    assert sorted(p.name for p in target.parent.iterdir()) == ["weights.pt"]


def test_hash_mismatch_keeps_nothing(tmp_path) -> None:
    target = tmp_path / "weights.pt"
    server = _Server(PAYLOAD)
    with pytest.raises(ValueError, match="does not match the expected 00000000"):
        download_verified(URL, target, sha256="0" * 64, opener=server, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the final name nor a .part file


def test_an_interrupted_download_resumes_with_a_range_request(tmp_path) -> None:
    target = tmp_path / "weights.pt"
    server = _Server(PAYLOAD, fail_at=300_000)
    with pytest.raises(ConnectionResetError):
        download_verified(URL, target, sha256=DIGEST, opener=server, progress=False)
    assert not target.exists()
    assert part_path(target).read_bytes() == PAYLOAD[:300_000]  # kept for the next call
    download_verified(URL, target, sha256=DIGEST, opener=server, progress=False)
    assert server.requests == [(URL, None), (URL, "bytes=300000-")]
    assert target.read_bytes() == PAYLOAD and not part_path(target).exists()


def test_resume_from_a_part_file(tmp_path) -> None:
    target = tmp_path / "weights.pt"
    part_path(target).write_bytes(PAYLOAD[:1000])
    server = _Server(PAYLOAD)
    download_verified(URL, target, sha256=DIGEST, opener=server, progress=False)
    assert server.requests == [(URL, "bytes=1000-")]
    assert target.read_bytes() == PAYLOAD


@pytest.mark.parametrize("shift", [None, 7], ids=["200", "206-other-range"])
def test_a_server_that_ignores_the_range_starts_over(tmp_path, shift) -> None:
    target = tmp_path / "weights.pt"
    part_path(target).write_bytes(PAYLOAD[:1000])
    if shift is None:  # a plain 200 answer with the whole file
        server = _Server(PAYLOAD, ranges=False)
        want = [(URL, "bytes=1000-")]
    else:  # a 206 answer for another range: discarded, then the whole file without a range
        server = _Server(PAYLOAD, start_shift=shift)
        want = [(URL, "bytes=1000-"), (URL, None)]
    download_verified(URL, target, sha256=DIGEST, opener=server, progress=False)
    assert server.requests == want
    assert target.read_bytes() == PAYLOAD and not part_path(target).exists()


def test_a_complete_part_file_needs_no_request(tmp_path) -> None:
    target = tmp_path / "weights.pt"
    part_path(target).write_bytes(PAYLOAD)
    server = _Server(b"")
    download_verified(URL, target, sha256=DIGEST, opener=server, progress=False)
    assert server.requests == [] and target.read_bytes() == PAYLOAD
    # without a hash to recognise it, the server says the range is past the end (416)
    target.unlink()
    part_path(target).write_bytes(PAYLOAD)
    server = _Server(PAYLOAD)
    download_verified(URL, target, opener=server, progress=False)
    assert server.requests == [(URL, f"bytes={len(PAYLOAD)}-")]
    assert target.read_bytes() == PAYLOAD


def test_a_part_file_of_another_file_is_discarded(tmp_path) -> None:
    target = tmp_path / "weights.pt"
    part_path(target).write_bytes(b"x" * 1000)  # not the start of PAYLOAD
    with pytest.raises(ValueError, match="does not match"):
        download_verified(URL, target, sha256=DIGEST, opener=_Server(PAYLOAD), progress=False)
    assert list(tmp_path.iterdir()) == []
    download_verified(URL, target, sha256=DIGEST, opener=_Server(PAYLOAD), progress=False)
    assert target.read_bytes() == PAYLOAD


def test_resume_false_starts_over(tmp_path) -> None:
    target = tmp_path / "weights.pt"
    part_path(target).write_bytes(b"x" * 1000)
    server = _Server(PAYLOAD)
    download_verified(URL, target, sha256=DIGEST, opener=server, progress=False, resume=False)
    assert server.requests == [(URL, None)] and target.read_bytes() == PAYLOAD


def test_a_failed_open_leaves_no_file(tmp_path) -> None:
    def offline(request):
        raise urllib.error.URLError("no network")

    with pytest.raises(urllib.error.URLError):
        download_verified(URL, tmp_path / "weights.pt", sha256=DIGEST, opener=offline)
    assert list(tmp_path.iterdir()) == []


def test_sha256_prefixes() -> None:
    assert sha256_matches(DIGEST, DIGEST[:8]) and sha256_matches(DIGEST, DIGEST.upper())
    assert sha256_matches(DIGEST, None)
    assert not sha256_matches(DIGEST, "0" * 8)
    with pytest.raises(ValueError, match="too short"):
        sha256_matches(DIGEST, "abc")
