"""One pipeline stage in a fresh interpreter, timed: what ``scale.py`` runs per cell and run.

    python benchmarks/scale_worker.py STAGE ROOT RESULT_JSON [--profile PROF]

Loads ``ROOT/params.yaml``, runs ``tsforecast.stages.run_stage(STAGE, cfg, Paths(ROOT))``
(what ``tsforecast STAGE`` runs) and writes RESULT_JSON:

- ``import_s``: importing the package and the stage's module, loading the config;
- ``stage_s``: the ``run_stage`` call alone;
- ``rss_imports_mb``: this process's peak RSS after the imports (the interpreter, numpy,
  pandas, torch, ...: the floor every stage pays);
- ``rss_self_mb``: this process's peak RSS at the end, exact.

Peaks are ``VmHWM`` of ``/proc/self/status``: the high-water mark of this process's own memory
map. Not ``getrusage().ru_maxrss``: Linux carries the parent's peak across ``vfork`` + ``exec``
into it (a stage started by a 550 MB parent reported at least 550 MB), and a child forked
from this process starts from this process's peak. Off Linux, ``ru_maxrss`` is the fallback.

With ``--profile PROF`` the stage runs under ``cProfile`` and the stats go to PROF (that run's
times are slowed by the profiler: not a measurement).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
T0 = time.perf_counter()


def _peak_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB elsewhere


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage")
    ap.add_argument("root", type=Path)
    ap.add_argument("result", type=Path)
    ap.add_argument("--profile", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from tsforecast.config import load_config
    from tsforecast.paths import Paths
    from tsforecast.stages import get

    spec = get(args.stage)
    spec.function()  # imports the stage's module: counted in import_s, not stage_s
    cfg = load_config(args.root / "params.yaml")
    paths = Paths.from_root(args.root)
    import_s = time.perf_counter() - T0
    rss_imports = _peak_mb()

    started = time.perf_counter()
    if args.profile is None:
        spec.run(cfg, paths)
    else:
        import cProfile

        with cProfile.Profile() as prof:
            spec.run(cfg, paths)
        prof.dump_stats(str(args.profile))
    stage_s = time.perf_counter() - started
    result = {
        "stage": args.stage,
        "import_s": import_s,
        "stage_s": stage_s,
        "rss_imports_mb": rss_imports,
        "rss_self_mb": _peak_mb(),
    }
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
