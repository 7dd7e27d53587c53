"""Frozen GH-Feat features of a whole split, a linear probe that converges, and 1-NN.

The probe (paper Sec. 4.4, Tab. 3a) is a multinomial logistic regression on all levels of the
frozen encoder, standardized with the train mean and std:

    minimise  mean_i CE(x_i W + b, y_i) + l2 / 2 * |W|^2        (b is not penalised)

solved full batch with L-BFGS (strong Wolfe line search) in float64. The L2 weight comes from a
small grid (1e-2 ... 1e-5), chosen by accuracy on a held-out slice of the train split (``holdout``;
fits warm-started from strong to weak L2 at a 10x looser tolerance; ties go to the larger weight),
then the model is refitted on the whole train split. Convergence is checked, not
assumed: the fit stops when the largest gradient entry is below ``tol`` (reported as
``grad_max``), and a second run from that solution with a 100x smaller tolerance and more
iterations must leave the test accuracy where it was (``top1_more_iters``).

1-NN: the label of the nearest train example by Euclidean distance, on the same standardized
features, and on raw pixels as the baseline.
"""
from __future__ import annotations

import math

import torch

L2_GRID = (1e-2, 1e-3, 1e-4, 1e-5)


def split_codes(encoder, data: str, split: str, n: int | None = None, batch_size: int = 256,
                progress: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Packed codes ``E(x)`` ``[N, L, 2*C_max]`` float32 of the first ``n`` images of a split, and
    their labels ``[N]`` (None for unlabelled data). Images go through the encoder in batches of
    ``batch_size`` under ``torch.inference_mode`` (uint8 converted per batch)."""
    from ..api import encode
    from .quality import dataset_split
    x, y = dataset_split(data, split)
    x = x[:n]
    size = (getattr(encoder, "input_spec", None) or {}).get("size", 32)
    codes = encode(x, encoder=encoder, batch_size=batch_size, resize=size != 32, progress=progress)
    return codes, (y[:n] if y is not None else None)


def codes_to_features(codes: torch.Tensor, style_dims, levels=None) -> torch.Tensor:
    """``[N, sum of dims]``: the levels (default all, ascending; level k = layer L - k) of packed
    codes concatenated, the same numbers as ``ghfeat.extract(..., flatten=True)``."""
    L = len(style_dims)
    if codes.ndim != 3 or codes.shape[1] != L:
        raise ValueError(f"codes must be packed [N, {L}, 2*C_max], got {tuple(codes.shape)}")
    levels = range(1, L + 1) if levels is None else levels
    return torch.cat([codes[:, L - k, :style_dims[L - k]] for k in levels], 1)


def standardize(train: torch.Tensor, *others: torch.Tensor):
    """``(train - mean) / std`` with the train mean and std (std floored at 1e-6), and the same
    map applied to each of ``others``."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return tuple((t - mean) / std for t in (train, *others))


@torch.no_grad()
def _objective_and_grad(x, y, W, b, l2):
    """The objective and its gradient in closed form: with ``P = softmax(x W + b)`` and ``Y`` the
    one-hot labels, ``dW = x^T (P - Y) / N + l2 W`` and ``db = sum_n (P - Y) / N``. ``dW`` is
    formed as ``((P - Y)^T x)^T``: the same product, but a GEMM that reads ``x`` in its own row
    order (autograd's ``x^T @ grad`` ran 5x slower on one core for 60,000 x 1,024 float64:
    ``benchmarks/bench_probe.py``)."""
    logp = torch.addmm(b, x, W).log_softmax(1)
    rows = torch.arange(len(y))
    loss = -logp[rows, y].mean() + 0.5 * l2 * W.square().sum()
    g = logp.exp_()
    g[rows, y] -= 1
    g /= len(y)
    return loss, (g.t() @ x).t().contiguous() + l2 * W, g.sum(0)


def fit_logistic_regression(x: torch.Tensor, y: torch.Tensor, l2: float, *, num_classes: int | None = None,
                            max_iter: int = 1000, tol: float = 1e-5, init=None) -> dict:
    """Minimise ``mean CE(x W + b, y) + l2/2 |W|^2`` over ``W [D, K]``, ``b [K]`` by full-batch
    L-BFGS (float64, strong Wolfe), from zero or from ``init = (W, b)``.

    Returns ``{"W", "b", "loss", "grad_max", "iterations", "converged"}``: ``grad_max`` is the
    largest absolute gradient entry at the end, ``converged`` is ``grad_max <= tol``.
    """
    if not (isinstance(l2, (int, float)) and math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
    x = x.detach().to(torch.float64)
    y = y.detach().to(torch.int64)
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ValueError(f"need features [N, D] and labels [N], got {tuple(x.shape)} and {tuple(y.shape)}")
    K = int(num_classes or int(y.max()) + 1)
    W = torch.zeros(x.shape[1], K, dtype=torch.float64)
    b = torch.zeros(K, dtype=torch.float64)
    if init is not None:
        W.copy_(init[0])
        b.copy_(init[1])
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, max_eval=2 * max_iter, tolerance_grad=tol,
                            tolerance_change=1e-20, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        loss, W.grad, b.grad = _objective_and_grad(x, y, W, b, l2)
        return loss

    opt.step(closure)
    loss, gW, gb = _objective_and_grad(x, y, W, b, l2)
    grad_max = float(max(gW.abs().max(), gb.abs().max()))
    iters = int(opt.state[opt._params[0]].get("n_iter", 0))
    return {"W": W.detach(), "b": b.detach(), "loss": float(loss.detach()), "grad_max": grad_max,
            "iterations": iters, "converged": grad_max <= tol}


def _accuracy(model: dict, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return float(((x.to(torch.float64) @ model["W"] + model["b"]).argmax(1) == y).double().mean())


def linear_probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, *,
                 l2: float | None = None, grid=L2_GRID, holdout: int | float = 1 / 6, seed: int = 0,
                 max_iter: int = 1000, tol: float = 1e-5, check: bool = True, progress: bool = False) -> dict:
    """Top-1 of a converged multinomial logistic regression on standardized features (see the
    module docstring). ``l2=None`` chooses it from ``grid`` on a held-out slice of the train set
    (``holdout`` examples, or that fraction when < 1: 10,000 of MNIST's 60,000). Returns ``top1`` (in [0, 1]), ``l2``, the
    grid's held-out accuracies (``l2_search``), the convergence record (``grad_max``,
    ``iterations``, ``converged``, ``tol``) and, with ``check``, ``top1_more_iters``: the test
    top-1 after continuing with a 100x smaller tolerance (it must equal ``top1``)."""
    from tqdm.auto import tqdm
    y_train, y_test = y_train.to(torch.int64), y_test.to(torch.int64)
    K = int(max(int(y_train.max()), int(y_test.max())) + 1)
    x_train, x_test = standardize(x_train.double(), x_test.double())
    res: dict = {"n_train": int(len(x_train)), "n_test": int(len(x_test)), "dim": int(x_train.shape[1]),
                 "solver": "L-BFGS (full batch, float64, strong Wolfe)", "tol": tol}
    init = None
    if l2 is None:
        n_hold = int(round(holdout * len(x_train))) if holdout < 1 else int(holdout)
        if not 1 <= n_hold < len(x_train):
            raise ValueError(f"holdout {holdout} leaves no train or no held-out examples of {len(x_train)}")
        perm = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))
        fit_idx, hold_idx = perm[n_hold:], perm[:n_hold]
        search = {}
        best = None
        for lam in tqdm(sorted(grid, reverse=True), desc="probe: L2 search", leave=False, disable=not progress):
            m = fit_logistic_regression(x_train[fit_idx], y_train[fit_idx], lam, num_classes=K,
                                        max_iter=max_iter, tol=10 * tol, init=init)
            acc = _accuracy(m, x_train[hold_idx], y_train[hold_idx])
            search[f"{lam:g}"] = acc
            if best is None or acc > best[1]:
                best = (lam, acc, (m["W"], m["b"]))
            init = (m["W"], m["b"])            # warm start along the path (strong -> weak L2)
        l2, init = best[0], best[2]
        res.update(l2_search=search, n_holdout=n_hold)
    m = fit_logistic_regression(x_train, y_train, l2, num_classes=K, max_iter=max_iter, tol=tol, init=init)
    res.update(l2=l2, top1=_accuracy(m, x_test, y_test), train_top1=_accuracy(m, x_train, y_train),
               loss=m["loss"], grad_max=m["grad_max"], iterations=m["iterations"], converged=m["converged"])
    if check:
        m2 = fit_logistic_regression(x_train, y_train, l2, num_classes=K, max_iter=max_iter, tol=tol / 100,
                                     init=(m["W"], m["b"]))
        res.update(top1_more_iters=_accuracy(m2, x_test, y_test), grad_max_more_iters=m2["grad_max"],
                   loss_more_iters=m2["loss"])
    return res


