"""Build the optional native BN_P256 engine ``ecash_tpm.crypto._bn256`` (docs/native.md).

Everything else is in pyproject.toml. A failed compilation (no gcc, no Python headers) only
warns: the package then runs on the pure-Python (gmpy2) arithmetic, which gives the same results.
"""

from __future__ import annotations

import sys
from glob import glob
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_SRC = "ecash_tpm/crypto/_bn256"


class OptionalBuildExt(build_ext):
    """build_ext that turns a compiler failure into a warning."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure means "use the fallback"
            self._warn(exc)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        print(
            f"WARNING: the native BN_P256 engine was not built ({exc}); "
            "ecash-tpm falls back to pure Python (gmpy2).",
            file=sys.stderr,
        )


setup(
    ext_modules=[
        Extension(
            "ecash_tpm.crypto._bn256",
            sources=sorted(glob(f"{_SRC}/*.c")),
            depends=sorted(glob(f"{_SRC}/*.h")),
            extra_compile_args=["-O3", "-fvisibility=hidden"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
