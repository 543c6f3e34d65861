"""Checks that a backprop_core wheel holds every file an install needs.

Usage: python scripts/check_wheel.py WHEEL [WHEEL ...]

Prints the wheel's name and its backprop_core/ files, then exits 1 naming whatever is missing:
the compiled core, its type stubs, the py.typed marker, or the package's Python modules.
"""

from __future__ import annotations

import fnmatch
import sys
import zipfile
from pathlib import Path

# Patterns of archive paths a wheel must contain, with why each matters.
REQUIRED = {
    "backprop_core/_core*.so": "the compiled core",
    "backprop_core/_core.pyi": "the compiled core's type stubs",
    "backprop_core/py.typed": "the PEP 561 marker that makes type checkers read the stubs",
    "backprop_core/__init__.py": "the package",
    "backprop_core/reference.py": "the numpy reference",
}


# Linux x86_64 builds link oneMKL statically and must carry its licence; Linux aarch64 builds
# link OpenBLAS from scipy-openblas32 and carry it beside the core.
BLAS = {
    "linux_x86_64": {"backprop_core/licenses/oneMKL-LICENSE.txt": "the licence of the oneMKL linked in"},
    "linux_aarch64": {"backprop_core/libscipy_openblas*.so": "the vendored OpenBLAS the core loads"},
}


def missing_files(names: list[str], wheel_name: str = "") -> list[str]:
    """The REQUIRED patterns that no name in ``names`` matches, described."""
    required = dict(REQUIRED)
    for platform, files in BLAS.items():
        if platform in wheel_name:
            required.update(files)
    return [
        f"{pattern} ({why})"
        for pattern, why in required.items()
        if not fnmatch.filter(names, pattern)
    ]


def check(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    print(wheel.name)
    for name in sorted(n for n in names if n.startswith("backprop_core/")):
        print(f"  {name}")
    return missing_files(names, wheel.name)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    failed = False
    for arg in argv:
        missing = check(Path(arg))
        for what in missing:
            print(f"MISSING from {Path(arg).name}: {what}", file=sys.stderr)
        failed = failed or bool(missing)
    print("wheel contents: FAILED" if failed else "wheel contents: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
