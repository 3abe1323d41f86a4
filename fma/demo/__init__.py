"""The demo's generators and report: synthetic data, a tiny pretrained CLIP, the HTML report.

No stage code lives here: the demo runs the real tools through ``tools/reproduce.py`` and
``configs/pipelines/demo.py``. :mod:`fma.demo.data` writes the synthetic VOC-layout set,
:mod:`fma.demo.tiny_clip` pretrains a tiny open_clip CLIP on synthetic captions,
:mod:`fma.demo.cam_eval` scores CAM files, :mod:`fma.demo.report` renders the report.
"""
