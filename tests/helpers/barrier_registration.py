"""A registration in a child process that waits at a barrier first, so two really overlap.

``register_at_barrier`` is the target of a ``multiprocessing`` (spawn) child: it patches
``tsforecast.registry.register.<where>`` (``store_lock`` or ``apply_alias``) to wait at ``barrier``
before the real call, then runs the register stage. A registration left alone at the
barrier times out (``BrokenBarrierError``) and its child exits non-zero, so a test built
on it cannot pass with the two registrations run one after the other.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

BARRIER_TIMEOUT_S = 120.0


def register_at_barrier(root: str, uri: str, barrier: Any, where: str) -> None:
    """Run ``tsforecast register`` in ``root`` against ``uri``, meeting the other child at ``where``."""
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.chdir(root)
    logging.basicConfig(
        filename=str(Path(root) / "register.log"), level=logging.INFO, format="%(name)s: %(message)s"
    )
    import torch

    from tsforecast.config import load_config
    from tsforecast.paths import Paths
    from tsforecast.registry import register as registry

    torch.set_num_threads(1)
    real = getattr(registry, where)

    def at_barrier(*args: Any, **kwargs: Any) -> Any:
        logging.getLogger("barrier").info("waiting at %s", where)
        barrier.wait(timeout=BARRIER_TIMEOUT_S)
        logging.getLogger("barrier").info("passed %s", where)
        return real(*args, **kwargs)

    setattr(registry, where, at_barrier)
    cfg = load_config(Path(root) / "params.yaml")
    registry.run_register(cfg.data, cfg.split, cfg.window, cfg.evaluate, cfg.register, Paths.from_root(root))
