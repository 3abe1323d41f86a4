"""SAM mask files: one file per image, two format versions, read as records or as runs.

Modules, bottom up (each imports only those above it in this list, so there is no cycle):

* ``counts``: COCO compressed-RLE ``counts`` strings decoded in numpy, and ``checked_prefix``,
  the one check that every mask's run lengths cover its image.
* ``npz``: format version 2, ``<image_id>.npz`` (the run lengths as one ``uint32`` array and a
  table of the per-mask fields), written with ``np.savez_compressed`` and read with
  ``np.load(allow_pickle=False)``; also what every mask file shares: the format name
  ``FORMAT``, ``SamMaskError``, the file names (``MASK_SUFFIXES``, ``FILE_FORMATS``,
  ``find_mask_file``, ``mask_file_id``) and ``is_mask_npz`` (the versions are told apart by
  content, not by name).
* ``records``: version 1 (``<image_id>.json.gz`` / ``.json``, segment-anything's record keys
  with COCO compressed RLE), the writer and reader of either version as records
  (``save_sam_masks``, ``read_sam_records``) and dense decoding (``load_sam_masks``); the
  shared names of ``npz`` are importable from here too.
* ``runs``: masks as foreground runs for the seeding stages (``load_mask_runs``: a version-2
  file goes ``runs`` -> ``npz`` -> ``counts`` and nowhere else).
* ``amg``: segment-anything's ``scripts/amg.py`` outputs (PNG folders, RLE JSON lists);
  ``layout`` tells which layout a mask root holds; ``paint`` draws many masks into one map.

Why two versions: version 2 reads into runs without parsing JSON or decoding strings (the
seeding stages' input); version 1 stays readable and writable for tools that want
segment-anything's JSON records. Both hold the same records exactly.
"""
