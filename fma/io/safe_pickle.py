"""Reading pickles that should hold only data, with an unpickler that refuses everything else.

A pickle can name any importable callable and have it called while it loads (``os.system``,
``subprocess.Popen``, ``builtins.eval`` ...). :class:`DataUnpickler` resolves only the names in
an allowlist and refuses every other name before anything is called, with one
:class:`UnsafePickleError` naming the file and what the pickle references, e.g.::

    anns/2007_000032.pkl: refused to load: it references posix.system, which is not data

Allowed names:

* numpy's array reconstruction: ``numpy[._]core.multiarray._reconstruct``, ``numpy.ndarray``,
  ``numpy.dtype``, the DType classes of ``numpy.dtypes`` and ``numpy[._]core.multiarray.scalar``
  (protocols 0-4), ``numpy[._]core.numeric._frombuffer`` (protocol 5); ``numpy.core`` names of
  numpy 1 and ``numpy._core`` names of numpy 2 both resolve to the installed numpy;
* the builtin containers and scalars :data:`DATA_BUILTINS` (dict, list, tuple, set, frozenset,
  str, bytes, bytearray, int, float, bool, complex, slice);
* ``_codecs.encode`` with the ``latin1`` codec only (how protocols 0-2 store bytes);
* whatever a caller maps through ``substitutes``: a function ``(module, name) -> object or
  None`` that stands in inert classes of the caller's own for the classes of a known writer
  (:mod:`fma.io.official_release` reads the official FMA-WSSS pickles this way). The writer's
  module is never imported.

Persistent ids and anything else raise :class:`UnsafePickleError`. Nothing here calls
``pickle.load`` with the default unpickler.
"""

from __future__ import annotations

import builtins
import codecs
import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DATA_BUILTINS", "DataUnpickler", "UnsafePickleError", "load_data_pickle"]

#: Builtins a data pickle may name (protocols 0-2 name some containers as globals).
DATA_BUILTINS = (
    "dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float",
    "bool", "complex", "slice",
)  # fmt: skip

Substitutes = Callable[[str, str], Any]


class UnsafePickleError(ValueError):
    """A pickle references something that is not plain data, or cannot be read at all."""


def _numpy_core() -> Any:
    return np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocols 0-2 use it for bytes; any other codec is refused."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(f"refused to load: it encodes text with codec {encoding!r}")
    return text.encode("latin1")


def _numpy_name(module: str, name: str) -> Any:
    """The allowed numpy object named ``module.name``, or None."""
    core = _numpy_core()
    if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        return {"_reconstruct": core.multiarray._reconstruct,
                "scalar": core.multiarray.scalar}.get(name)  # fmt: skip
    if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
        return core.numeric._frombuffer
    if module == "numpy" and name in ("ndarray", "dtype"):
        return getattr(np, name)
    if module == "numpy.dtypes" and name.endswith("DType"):
        cls = getattr(getattr(np, "dtypes", None), name, None)
        return cls if isinstance(cls, type) and issubclass(cls, np.dtype) else None
    return None


def _allowed(module: str, name: str) -> Any:
    if module in ("builtins", "__builtin__") and name in DATA_BUILTINS:  # __builtin__: protocol 2
        return getattr(builtins, name)
    if module == "_codecs" and name == "encode":
        return _latin1_encode
    if module.startswith("numpy"):
        return _numpy_name(module, name)
    return None


class DataUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only data types (see the module docstring).

    Args:
        file: binary file object positioned at the pickle.
        source: the file name used in error messages.
        substitutes: ``(module, name) -> object or None``; a non-None result stands in for that
            global (an inert class of the caller's, never the writer's own).
    """

    def __init__(self, file: Any, *, source: str, substitutes: Substitutes | None = None) -> None:
        super().__init__(file)
        self.source = source
        self.substitutes = substitutes

    def find_class(self, module: str, name: str) -> Any:
        obj = _allowed(module, name)
        if obj is None and self.substitutes is not None:
            obj = self.substitutes(module, name)
        if obj is None:
            raise UnsafePickleError(
                f"{self.source}: refused to load: it references {module}.{name}, which is not data"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"{self.source}: refused to load: it references a persistent id, which is not data"
        )


def load_data_pickle(
    path: str | os.PathLike, *, substitutes: Substitutes | None = None, display: str | None = None
) -> Any:
    """Load a pickle that may hold only data (:class:`DataUnpickler`).

    Args:
        path: the pickle file.
        substitutes: stand-ins for known non-data classes (see :class:`DataUnpickler`).
        display: the name errors give the file (default: ``path``).

    Returns:
        The unpickled object (dicts, lists, numpy arrays, ... and substitutes).

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: the pickle references a name that is not allowed, or is truncated
            or corrupt; the message names the file.
    """
    path = Path(path)
    source = display if display is not None else str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{source}: pickle file not found")
    data = path.read_bytes()
    try:
        return DataUnpickler(io.BytesIO(data), source=source, substitutes=substitutes).load()
    except UnsafePickleError as exc:
        text = str(exc)
        raise UnsafePickleError(text if text.startswith(source) else f"{source}: {text}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError) as exc:  # fmt: skip
        raise UnsafePickleError(
            f"{source}: not a readable data pickle ({type(exc).__name__}: {exc}); the file is "
            "truncated or corrupt, download or copy it again"
        ) from exc
