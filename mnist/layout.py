"""2-D layouts of feature vectors: a neighbour-graph embedding (UMAP's recipe, in plain torch) and PCA.

Neighbour-graph embedding (`embed_neighbour_graph`), as UMAP (McInnes et al., 2018) does it, without its
dependencies (umap-learn would bring numba, pynndescent and scikit-learn, and numba's first compile alone
takes tens of seconds):

1. exact k nearest neighbours by matrix multiply (`exact_knn`; 10,000 x D in chunks);
2. each point's neighbour distances become memberships exp(-(d - rho) / sigma), sigma chosen so they sum
   to log2(k); the graph is symmetrised as a fuzzy union, w = a + b - a*b (`fuzzy_graph`);
3. from a PCA start (deterministic, orientation fixed by sign), stochastic gradient descent pulls the two
   ends of every edge together, each epoch sampling an edge with probability proportional to its weight,
   and pushes each sampled edge's head away from NEGATIVES random points (`optimize_layout`); the curve
   1 / (1 + A d^(2B)) is UMAP's for min_dist 0.1, spread 1. Updates are vectorised per epoch.

Seeded: same features, seed and thread count, same layout. PCA (`pca_basis`) is the linear alternative,
with its own exact transform for new points, but it keeps classes apart far less well (bench/inside.py).
"""

from __future__ import annotations

import math
import threading

import torch

from .errors import MnistError
from .inside import ComputationStopped, Progress

KNN_CHUNK = 1000  # query rows per distance matrix block: 1000 x 10,000 float32 = 40 MB
LAYOUT_NEIGHBOURS = 15  # UMAP's default n_neighbors
LAYOUT_EPOCHS = 200  # UMAP's default for data sets over 10,000 points
NEGATIVES = 5  # repulsive samples per sampled edge (UMAP's negative_sample_rate)
CURVE_A, CURVE_B = 1.577, 0.8951  # umap.umap_.find_ab_params(spread=1.0, min_dist=0.1)
INITIAL_RATE = 1.0  # SGD step, decaying linearly to 0 (UMAP's learning_rate)
GRADIENT_CLIP = 4.0  # per coordinate, as UMAP clips
INIT_SPAN = 10.0  # the PCA start is scaled to this largest coordinate (UMAP scales its start to 10)
SIGMA_SEARCH_STEPS = 64  # bisection steps for each point's sigma
MIN_POINTS = 2


