"""The native pool's thread count at run time, and a threadpoolctl controller for it.

Results never depend on the thread count (the core cuts its work by shape alone), so these only
trade speed against sharing the CPUs: a Dask worker, or a process under
``threadpoolctl.threadpool_limits``, keeps the core to its share.
"""

from __future__ import annotations

import numpy as np

from . import _core


def get_num_threads() -> int:
    """The number of threads the native large passes may use, the calling thread included.

    Parameters
    ----------
        (none)

    Returns
    -------
    int
        At start, the CPUs this process may run on (or ``BACKPROP_CORE_NUM_THREADS``); then
        what :func:`set_num_threads` (or ``threadpoolctl.threadpool_limits``) last set.
    """
    return int(_core.threads())


def set_num_threads(n: int) -> None:
    """Set the number of threads the native large passes may use, for the whole process.

    Parameters
    ----------
    n : int
        At least 1 (1: every pass on the calling thread); values above 256 are capped at 256.
        Calls already running keep the threads they have. Results are the same bits for any
        ``n``.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        ``n`` is not an int (bool included).
    ValueError
        ``n`` is below 1.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n: expected an int number of threads, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: expected a number of threads >= 1, got {int(n)}")
    _core.set_threads(int(min(n, 256)))


def _register_threadpoolctl() -> None:
    """Register :class:`_Controller` with threadpoolctl, when it is installed."""
    try:
        import threadpoolctl
    except ImportError:
        return

    class _Controller(threadpoolctl.LibController):
        """threadpoolctl's view of the native pool (its documented LibController API): it finds
        the compiled module by its file name and its two exported C functions."""

        user_api = "backprop_core"
        internal_api = "backprop_core"
        filename_prefixes = ("_core",)
        check_symbols = ("backprop_core_get_num_threads", "backprop_core_set_num_threads")

        def get_num_threads(self) -> int:
            return int(self.dynlib.backprop_core_get_num_threads())

        def set_num_threads(self, num_threads: int) -> None:
            self.dynlib.backprop_core_set_num_threads(int(num_threads))

        def get_version(self) -> str:
            from . import __version__

            return __version__

    threadpoolctl.register(_Controller)


_register_threadpoolctl()
