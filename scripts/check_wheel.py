"""Checks that a backprop_core wheel holds every file an install needs, and that an sdist holds
what a build needs and nothing else.

Usage: python scripts/check_wheel.py WHEEL [WHEEL ...]
       python scripts/check_wheel.py --sdist SDIST

Prints the archive's name and its files, then exits 1 naming what is wrong: from a wheel, a
missing file (the compiled core, its type stubs, the py.typed marker, the package's Python
modules, the OpenBLAS library copied in, the licences); from an sdist, a missing build file or
one that a build does not need.
"""

from __future__ import annotations

import fnmatch
import sys
import tarfile
import zipfile
from pathlib import Path

# Patterns of archive paths a wheel must contain, with why each matters.
REQUIRED = {
    "backprop_core/_core*.so": "the compiled core",
    "backprop_core/_core.pyi": "the compiled core's type stubs",
    "backprop_core/py.typed": "the PEP 561 marker that makes type checkers read the stubs",
    "backprop_core/__init__.py": "the package",
    "backprop_core/reference.py": "the numpy reference",
    "backprop_core-*.dist-info/licenses/LICENSE": "the project's licence (PEP 639)",
}

# Linux builds link OpenBLAS from scipy-openblas32 (the default BLAS) and carry it beside the core,
# with its licence. (Builds with BACKPROP_CORE_BLAS=mkl or OFF are not what this script checks.)
BLAS = {
    "backprop_core/libscipy_openblas*.so": "the vendored OpenBLAS the core loads",
    "backprop_core/licenses/OpenBLAS-LICENSE.txt": "the licence of the OpenBLAS copied in",
}

# What a build needs from the sdist (paths under its top folder), and what else it may hold.
SDIST_REQUIRED = {
    "PKG-INFO": "the metadata",
    "pyproject.toml": "the build's configuration",
    "CMakeLists.txt": "the native build",
    "README.md": "the long description",
    "LICENSE": "the licence",
    "CHANGELOG.md": "the changes",
    "cpp/include/backprop_core/*.hpp": "the C++ core",
    "python/backprop_core/__init__.py": "the package",
    "python/backprop_core/_core.pyi": "the compiled core's type stubs",
}
SDIST_ALLOWED = (*SDIST_REQUIRED, "cpp/*", "python/backprop_core/*")


def missing_files(names: list[str], wheel_name: str = "") -> list[str]:
    """The required patterns that no name in ``names`` matches, described."""
    required = {**REQUIRED, **(BLAS if "linux" in wheel_name else {})}
    return [
        f"{pattern} (missing: {why})"
        for pattern, why in required.items()
        if not fnmatch.filter(names, pattern)
    ]


def check(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    print(wheel.name)
    for name in sorted(n for n in names if n.startswith("backprop_core")):
        print(f"  {name}")
    return missing_files(names, wheel.name)


def sdist_problems(names: list[str]) -> list[str]:
    """What ``names`` (paths under the sdist's top folder) lack for a build, and hold that a
    build does not need."""
    missing = [
        f"{pattern} (missing: {why})"
        for pattern, why in SDIST_REQUIRED.items()
        if not fnmatch.filter(names, pattern)
    ]
    extra = [
        f"{name} (not needed to build)"
        for name in names
        if not any(fnmatch.fnmatch(name, pattern) for pattern in SDIST_ALLOWED)
    ]
    return missing + extra


def check_sdist(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as archive:
        files = [m.name for m in archive.getmembers() if m.isfile()]
    print(sdist.name)
    names = sorted(name.split("/", 1)[1] for name in files)  # under backprop_core-VERSION/
    for name in names:
        print(f"  {name}")
    return sdist_problems(names)


def main(argv: list[str]) -> int:
    sdist = bool(argv) and argv[0] == "--sdist"
    paths = argv[1:] if sdist else argv
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    failed = False
    for arg in paths:
        problems = check_sdist(Path(arg)) if sdist else check(Path(arg))
        for what in problems:
            print(f"{Path(arg).name}: {what}", file=sys.stderr)
        failed = failed or bool(problems)
    what = "sdist" if sdist else "wheel"
    print(f"{what} contents: FAILED" if failed else f"{what} contents: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