def exact_knn(x: torch.Tensor, k: int, chunk: int = KNN_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (N, k) int64 and Euclidean distances (N, k) of each row's k nearest other rows, nearest first."""
    n = len(x)
    sq = (x * x).sum(1)
    indices, distances = [], []
    for start in range(0, n, chunk):
        rows = torch.arange(start, min(start + chunk, n))
        d2 = sq[rows, None] - 2 * x[rows] @ x.T + sq[None]
        d2[torch.arange(len(rows)), rows] = math.inf  # a point is not its own neighbour
        values, index = d2.topk(k, largest=False)
        indices.append(index)
        distances.append(values.clamp(min=0).sqrt())
    return torch.cat(indices), torch.cat(distances)


def fuzzy_graph(indices: torch.Tensor, distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(head, tail, weight) of the symmetric neighbour graph: both directions of every edge, weights in (0, 1]."""
    n, k = indices.shape
    rho = distances[:, :1]  # distance to the nearest neighbour: membership 1
    gap = (distances - rho).clamp(min=0)
    target = math.log2(k)
    low, high = torch.zeros(n, 1), torch.full((n, 1), math.inf)
    sigma = torch.ones(n, 1)
    for _ in range(SIGMA_SEARCH_STEPS):
        total = torch.exp(-gap / sigma).sum(1, keepdim=True)
        too_wide = total > target  # memberships sum too high: sigma must shrink
        high = torch.where(too_wide, sigma, high)
        low = torch.where(too_wide, low, sigma)
        sigma = torch.where(torch.isinf(high), sigma * 2, (low + high) / 2)
    weight = torch.exp(-gap / sigma).flatten()
    rows = torch.arange(n).repeat_interleave(k)
    cols = indices.flatten()
    # Fuzzy union of i->j and j->i: a + b - a*b. Both directions land on the same key (i * n + j).
    keys = torch.cat([rows * n + cols, cols * n + rows])
    values = torch.cat([weight, weight])
    unique, inverse = torch.unique(keys, return_inverse=True)
    total = torch.zeros(len(unique)).index_add_(0, inverse, values)
    product = torch.ones(len(unique)).scatter_reduce_(0, inverse, values, "prod")
    count = torch.bincount(inverse, minlength=len(unique))
    union = torch.where(count > 1, total - product, total)
    return unique // n, unique % n, union


def pca_basis(x: torch.Tensor, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (D,), components (dims, D)) of the rows of x; each component's largest loading is positive,
    so the same data always gives the same orientation."""
    mean = x.mean(0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    components = vh[:dims]
    signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
    return mean, components * signs


def pca_start(x: torch.Tensor) -> torch.Tensor:
    """The first two principal components of x, scaled so the largest coordinate is INIT_SPAN."""
    mean, components = pca_basis(x, 2)
    start = (x - mean) @ components.T
    return start * (INIT_SPAN / start.abs().max().clamp(min=1e-12))


def optimize_layout(
    start: torch.Tensor,
    graph: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    seed: int,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Move the points of `start` (N, 2) so that graph neighbours sit close and other points apart."""
    head, tail, weight = graph
    keep = weight >= weight.max() / epochs  # edges that would be sampled less than once in the run
    head, tail, chance = head[keep], tail[keep], weight[keep] / weight.max()
    gen = torch.Generator().manual_seed(seed)
    y = start.clone()
    n = len(y)
    for epoch in range(epochs):
        if stop is not None and stop.is_set():
            raise ComputationStopped("stopped while laying out the digit map")
        rate = INITIAL_RATE * (1 - epoch / epochs)
        sampled = torch.rand(len(chance), generator=gen) < chance
        h, t = head[sampled], tail[sampled]
        diff = y[h] - y[t]
        d2 = (diff * diff).sum(1, keepdim=True)
        pull = -2 * CURVE_A * CURVE_B * d2.clamp(min=1e-12) ** (CURVE_B - 1) / (1 + CURVE_A * d2**CURVE_B)
        step = (torch.where(d2 > 0, pull, 0) * diff).clamp(-GRADIENT_CLIP, GRADIENT_CLIP) * rate
        y.index_add_(0, h, step)
        y.index_add_(0, t, -step)
        h = h.repeat_interleave(NEGATIVES)
        others = torch.randint(0, n, (len(h),), generator=gen)
        diff = y[h] - y[others]
        d2 = (diff * diff).sum(1, keepdim=True)
        push = 2 * CURVE_B / ((0.001 + d2) * (1 + CURVE_A * d2**CURVE_B))  # 0.001: UMAP's guard against d = 0
        y.index_add_(0, h, (push * diff).clamp(-GRADIENT_CLIP, GRADIENT_CLIP) * rate)
        if progress is not None:
            progress((epoch + 1) / epochs)
    return y


def embed_neighbour_graph(
    x: torch.Tensor,
    *,
    neighbours: int = LAYOUT_NEIGHBOURS,
    epochs: int = LAYOUT_EPOCHS,
    seed: int = 0,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """(N, 2) float32 layout of the rows of x (N, D) float32 by the neighbour-graph embedding above."""
    if len(x) < MIN_POINTS:
        raise MnistError(f"a layout needs at least {MIN_POINTS} points, got {len(x)}")
    k = min(neighbours, len(x) - 1)
    graph = fuzzy_graph(*exact_knn(x, k))
    return optimize_layout(pca_start(x), graph, epochs=epochs, seed=seed, stop=stop, progress=progress)
