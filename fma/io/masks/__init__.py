"""SAM mask files: records and their two file versions, runs, amg.py's format, layouts, painting.

``records`` reads and writes one image's masks (version 1 JSON, version 2 ``.npz`` through
``npz``); ``runs`` turns them into foreground runs for the seeding stages (``counts`` decodes
COCO RLE strings); ``amg`` reads and writes segment-anything's ``scripts/amg.py`` outputs and
``layout`` tells which of the two a mask root holds; ``paint`` draws many masks into one map.
"""
