"""The settings of the k-means fit, importable without numpy or scikit-learn.

``alps.cluster`` fits with them; the ``alps`` command takes its clustering options' defaults from them
(one definition of each default), and every ``alps --help`` would otherwise import scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_K = 255  # label PNGs are uint8 and 255 means "not covered"


@dataclass(frozen=True)
class ClusterConfig:
    """Settings of the k-means fit.

    Attributes:
        k: number of clusters (pseudo-classes); ``None`` estimates it from the data (``estimate_k``).
        batch_size: vectors assigned at once in the Lloyd passes (memory only: the result does not
            depend on it).
        epochs: Lloyd passes over all vectors after the initialisation.
        seed: seeds the sample keys: the only source of randomness (with at most ``init_sample`` vectors,
            all of them form the sample and the centres are the same for every seed).
        init_sample: size of the sample used to initialise (and to estimate K).
        normalize: ``"none"`` clusters raw PFLs (the paper); ``"l2"`` clusters unit vectors (cosine).
        pca_dim: cluster in the span of this many leading principal components of the sample (``None``:
            the full space).
        k_range: candidate K values (inclusive bounds) when ``k`` is ``None``.
    """

    k: int | None = 16
    batch_size: int = 4096
    epochs: int = 1
    seed: int = 0
    init_sample: int = 20000
    normalize: str = "none"
    pca_dim: int | None = None
    k_range: tuple[int, int] = (2, 64)

    def __post_init__(self) -> None:
        if self.k is not None and not 2 <= self.k <= MAX_K:
            raise ValueError(f"k must be between 2 and {MAX_K} (255 marks unlabeled pixels), got {self.k}")
        if self.batch_size < 1 or self.epochs < 0 or self.init_sample < 2:
            raise ValueError("batch_size must be >= 1, epochs >= 0 and init_sample >= 2")
        if self.normalize not in ("none", "l2"):
            raise ValueError(f"normalize must be 'none' or 'l2', got {self.normalize!r}")
        if self.pca_dim is not None and self.pca_dim < 1:
            raise ValueError(f"pca_dim must be at least 1 or None, got {self.pca_dim}")
        low, high = self.k_range
        if not 2 <= low <= high <= MAX_K:
            raise ValueError(f"k_range must satisfy 2 <= MIN <= MAX <= {MAX_K}, got {self.k_range}")
