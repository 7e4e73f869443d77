"""Run tall-and-skinny linear algebra on one BLAS thread.

The fits multiply N x p matrices with p of a handful. A second BLAS thread brings nothing to such products,
but OpenBLAS keeps it spinning after each call, which doubled the time of a whole fit at the question's
scale (measured: 104 ms with two threads, 42 ms with one, on 2 cores). The limit applies only inside the
``with`` block and is restored after it.
"""

from __future__ import annotations

import contextlib

__all__ = ["single_blas_thread"]

_CONTROLLER = None


@contextlib.contextmanager
def single_blas_thread():
    """Limit BLAS to one thread for the duration of the block.

    Examples
    --------
    >>> import numpy as np
    >>> with single_blas_thread():
    ...     float(np.ones((1000, 2)).T @ np.ones(1000) @ np.ones(2))
    2000.0
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=1, user_api="blas"):
        yield
