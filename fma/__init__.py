"""fma: foundation-model assisted weakly supervised semantic segmentation.

``import fma`` is cheap: it exports the version and installs the import hooks of
:mod:`fma._compat` (which import nothing heavy until torchvision or mmcv is imported).
"""

from fma import _compat
from fma.version import __version__

_compat.install()

__all__ = ["__version__"]
