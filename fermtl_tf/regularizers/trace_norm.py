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

Randomized SVD (Halko et al. 2011, see ``randomized_svd.py``; §2.2: "a fast randomized SVD
works well in practice"). An unfolding A (k = min(m, n)) whose k exceeds l = rank + oversampling
is sketched: Q (l orthonormal columns on A's smaller side) and ``B = Qᵀ A`` (or ``A Q`` when A
is tall). Two modes:

* ``svd="randomized"`` approximates the trace norm itself. ``‖B‖*`` (all l singular values of B)
  is a lower bound, and with the residual ``R = A - Q B`` (rank <= k - l, formed explicitly, since
  ``‖A‖_F² - ‖B‖_F²`` cancels in float32):  ``‖B‖* <= ‖A‖* <= ‖B‖* + sqrt(k - l) ‖R‖_F``
  (‖R‖* <= sqrt(rank R) ‖R‖_F, and ‖A‖* <= ‖Q B‖* + ‖R‖*). The sketch is used only
  when that certified gap is at most ``tolerance · ‖B‖*`` (so the relative error is at most
  ``tolerance``); otherwise the exact Gram path gives the value and gradient (a ``tf.cond``:
  one branch runs). A spectrum that has decayed to rank < l passes; the flat spectrum of a
  freshly initialised kernel does not, and gets the exact norm. The gradient of a sketched
  unfolding is ``Q U_B V_Bᵀ`` (lifted); it lacks the singular directions of the certified
  small tail.
* ``svd="randomized_fixed"`` (the earlier behaviour): the sum of the top ``rank`` singular
  values of B, whatever the tail holds — the Ky Fan ``rank``-norm, a lower bound that equals
  the trace norm only when rank(A) <= rank, with gradient ``U_k V_kᵀ``: singular values beyond
  the ``rank``-th get no gradient, so it is a different regulariser on full-rank unfoldings.

Smaller unfoldings use the exact path in both modes, since sketching them saves nothing.

Normalisation (``normalize`` of ``TensorTraceNorm``). The paper gives one strength and no
per-unfolding γ_i. The authors' public TNRDMTL code (Yang & Hospedales, the method Hu et al.
build on) regularises ``mean over layers of (mean over unfoldings of ‖W_i‖*)``:
``normalize="reference"`` (the default) takes the mean over the unfoldings; the mean over the
regularised layers is a division of ``strength`` by their number, which the model applies.
``normalize="sum"`` is the plain sum Σ_i γ_i ‖W_i‖* of Eqs. 2-3.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from fermtl_tf.regularizers.randomized_svd import sketch, sketch_size

METHODS = ("laf", "tucker", "tt")
SVD_MODES = ("exact", "randomized", "randomized_fixed")
NORMALIZATIONS = ("reference", "sum")
DEFAULT_RANDOMIZED_RANK = 32
#: Relative error allowed to a sketched trace norm before ``svd="randomized"`` falls back
#: to the exact path.
DEFAULT_TOLERANCE = 0.01


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
    """``(‖a‖*, P, tall)``, from the eigen-decomposition of the small Gram matrix: the
    gradient ``U Vᵀ`` of the trace norm is ``a @ P`` (tall) or ``P @ a`` (wide) with
    ``P = V Σ⁺ Vᵀ`` (or ``U Σ⁺ Uᵀ``) on the smaller side. Only singular values > rtol·σ_max
    (and among the ``top`` largest, if given) count; see the module docstring."""
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
    projector = tf.matmul(basis * inverse, basis, transpose_b=True)
    return value, projector, tall


def _sketched_parts(a, size, power_iterations, seed, rtol, top=None):
    """``(‖B‖* over the top singular values (default all), lifted P, tall, ‖A - Q B‖_F²)`` for
    the sketch ``B = Qᵀ A`` (wide A) or ``A Q`` (tall A). Lifting: the wide gradient
    ``Q (P_B B) = (Q P_B Qᵀ) A`` and the tall ``(B P_B) Qᵀ = A (Q P_B Qᵀ)``, so one small-side
    ``P = Q P_B Qᵀ`` serves both, as in ``_spectral_parts``. The residual is formed
    explicitly: ``‖A‖_F² - ‖B‖_F²`` would cancel to float32 rounding exactly when it is small.
    The residual is computed lazily (a closure): only ``svd="randomized"`` needs it."""
    q, b, wide = sketch(a, size, power_iterations, seed)
    value, projector_b, _ = _spectral_parts(b, rtol, top)
    projector = tf.matmul(tf.matmul(q, projector_b), q, transpose_b=True)

    def residual_sq():
        lifted = tf.matmul(q, b) if wide else tf.matmul(b, q, transpose_b=True)
        return tf.reduce_sum(tf.square(a - lifted))

    return value, projector, int(a.shape[0]) >= int(a.shape[1]), residual_sq


