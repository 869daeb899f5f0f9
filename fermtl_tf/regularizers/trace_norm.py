"""Tensor trace norms of stacked multi-task weights (Hu et al. 2018, ECCV, §2.2, Eqs. 1-3).

For an N-way tensor W of size D_1 x ... x D_N whose last axis indexes tasks (D_N = T):

* ``"laf"``    Eq. 1:  ‖W‖* = γ ‖W_(N)‖*                        (one unfolding)
* ``"tucker"`` Eq. 2:  ‖W‖* = Σ_{i=1..N}   γ_i ‖W_(i)‖*           (N unfoldings)
* ``"tt"``     Eq. 3:  ‖W‖* = Σ_{i=1..N-1} γ_i ‖W_[i]‖*           (N-1 unfoldings)

Unfolding orders (row-major / C order, last index fastest, as ``tf.reshape`` and NumPy):

* mode-i flattening ``W_(i) = reshape(permute(W, [i, 1, .., i-1, i+1, .., N]), [D_i, Π_{j≠i} D_j])``
  is ``unfold(W, axis=i-1)`` = ``np.moveaxis(W, i-1, 0).reshape(D_i, -1)``: row r is
  ``W[..., r, ...]`` (index r on axis i), and the columns run over the remaining axes in their
  original order 1..i-1, i+1..N, the last one varying fastest.
* TT unfolding ``W_[i] = reshape(W, [D_1⋯D_i, D_{i+1}⋯D_N])`` is ``tt_unfold(W, split=i)``.

A trace norm is invariant to permuting rows or columns and to transposition, so these orders
fix *which* matrix is meant, not its value. Internally some unfoldings are taken transposed
(e.g. the mode-N unfolding of LAF as ``reshape(W, [-1, T])``, which needs no copy of the
kernel); see ``_norm_unfoldings``.

Gradient (§2.2 "Optimisation"): ∂‖A‖*/∂A = U* V*ᵀ from the thin SVD A = U* Σ* V*ᵀ, supplied
through ``tf.custom_gradient``; the SVD is never differentiated by autodiff (its derivative
has 1/(σ_i² - σ_j²) terms that blow up when singular values repeat).

How the SVD is computed. A stacked kernel's unfoldings are very unbalanced (LAF of a
3x3x512x512x2 kernel is 2,359,296 x 2), so the spectrum comes from the small Gram matrix:
``G = AᵀA`` (or ``AAᵀ`` for a wide A), ``G = V Λ Vᵀ`` by ``eigh``, ``σ = sqrt(λ)``, and the
gradient is ``U Vᵀ = A V Σ⁻¹ Vᵀ`` (wide: ``U Σ⁻¹ Uᵀ A``). Forming G squares the condition
number, so singular values below ``rtol · σ_max`` are not resolved; they are treated as exactly
zero: they contribute neither to the value nor to the gradient (U Vᵀ over the singular values
above the tolerance only; the minimum-norm subgradient for the null part). The default
``rtol = sqrt(g · eps)`` (g = Gram size, eps of the dtype) is the Gram matrix's eigenvalue
accuracy floor. A zero matrix therefore has value 0 and gradient 0, never NaN.

``svd="randomized"`` (Halko et al. 2011, see ``randomized_svd.py``): unfoldings whose smaller
side exceeds ``rank + oversampling`` are sketched to the small ``B = Qᵀ A`` (or ``A Q`` when
A is tall; l = rank + oversampling probes) and the top ``rank`` singular values of B are used. That value is the Ky Fan
``rank``-norm estimate — a *lower bound* of the trace norm (equal to it when rank(A) <= rank,
up to the range finder's accuracy) — and the gradient ``Q U_B,k V_B,kᵀ`` (U_k V_kᵀ lifted by Q) is its subgradient.
Smaller unfoldings use the exact path, since sketching them saves nothing.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from fermtl_tf.regularizers.randomized_svd import sketch, sketch_size

METHODS = ("laf", "tucker", "tt")
SVD_MODES = ("exact", "randomized")
DEFAULT_RANDOMIZED_RANK = 32


def unfold(w, axis):
    """Mode-(axis+1) flattening W_(axis+1) (paper's 1-based mode): shape (D_axis, Π others)."""
    w = tf.convert_to_tensor(w)
    rank = w.shape.rank
    perm = [axis] + [j for j in range(rank) if j != axis]
    return tf.reshape(tf.transpose(w, perm), (w.shape[axis], -1))


def tt_unfold(w, split):
    """TT unfolding W_[split] = reshape(W, [D_1⋯D_split, D_split+1⋯D_N]), 1 <= split < N."""
    w = tf.convert_to_tensor(w)
    return tf.reshape(w, (int(np.prod(w.shape[:split])), -1))


def unfoldings(w, method):
    """The matrices whose trace norms make up ``method``'s tensor trace norm, in paper order.

    ``"laf"``: [W_(N)]; ``"tucker"``: [W_(1), ..., W_(N)]; ``"tt"``: [W_[1], ..., W_[N-1]].
    """
    w = tf.convert_to_tensor(w)
    _check_method(method, w.shape)
    n = w.shape.rank
    if method == "laf":
        return [unfold(w, n - 1)]
    if method == "tucker":
        return [unfold(w, i) for i in range(n)]
    return [tt_unfold(w, i) for i in range(1, n)]


def _norm_unfoldings(w, method):
    """``unfoldings`` for computing norms: the same matrices up to transposition, chosen to be
    cheap to form (a trace norm and its U Vᵀ gradient transpose along with the matrix).

    W_(1) is a plain reshape and W_(N) is taken as ``reshape(W, [-1, D_N])`` (no copy). A middle
    mode with D_i > 8 (channels) is taken tall, with axis i moved last, and a short one (a 3-wide
    kernel axis) wide, with axis i moved first: on the CPU (2 cores, 3x3x512x512x2 kernel) the
    Gram matrix of the cout mode took 29 ms tall vs 57 ms wide, the kw mode 2 ms wide vs 10 ms.
    """
    n = w.shape.rank

    def mode(i):
        if i == 0:
            return tf.reshape(w, (w.shape[0], -1))
        if i == n - 1:
            return tf.reshape(w, (-1, w.shape[-1]))
        if w.shape[i] > 8:
            perm = [j for j in range(n) if j != i] + [i]
            return tf.reshape(tf.transpose(w, perm), (-1, w.shape[i]))
        return unfold(w, i)

    if method == "laf":
        return [mode(n - 1)]
    if method == "tucker":
        return [mode(i) for i in range(n)]
    return [tt_unfold(w, i) for i in range(1, n)]


def _check_method(method, shape):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    if shape.rank is None or shape.rank < 2 or not shape.is_fully_defined():
        raise ValueError(f"tensor trace norms need a fully known shape of rank >= 2; got {shape}.")


def default_rtol(gram_size, dtype):
    """sqrt(g · eps): relative size below which a singular value from a g x g Gram is zero."""
    return math.sqrt(gram_size * np.finfo(tf.as_dtype(dtype).as_numpy_dtype).eps)


def _spectral_parts(a, rtol, top=None):
    """Trace norm of ``a`` and a closure giving ``U Vᵀ``, from the eigen-decomposition of the
    small Gram matrix. Only singular values > rtol·σ_max (and among the ``top`` largest, if
    given) count; see the module docstring."""
    m, n = int(a.shape[0]), int(a.shape[1])
    tall = m >= n
    gram = tf.matmul(a, a, transpose_a=tall, transpose_b=not tall)
    eigenvalues, basis = tf.linalg.eigh(gram)  # ascending
    sigma = tf.sqrt(tf.maximum(eigenvalues, 0.0))
    tol = (default_rtol(min(m, n), a.dtype) if rtol is None else rtol) * tf.reduce_max(sigma)
    keep = sigma > tol
    if top is not None and top < min(m, n):
        keep = keep & (tf.range(min(m, n)) >= min(m, n) - top)
    zeros = tf.zeros_like(sigma)
    inverse = tf.where(keep, 1.0 / tf.where(keep, sigma, tf.ones_like(sigma)), zeros)
    value = tf.reduce_sum(tf.where(keep, sigma, zeros))

    def polar(scale=1.0):
        """``scale · U Vᵀ`` = A (scale · V Σ⁺ Vᵀ) (tall) or (scale · U Σ⁺ Uᵀ) A (wide), over the
        kept singular values; the scale goes into the small factor to save a pass over A."""
        projector = scale * tf.matmul(basis * inverse, basis, transpose_b=True)
        return tf.matmul(a, projector) if tall else tf.matmul(projector, a)

    return value, polar


def matrix_trace_norm(a, svd="exact", rank=None, oversampling=10, power_iterations=2,
                      seed=(0, 0), rtol=None):
    """‖A‖* = Σ σ_i for a 2-D tensor, with gradient U Vᵀ (Hu et al. 2018, §2.2 Optimisation).

    ``svd="randomized"`` sketches when ``rank + oversampling < min(m, n)`` and then returns the
    sum of the top ``rank`` singular values of ``Qᵀ A`` (a lower bound, see module docstring).
    """
    a = tf.convert_to_tensor(a)
    if svd not in SVD_MODES:
        raise ValueError(f"svd must be one of {SVD_MODES}; got {svd!r}.")
    rank = DEFAULT_RANDOMIZED_RANK if rank is None else int(rank)
    use_sketch = svd == "randomized" and sketch_size(a.shape, rank, oversampling) < min(a.shape)

    @tf.custom_gradient
    def norm(a):
        if use_sketch:
            size = sketch_size(a.shape, rank, oversampling)
            q, b, wide = sketch(a, size, power_iterations, seed)
            value, polar_small = _spectral_parts(b, rtol, top=rank)

            def polar(scale=1.0):
                if wide:  # A ≈ Q B: U Vᵀ ≈ Q (U_B V_Bᵀ)
                    return tf.matmul(q, polar_small(scale))
                return tf.matmul(polar_small(scale), q, transpose_b=True)  # A ≈ B Qᵀ
        else:
            value, polar = _spectral_parts(a, rtol)

        def grad(upstream):
            return polar(upstream)

        return value, grad

    return norm(a)


def tensor_trace_norm(w, method, svd="exact", rank=None, oversampling=10, power_iterations=2,
                      seed=0, rtol=None):
    """Vector of the trace norms of ``unfoldings(w, method)`` (Hu et al. 2018, Eqs. 1-3).

    Args:
        w: N-way tensor (N >= 2), last axis = tasks; float32 or float64.
        method: "laf" (Eq. 1, 1 entry), "tucker" (Eq. 2, N entries), "tt" (Eq. 3, N-1 entries).
        svd: "exact" (Gram eigen-decomposition, all singular values above ``rtol``) or
            "randomized" (Halko et al.; unfoldings with min side > rank + oversampling are
            sketched: top-``rank`` value, a lower bound of the trace norm).
        rank: kept singular values per sketched unfolding (default 32).
        oversampling, power_iterations: Halko et al.'s p and q.
        seed: int; unfolding k draws its probes from the stateless seed (seed, k).
        rtol: relative zero tolerance on σ/σ_max (default sqrt(g·eps), g = Gram size).

    Returns:
        1-D tensor of the per-unfolding trace norms, same dtype as ``w``; its gradient is the
        sum of the folded-back U Vᵀ of each unfolding.
    """
    w = tf.convert_to_tensor(w)
    _check_method(method, w.shape)
    if not w.dtype.is_floating:
        raise ValueError(f"tensor_trace_norm needs a float tensor; got {w.dtype}.")
    norms = [
        matrix_trace_norm(a, svd, rank, oversampling, power_iterations, (int(seed), k), rtol)
        for k, a in enumerate(_norm_unfoldings(w, method))
    ]
    return tf.stack(norms)


def num_unfoldings(method, ndim):
    """How many γ weights ``method`` has for an ``ndim``-way tensor."""
    return {"laf": 1, "tucker": ndim, "tt": ndim - 1}[method]


@keras.saving.register_keras_serializable(package="fermtl_tf")
class TensorTraceNorm(keras.regularizers.Regularizer):
    """Keras regulariser ``strength · Σ_i γ_i ‖W_i‖*`` over the unfoldings of a stacked kernel.

    Hu et al. 2018 (ECCV), §2.2: Eq. 1 (``"laf"``), Eq. 2 (``"tucker"``), Eq. 3 (``"tt"``);
    attach it as the ``kernel_regularizer`` of ``StackedConv2D`` / ``StackedDense`` so it sees
    the whole kernel with the task axis last. ``strength`` is the paper's single sharing
    hyper-parameter (the γ of Eq. 1 / λ); ``gammas`` are the per-unfolding γ_i of Eqs. 2-3
    (default all 1). See ``tensor_trace_norm`` for the SVD options and the module docstring for
    unfolding orders, the zero tolerance and the randomized lower bound.

    Example:
        >>> reg = TensorTraceNorm("tucker", strength=1e-3, svd="randomized")
        >>> layer = StackedConv2D(64, 3, num_tasks=2, kernel_regularizer=reg)
    """

    def __init__(self, method="laf", strength=1e-3, gammas=None, svd="exact", rank=None,
                 oversampling=10, power_iterations=2, seed=0, rtol=None):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
        if svd not in SVD_MODES:
            raise ValueError(f"svd must be one of {SVD_MODES}; got {svd!r}.")
        if rank is not None and int(rank) < 1:
            raise ValueError(f"rank must be >= 1 or None; got {rank}.")
        self.method = method
        self.strength = float(strength)
        self.gammas = None if gammas is None else [float(g) for g in gammas]
        self.svd = svd
        self.rank = None if rank is None else int(rank)
        self.oversampling = int(oversampling)
        self.power_iterations = int(power_iterations)
        self.seed = int(seed)
        self.rtol = None if rtol is None else float(rtol)

    def __call__(self, x):
        x = tf.convert_to_tensor(x)
        count = num_unfoldings(self.method, x.shape.rank)
        gammas = [1.0] * count if self.gammas is None else self.gammas
        if len(gammas) != count:
            raise ValueError(
                f"TensorTraceNorm({self.method!r}) on a {x.shape.rank}-way kernel {x.shape} has "
                f"{count} unfoldings but gammas has {len(gammas)} entries: {gammas}."
            )
        norms = tensor_trace_norm(x, self.method, self.svd, self.rank, self.oversampling,
                                  self.power_iterations, self.seed, self.rtol)
        return self.strength * tf.reduce_sum(tf.constant(gammas, x.dtype) * norms)

    def get_config(self):
        return {
            "method": self.method,
            "strength": self.strength,
            "gammas": self.gammas,
            "svd": self.svd,
            "rank": self.rank,
            "oversampling": self.oversampling,
            "power_iterations": self.power_iterations,
            "seed": self.seed,
            "rtol": self.rtol,
        }
