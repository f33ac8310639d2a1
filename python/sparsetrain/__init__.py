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


# oneDNN runs on OpenMP, whose idle threads spin by default and take the
# cores from the runtime's own (TBB) threads and from other programs. The
# module waits passively, as the command-line program does (README "OpenMP's
# waiting policy": the measured trade-off): libgomp reads its policy once,
# when it is loaded, which is when the extension below is imported, so the
# variable is set first, unless the user chose a policy (OMP_WAIT_POLICY or
# GOMP_SPINCOUNT).
_openmp_was_loaded = _openmp_loaded()
_user_chose = "OMP_WAIT_POLICY" in _os.environ or "GOMP_SPINCOUNT" in _os.environ
if not _user_chose:
    _os.environ["OMP_WAIT_POLICY"] = "passive"
    if _openmp_was_loaded:
        _warnings.warn(
            "sparsetrain: OpenMP was loaded before sparsetrain, so its threads keep libgomp's "
            "default waiting policy (spinning); import sparsetrain first, or choose a policy "
            "with OMP_WAIT_POLICY in the environment",
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