def certified_gap(residual_sq, smaller_side, sketch_size_):
    """Upper bound of ``‖A‖* - ‖B‖*`` for a sketch B of A with ``sketch_size_`` probes:
    ``sqrt(k - l) · ‖A - Q B‖_F`` (the residual has rank <= k - l; module docstring)."""
    return tf.sqrt(float(smaller_side - sketch_size_) * tf.maximum(residual_sq, 0.0))


def matrix_trace_norm(a, svd="exact", rank=None, oversampling=10, power_iterations=2,
                      seed=(0, 0), rtol=None, tolerance=DEFAULT_TOLERANCE, gram_dtype=None):
    """‖A‖* = Σ σ_i for a 2-D tensor, with gradient U Vᵀ (Hu et al. 2018, §2.2 Optimisation).

    ``svd="randomized"``: a sketch of ``rank + oversampling`` probes when that is below
    min(m, n) and its certified relative error is at most ``tolerance``, else exact.
    ``svd="randomized_fixed"``: the sum of the top ``rank`` singular values of the sketch (a
    lower bound, see the module docstring). ``gram_dtype="float64"`` computes in float64
    (value and gradient cast back to A's dtype): the default zero tolerance drops from
    √(k·eps32) ≈ 0.8 % of σ_max (k = 512) to ≈ 4e-7, so near-zero singular values keep their
    unit gradient, at about twice the cost.
    """
    a = tf.convert_to_tensor(a)
    if svd not in SVD_MODES:
        raise ValueError(f"svd must be one of {SVD_MODES}; got {svd!r}.")
    work_dtype = a.dtype if gram_dtype is None else tf.as_dtype(gram_dtype)
    rank = DEFAULT_RANDOMIZED_RANK if rank is None else int(rank)
    size = sketch_size(a.shape, rank, oversampling)
    smaller = min(int(a.shape[0]), int(a.shape[1]))
    use_sketch = svd != "exact" and size < smaller

    def parts(a):
        """(value, P, tall) for the chosen mode."""
        if not use_sketch:
            return _spectral_parts(a, rtol)
        if svd == "randomized_fixed":
            return _sketched_parts(a, size, power_iterations, seed, rtol, top=rank)[:3]
        value, projector, tall, residual_sq = _sketched_parts(a, size, power_iterations, seed,
                                                              rtol)
        gap = certified_gap(residual_sq(), smaller, size)
        value, projector = tf.cond(gap <= tolerance * value, lambda: (value, projector),
                                   lambda: _spectral_parts(a, rtol)[:2])
        return value, projector, tall

    @tf.custom_gradient
    def norm(a):
        work = tf.cast(a, work_dtype)
        value, projector, tall = parts(work)

        def grad(upstream):
            # The upstream scale goes into the small factor to save a pass over A.
            scaled = tf.cast(upstream, work_dtype) * projector
            return tf.cast(tf.matmul(work, scaled) if tall else tf.matmul(scaled, work), a.dtype)

        return tf.cast(value, a.dtype), grad

    return norm(a)


def tensor_trace_norm(w, method, svd="exact", rank=None, oversampling=10, power_iterations=2,
                      seed=0, rtol=None, tolerance=DEFAULT_TOLERANCE, gram_dtype=None):
    """Vector of the trace norms of ``unfoldings(w, method)`` (Hu et al. 2018, Eqs. 1-3).

    The terms of the tensor trace norm, unweighted; :func:`reduce_unfoldings` combines them
    (γ_i, sum or reference mean) as :class:`TensorTraceNorm` does.

    Args:
        w: N-way tensor (N >= 2), last axis = tasks; float32 or float64.
        method: "laf" (Eq. 1, 1 entry), "tucker" (Eq. 2, N entries), "tt" (Eq. 3, N-1 entries).
        svd: "exact" (Gram eigen-decomposition, all singular values above ``rtol``),
            "randomized" (a sketch where its certified relative error is within
            ``tolerance``, else exact) or "randomized_fixed" (top-``rank`` value of a sketch,
            a lower bound); unfoldings with min side <= rank + oversampling are always exact.
        rank: sketch rank per unfolding (default 32); "randomized" uses all
            ``rank + oversampling`` singular values of the sketch, "randomized_fixed" the top
            ``rank``.
        oversampling, power_iterations: Halko et al.'s p and q.
        seed: int; unfolding k draws its probes from the stateless seed (seed, k).
        rtol: relative zero tolerance on σ/σ_max (default sqrt(g·eps), g = Gram size).
        tolerance: allowed relative error of a sketched value under "randomized".
        gram_dtype: None (w's dtype) or "float64": the dtype of the Gram matrix, its
            eigen-decomposition, the sketch and the gradient product (see
            :func:`matrix_trace_norm`).

    Returns:
        1-D tensor of the per-unfolding trace norms, same dtype as ``w``; its gradient is the
        sum of the folded-back U Vᵀ of each unfolding.
    """
    w = tf.convert_to_tensor(w)
    _check_method(method, w.shape)
    if not w.dtype.is_floating:
        raise ValueError(f"tensor_trace_norm needs a float tensor; got {w.dtype}.")
    norms = [
        matrix_trace_norm(a, svd, rank, oversampling, power_iterations, (int(seed), k), rtol,
                          tolerance, gram_dtype)
        for k, a in enumerate(_norm_unfoldings(w, method))
    ]
    return tf.stack(norms)


