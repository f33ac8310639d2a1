"""sparsetrain: sparse neural-network training on CPUs.

The runtime's Python module (README "Python"): models from the zoo, a model
file or builder calls, datasets, training (step by step or the built-in run),
pruning, hooks, probes and checkpoints, with NumPy arrays in and out.
"""
import os as _os
import warnings as _warnings


def _openmp_loaded():
    """Whether libgomp is in this process already (imported by another module)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("libgomp" in line for line in maps)
    except OSError:
        return False


# oneDNN runs on OpenMP, whose idle threads spin by default; on a busy
# machine they take the cores from the runtime's own worker threads. libgomp
# reads its waiting policy once, when it is loaded, which is when the
# extension below is imported: the command-line program re-executes itself
# for this, a module sets the variable first (unless the user chose one).
_openmp_was_loaded = _openmp_loaded()
_os.environ.setdefault("OMP_WAIT_POLICY", "passive")
if _openmp_was_loaded and _os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive":
    _warnings.warn(
        "sparsetrain: OpenMP was loaded before sparsetrain, so its threads keep the default "
        "waiting policy and may slow training on a busy machine; import sparsetrain first or "
        "set OMP_WAIT_POLICY=passive in the environment",
        RuntimeWarning,
        stacklevel=2,
    )

from ._sparsetrain import (  # noqa: E402
    Dataset,
    Error,
    Hook,
    Model,
    ProbeResult,
    Trainer,
    __version__,
    api_version,
    set_num_threads,
)

__all__ = [
    "Dataset",
    "Error",
    "Hook",
    "Model",
    "ProbeResult",
    "Trainer",
    "__version__",
    "api_version",
    "set_num_threads",
]