def nearest_neighbor(train: torch.Tensor, query: torch.Tensor, batch_size: int = 256,
                     progress: bool = False) -> torch.Tensor:
    """Index ``[M]`` of the nearest row of ``train [N, D]`` (Euclidean) for each row of ``query
    [M, D]`` (float32 matmuls, in batches of ``batch_size`` queries; the lowest index wins a tie)."""
    if train.ndim != 2 or query.ndim != 2 or train.shape[1] != query.shape[1] or len(train) == 0:
        raise ValueError(f"need train [N, D] and query [M, D], got {tuple(train.shape)} and {tuple(query.shape)}")
    train = train.float()
    sq = train.square().sum(1)
    out = []
    from tqdm.auto import tqdm
    with torch.inference_mode():
        for q in tqdm(query.float().split(batch_size), desc="1-NN", unit="batch", leave=False, disable=not progress):
            out.append((sq - 2 * q @ train.T).argmin(1))     # |q|^2 is the same for every train row
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def knn_eval(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, *,
             standardized: bool = True, progress: bool = False) -> dict:
    """1-NN top-1 (in [0, 1]) of ``x_test`` against ``x_train`` (standardized with the train mean and
    std when ``standardized``)."""
    if standardized:
        x_train, x_test = standardize(x_train.float(), x_test.float())
    nn_idx = nearest_neighbor(x_train.flatten(1), x_test.flatten(1), progress=progress)
    return {"top1": float((y_train[nn_idx] == y_test).double().mean()), "n_train": int(len(x_train)),
            "n_test": int(len(x_test)), "dim": int(x_train[0].numel()), "standardized": standardized}
