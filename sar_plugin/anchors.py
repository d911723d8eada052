"""Fixed class anchors shared by every anchor loss.

All constructions are seeded with a private :class:`torch.Generator` on the
CPU in float64 and only then cast, so the same ``(kind, K, C, seed)`` gives
bit-identical anchors on every rank, device and run, without touching the
global RNG state.
"""
from typing import Callable, Dict

import torch
from torch import Tensor

ANCHOR_KINDS = ('gaussian', 'orthogonal', 'simplex', 'onehot', 'hypersphere')


def _generator(seed: int) -> torch.Generator:
    gen = torch.Generator(device='cpu')
    gen.manual_seed(int(seed))
    return gen


def _orthonormal_rows(rows: int, cols: int, gen: torch.Generator) -> Tensor:
    """A random ``rows x cols`` matrix with orthonormal rows (rows <= cols)."""
    q, r = torch.linalg.qr(
        torch.randn(cols, rows, generator=gen, dtype=torch.float64))
    # Fix the signs so that the result is unique for a given seed.
    q = q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)
    return q.t().contiguous()


def _gaussian(k: int, c: int, gen: torch.Generator) -> Tensor:
    return torch.randn(k, c, generator=gen, dtype=torch.float64)


def _hypersphere(k: int, c: int, gen: torch.Generator) -> Tensor:
    a = torch.randn(k, c, generator=gen, dtype=torch.float64)
    return a / a.norm(dim=1, keepdim=True)


def _orthogonal(k: int, c: int, gen: torch.Generator) -> Tensor:
    if c < k:
        raise ValueError(f"anchor_init='orthogonal' needs channels >= "
                         f'num_classes, got channels={c}, num_classes={k}')
    return _orthonormal_rows(k, c, gen)


def _simplex(k: int, c: int, gen: torch.Generator) -> Tensor:
    if c < k - 1:
        raise ValueError(f"anchor_init='simplex' needs channels >= "
                         f'num_classes - 1, got channels={c}, num_classes={k}')
    if k == 1:
        return _hypersphere(1, c, gen)
    # The centred identity I - 11^T/K is the Gram matrix of a regular simplex
    # (up to scale); its eigenvectors of eigenvalue 1 give the K vertices in
    # K-1 dimensions.
    centred = torch.eye(k, dtype=torch.float64) - 1.0 / k
    _, vecs = torch.linalg.eigh(centred)
    vertices = vecs[:, 1:]  # drop the eigenvalue-0 direction (the all-ones)
    vertices = vertices / vertices.norm(dim=1, keepdim=True)
    # A random isometric embedding of R^(K-1) into R^C keeps every angle.
    return vertices @ _orthonormal_rows(k - 1, c, gen)


def _onehot(k: int, c: int, gen: torch.Generator) -> Tensor:
    if c < k:
        raise ValueError(f"anchor_init='onehot' needs channels >= "
                         f'num_classes, got channels={c}, num_classes={k}')
    return torch.eye(k, c, dtype=torch.float64)


_BUILDERS: Dict[str, Callable[[int, int, torch.Generator], Tensor]] = {
    'gaussian': _gaussian,
    'orthogonal': _orthogonal,
    'simplex': _simplex,
    'onehot': _onehot,
    'hypersphere': _hypersphere,
}


def build_anchors(kind: str,
                  num_classes: int,
                  channels: int,
                  seed: int = 0,
                  scale: float = 1.0,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """Build ``num_classes`` fixed anchors of dimension ``channels``.

    Args:
        kind (str): One of

            - ``'gaussian'``: i.i.d. N(0, 1) entries, the ``randn(K, C)`` of
              SAR (Ge et al., 2024).
            - ``'orthogonal'``: orthonormal rows (needs ``C >= K``).
            - ``'simplex'``: the vertices of a regular simplex, i.e. an
              equiangular tight frame: unit vectors with pairwise cosine
              ``-1/(K-1)``, the maximal separation of Hao et al. (2018)
              (needs ``C >= K - 1``).
            - ``'onehot'``: axis-aligned unit vectors ``e_k`` (needs
              ``C >= K``).
            - ``'hypersphere'``: random unit vectors (HAL).
        num_classes (int): K, the number of anchors.
        channels (int): C, the anchor dimension.
        seed (int): Seed of the private generator. Same seed, same anchors.
        scale (float): Every anchor is multiplied by this.
        dtype (torch.dtype): Output dtype.

    Returns:
        Tensor: ``K x C`` anchors on the CPU.
    """
    if kind not in _BUILDERS:
        raise ValueError(f'anchor_init must be one of {ANCHOR_KINDS}, '
                         f'got {kind!r}')
    if int(num_classes) < 1 or int(channels) < 1:
        raise ValueError('num_classes and channels must be positive, got '
                         f'num_classes={num_classes}, channels={channels}')
    anchors = _BUILDERS[kind](int(num_classes), int(channels),
                              _generator(seed))
    return (anchors * scale).to(dtype).contiguous()
