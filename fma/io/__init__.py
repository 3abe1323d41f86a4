"""On-disk formats of every stage artifact (numpy + PIL; pycocotools only for mask RLE)."""

from fma.io.atomic import atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic
from fma.io.label_maps import LabelMapError, encode_label_png, read_label_map, write_label_map
from fma.io.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    file_sha256,
    producer_info,
    read_manifest,
    write_manifest,
)

__all__ = [
    "MANIFEST_NAME",
    "LabelMapError",
    "Manifest",
    "ManifestError",
    "atomic_path",
    "encode_label_png",
    "file_sha256",
    "producer_info",
    "read_label_map",
    "read_manifest",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_label_map",
    "write_manifest",
    "write_text_atomic",
]
