from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__version__: str
NATIVE_BUILD: bool
MAX_MODALITIES: int
MAX_THREADS: int

def fuse(
    embeddings: Sequence[npt.NDArray[np.float32] | None] | npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | npt.NDArray[np.uint8] | None = None,
    weights: npt.NDArray[np.float32] | None = None,  # (M,) or (B, M); 0 = absent
    gamma: npt.NDArray[np.float32] | None = None,
    beta: npt.NDArray[np.float32] | None = None,
    eps: float = 1e-5,
    *,
    out: npt.NDArray[np.float32] | None = None,
    threads: int = 1,
) -> npt.NDArray[np.float32]: ...
def fuse_with_counts(
    embeddings: Sequence[npt.NDArray[np.float32] | None] | npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | npt.NDArray[np.uint8] | None = None,
    weights: npt.NDArray[np.float32] | None = None,  # (M,) or (B, M); 0 = absent
    gamma: npt.NDArray[np.float32] | None = None,
    beta: npt.NDArray[np.float32] | None = None,
    eps: float = 1e-5,
    *,
    out: npt.NDArray[np.float32] | None = None,
    threads: int = 1,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]: ...
def all_finite(array: npt.NDArray[np.float32]) -> bool: ...