def reduce_unfoldings(norms, gammas=None, normalize="reference"):
    """Σ_i γ_i ‖W_i‖* (``"sum"``, Eqs. 2-3) or its mean over the unfoldings
    (``"reference"``, as the authors' TNRDMTL code); ``gammas`` default all 1."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}; got {normalize!r}.")
    norms = tf.convert_to_tensor(norms)
    weighted = norms if gammas is None else tf.constant(gammas, norms.dtype) * norms
    total = tf.reduce_sum(weighted)
    return total if normalize == "sum" else total / float(norms.shape[0])


def num_unfoldings(method, ndim):
    """How many γ weights ``method`` has for an ``ndim``-way tensor."""
    return {"laf": 1, "tucker": ndim, "tt": ndim - 1}[method]


@keras.saving.register_keras_serializable(package="fermtl_tf")
class TensorTraceNorm(keras.regularizers.Regularizer):
    """Keras regulariser ``strength · mean_i γ_i ‖W_i‖*`` (or ``Σ_i``) over the unfoldings of a
    stacked kernel.

    Hu et al. 2018 (ECCV), §2.2: Eq. 1 (``"laf"``), Eq. 2 (``"tucker"``), Eq. 3 (``"tt"``);
    attach it as the ``kernel_regularizer`` of ``StackedConv2D`` / ``StackedDense`` so it sees
    the whole kernel with the task axis last. ``strength`` is the paper's single sharing
    hyper-parameter (the γ of Eq. 1 / λ); ``gammas`` are the per-unfolding γ_i of Eqs. 2-3
    (default all 1). ``normalize="reference"`` (default) averages over the unfoldings as the
    authors' code does, ``"sum"`` adds them (LAF has one unfolding: both agree); the mean over
    layers is ``strength`` divided by the number of regularised layers, set by the model. See
    ``tensor_trace_norm`` for the SVD options and the module docstring for unfolding orders,
    the zero tolerance and the randomized modes.

    Example:
        >>> reg = TensorTraceNorm("tucker", strength=1e-3 / 33, svd="randomized")
        >>> layer = StackedConv2D(64, 3, num_tasks=2, kernel_regularizer=reg)
    """

    def __init__(self, method="laf", strength=1e-3, gammas=None, svd="exact", rank=None,
                 oversampling=10, power_iterations=2, seed=0, rtol=None,
                 normalize="reference", tolerance=DEFAULT_TOLERANCE, gram_dtype=None):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
        if svd not in SVD_MODES:
            raise ValueError(f"svd must be one of {SVD_MODES}; got {svd!r}.")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}; got {normalize!r}.")
        if rank is not None and int(rank) < 1:
            raise ValueError(f"rank must be >= 1 or None; got {rank}.")
        if float(tolerance) < 0:
            raise ValueError(f"tolerance must be >= 0; got {tolerance}.")
        self.method = method
        self.strength = float(strength)
        self.gammas = None if gammas is None else [float(g) for g in gammas]
        self.svd = svd
        self.rank = None if rank is None else int(rank)
        self.oversampling = int(oversampling)
        self.power_iterations = int(power_iterations)
        self.seed = int(seed)
        self.rtol = None if rtol is None else float(rtol)
        self.normalize = normalize
        self.tolerance = float(tolerance)
        self.gram_dtype = None if gram_dtype is None else tf.as_dtype(gram_dtype).name

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
                                  self.power_iterations, self.seed, self.rtol, self.tolerance,
                                  self.gram_dtype)
        return self.strength * reduce_unfoldings(norms, gammas, self.normalize)

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
            "normalize": self.normalize,
            "tolerance": self.tolerance,
            "gram_dtype": self.gram_dtype,
        }
