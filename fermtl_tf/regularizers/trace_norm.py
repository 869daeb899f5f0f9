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

Exact path without eigen-decomposition (``_polar_parts``, Gram size >= ``POLAR_MIN_SIZE``). On
the CPU ``eigh`` spends most of its time on the eigenvectors (1024 x 1024: 614 ms against
160 ms for ``eigvalsh``, 24 ms for a matrix product, on the loaded 2-core machine), and
``eigvalsh`` alone still costs about five products. The value needs only ``tr G^(1/2)`` and
the gradient ``P = G^(-1/2)``, both available from matrix products when the spectrum is well
conditioned:

1. ``LANCZOS_STEPS`` Lanczos steps from a fixed start give Ritz values λ̂_min >= λ_min and
   λ̂_max <= λ_max (matrix-vector products only). If the stable rank ``tr G / λ̂_max`` or
   ``λ̂_min / λ̂_max`` already makes σ_min < ``POLAR_MIN_RATIO`` · σ_max certain (a decayed
   spectrum), ``eigh`` at once.
2. Certificate: the estimates, widened by ``ENCLOSURE_MARGINS`` to (r², s²), must enclose the
   spectrum, which one Cholesky factorisation of ``(G - r² I)(s² I - G)`` decides (positive
   definite exactly when every eigenvalue lies in (r², s²); ``_spectrum_within``). Then every
   singular value of ``X_0 = A / s`` lies in [r / s, 1]. Without the upper end certified, an
   undershot σ_max can put a singular value past the zero of the first Newton-Schulz
   polynomial, where the iteration converges to -1: ``X = A S`` is then orthogonal
   (``S G S = I`` holds) but is not U Vᵀ, and ``<G, S>`` is short by 2 σ — a check of
   ``S G S`` alone cannot see that, the enclosure excludes it.
3. Scaled Newton-Schulz steps (Chen & Chow 2014; matrix products only) on [r / s, 1], run
   until every singular direction of ``X = A S`` is within ``100 eps`` (1.2e-5 in float32) of
   U Vᵀ's, as proven for that interval; the value is ``<G, S> = Σ σ_i x_i``, so also within a
   relative ``100 eps``. The Cholesky needs G², which is also the first step's ``M_0²``.

A failed certificate (σ_max or σ_min outside the widened estimates, a singular value at or
below the zero tolerance) sends the unfolding to ``eigh``. The bounds hold in exact
arithmetic for the computed G; float32 rounding of the products adds about 1e-6 (tests
against NumPy float64 SVD at Gram sizes 512 and 1024).

Randomized SVD (Halko et al. 2011, see ``randomized_svd.py``; §2.2: "a fast randomized SVD
works well in practice"). An unfolding A (k = min(m, n)) whose k exceeds l = rank + oversampling
is sketched: Q (l orthonormal columns on A's smaller side) and ``B = Qᵀ A`` (or ``A Q`` when A
is tall). Two modes:

* ``svd="randomized"`` approximates the trace norm itself. ``‖B‖*`` (all l singular values of B)
  is a lower bound, and with the residual ``R = A - Q B`` (rank <= k - l, formed explicitly, since
  ``‖A‖_F² - ‖B‖_F²`` cancels in float32):  ``‖B‖* <= ‖A‖* <= ‖B‖* + sqrt(k - l) ‖R‖_F``
  (‖R‖* <= sqrt(rank R) ‖R‖_F, and ‖A‖* <= ‖Q B‖* + ‖R‖*). The sketch is used only
  when that certified gap is at most ``tolerance · ‖B‖*`` (so the relative error is at most
  ``tolerance``); otherwise the Gram path gives the value and gradient (a ``tf.cond``:
  one branch runs), its Newton-Schulz iteration stopped at the same relative ``tolerance``
  (one step of four fewer on a fresh kernel's flat spectrum at 1 %; ``eigh`` stays exact).
  Before sketching, ``_sketch_may_certify`` rules out the unfoldings whose certificate cannot
  pass whatever the sketch (``‖A‖_F²`` against a power estimate of σ_max²: four
  matrix-vector passes), so a flat spectrum goes straight to the Gram path instead of paying
  for a sketch it would discard. A spectrum that has decayed to rank < l passes; the flat
  spectrum of a freshly initialised kernel does not, and gets the Gram path's norm (within
  ``tolerance``, as above). The gradient of a sketched
  unfolding is ``Q U_B V_Bᵀ`` (lifted); it lacks the singular directions of the certified
  small tail.
* ``svd="randomized_fixed"`` (the earlier behaviour): the sum of the top ``rank`` singular
  values of B, whatever the tail holds — the Ky Fan ``rank``-norm, a lower bound that equals
  the trace norm only when rank(A) <= rank, with gradient ``U_k V_kᵀ``: singular values beyond
  the ``rank``-th get no gradient, so it is a different regulariser on full-rank unfoldings.

Smaller unfoldings use the Gram path in both modes (Newton-Schulz to ``tolerance`` under
``"randomized"``), since sketching them saves nothing.

Normalisation (``normalize`` of ``TensorTraceNorm``). The paper gives one strength and no
per-unfolding γ_i. The authors' public TNRDMTL code (Yang & Hospedales, the method Hu et al.
build on) regularises ``mean over layers of (mean over unfoldings of ‖W_i‖*)``:
``normalize="reference"`` (the default) takes the mean over the unfoldings; the mean over the
regularised layers is a division of ``strength`` by their number, which the model applies.
``normalize="sum"`` is the plain sum Σ_i γ_i ‖W_i‖* of Eqs. 2-3.
"""

import functools
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
#: Gram size from which the exact path takes the eigenvector-free route (``_polar_parts``);
#: below it ``eigh`` costs about as much as ``eigvalsh`` plus the matrix products.
POLAR_MIN_SIZE = 512
#: Smallest σ_min / σ_max for which ``_polar_parts`` tries Newton-Schulz (from 0.15: 5 steps to
#: 100 eps, 12 matrix products; ``eigh`` of a 1024 Gram matrix costs about 30 of them). The
#: stage-entry kernels of a ResNet (2304 x 1024 TT unfolding of 3x3x256x512x2) have 0.2.
POLAR_MIN_RATIO = 0.15
#: Lanczos steps for the Ritz estimates of λ_min and λ_max of a Gram matrix (``_ritz_extremes``).
#: Measured on freshly initialised ResNet-34 unfoldings: the λ_min estimate of a σ-ratio 0.2
#: spectrum (2304 x 1024) is 12.8 % high after 20 steps (past the enclosure margin: the
#: certificate failed and ``eigh`` ran), 4.9 % after 30, 0.6 % after 40.
LANCZOS_STEPS = 30
#: ``(d, u)``: the enclosure (r², s²) = ((1 - d) λ̂_min, (1 + u) λ̂_max) that ``_enclosed_parts``
#: certifies; wide enough for the Ritz errors of ``LANCZOS_STEPS`` steps on flat spectra
#: (30 steps on the unfoldings of ResNet-34 kernels at initialisation, k = 512 and 1024:
#: λ̂_min at most 4.9 % above λ_min, λ̂_max within 0.02 % of λ_max).
ENCLOSURE_MARGINS = (0.1, 0.05)
#: ``svd="randomized"`` sketches only if ``‖A‖_F²`` and ``SKETCH_TEST_MARGIN`` x a power
#: estimate of σ_max² leave the certificate possible (``_sketch_may_certify``).
SKETCH_TEST_MARGIN = 2.0
#: Size from which ``_cholesky_diagonal`` factors a matrix as 2 x 2 blocks (Eigen's unblocked
#: ``LLT``, TensorFlow's CPU Cholesky, took 21 ms at k = 1024 against 9 ms in blocks).
CHOLESKY_BLOCKED_SIZE = 512


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


def _gram(a):
    """``(AᵀA or AAᵀ on the smaller side, tall)``."""
    tall = int(a.shape[0]) >= int(a.shape[1])
    return tf.matmul(a, a, transpose_a=tall, transpose_b=not tall), tall


def _spectral_parts(a, rtol, top=None):
    """``(‖a‖*, P, tall)``, from the eigen-decomposition of the small Gram matrix: the
    gradient ``U Vᵀ`` of the trace norm is ``a @ P`` (tall) or ``P @ a`` (wide) with
    ``P = V Σ⁺ Vᵀ`` (or ``U Σ⁺ Uᵀ``) on the smaller side. Only singular values > rtol·σ_max
    (and among the ``top`` largest, if given) count; see the module docstring."""
    gram, tall = _gram(a)
    value, projector = _eigh_parts(gram, rtol, top)
    return value, projector, tall


def _eigh_parts(gram, rtol, top=None):
    """``(Σ kept σ, V Σ⁺ Vᵀ)`` of a Gram matrix by ``eigh`` (see ``_spectral_parts``)."""
    k = int(gram.shape[0])
    eigenvalues, basis = tf.linalg.eigh(gram)  # ascending
    sigma = tf.sqrt(tf.maximum(eigenvalues, 0.0))
    tol = (default_rtol(k, gram.dtype) if rtol is None else rtol) * tf.reduce_max(sigma)
    keep = sigma > tol
    if top is not None and top < k:
        keep = keep & (tf.range(k) >= k - top)
    zeros = tf.zeros_like(sigma)
    inverse = tf.where(keep, 1.0 / tf.where(keep, sigma, tf.ones_like(sigma)), zeros)
    value = tf.reduce_sum(tf.where(keep, sigma, zeros))
    return value, tf.matmul(basis * inverse, basis, transpose_b=True)


def _exact_parts(a, rtol, precision=None):
    """``(‖a‖*, P, tall)`` of the exact path: ``_polar_parts`` for Gram matrices of at least
    ``POLAR_MIN_SIZE``, where it is cheaper, else ``_spectral_parts``. ``precision``: the
    relative accuracy Newton-Schulz runs to (default, and never below, ``100 eps``)."""
    if min(int(a.shape[0]), int(a.shape[1])) >= POLAR_MIN_SIZE:
        return _polar_parts(a, rtol, precision)
    return _spectral_parts(a, rtol)


def _polar_parts(a, rtol, precision=None):
    """``_spectral_parts`` without eigen-decomposition where the spectrum allows (module
    docstring, "Exact path without eigen-decomposition"). Ritz values of a few Lanczos steps
    give λ̂_max <= λ_max and λ̂_min >= λ_min; a spectrum that cannot be well conditioned (stable rank
    ``tr G / λ̂_max`` below ``POLAR_MIN_RATIO² k``, or ``λ̂_min / λ̂_max`` below
    ``POLAR_MIN_RATIO²``: either makes σ_min < ``POLAR_MIN_RATIO`` σ_max certain) goes to
    ``eigh`` at once; the others to ``_enclosed_parts``. One branch of the ``tf.cond`` runs."""
    gram, tall = _gram(a)
    k = int(gram.shape[0])
    low, high = _ritz_extremes(gram)
    may_be_well_conditioned = ((tf.linalg.trace(gram) >= POLAR_MIN_RATIO ** 2 * k * high)
                               & (low >= POLAR_MIN_RATIO ** 2 * high))
    value, projector = tf.cond(may_be_well_conditioned,
                               lambda: _enclosed_parts(gram, low, high, rtol, precision),
                               lambda: _eigh_parts(gram, rtol))
    return value, projector, tall


def _ritz_extremes(gram):
    """``(λ̂_min, λ̂_max)``: the extreme Ritz values of ``LANCZOS_STEPS`` Lanczos steps (full
    re-orthogonalisation) on the PSD matrix G from a fixed random start. Ritz values lie in
    [λ_min, λ_max], so λ̂_max never overstates λ_max nor λ̂_min understates λ_min; how close
    they come is not certified (``_spectrum_within`` does that). ``LANCZOS_STEPS``
    matrix-vector products, cheap next to one product of two k x k matrices."""
    k = int(gram.shape[0])
    steps = min(LANCZOS_STEPS, k)
    q = tf.random.stateless_normal((k, 1), seed=(0, 0), dtype=gram.dtype)
    q = q / tf.norm(q)
    basis, diagonal, off_diagonal = q, [], []
    for step in range(steps):
        w = tf.matmul(gram, q)
        diagonal.append(tf.reduce_sum(q * w))
        for _ in range(2):  # classical Gram-Schmidt twice keeps the basis orthonormal
            w = w - tf.matmul(basis, tf.matmul(basis, w, transpose_a=True))
        if step + 1 < steps:
            beta = tf.norm(w)
            off_diagonal.append(beta)
            q = tf.math.divide_no_nan(w, beta)
            basis = tf.concat([basis, q], axis=1)
    tridiagonal = tf.linalg.diag(tf.stack(diagonal))
    if off_diagonal:
        beta = tf.stack(off_diagonal)
        tridiagonal += tf.linalg.diag(beta, k=1) + tf.linalg.diag(beta, k=-1)
    ritz = tf.linalg.eigvalsh(tridiagonal)  # ascending
    return tf.maximum(ritz[0], 0.0), ritz[-1]


def _spectrum_within(gram, gram_squared, lower, upper):
    """True when every eigenvalue λ of the symmetric G lies in (lower, upper), certified by a
    Cholesky factorisation: ``P = (G - lower I)(upper I - G)`` (a polynomial in G, formed from
    G²) has the eigenvalues ``(λ - lower)(upper - λ)``, all positive exactly then. TensorFlow's
    Cholesky does not raise for a matrix that is not positive definite: its CPU kernel
    (Eigen ``LLT``) and its GPU kernel (cuSOLVER ``potrf``) log a warning and fill the lower
    triangle with NaN, so the test is whether the diagonal is finite and positive (tested on
    the CPU; no GPU was available to test it there). One Cholesky, a sixth of a matrix
    product in flops."""
    eye = tf.eye(int(gram.shape[0]), dtype=gram.dtype)
    product = (lower + upper) * gram - gram_squared - (lower * upper) * eye
    diagonal = _cholesky_diagonal(_symmetrized(product))
    return tf.reduce_all(tf.math.is_finite(diagonal) & (diagonal > 0))


def _cholesky_diagonal(matrix):
    """Diagonal of the Cholesky factor L of a symmetric matrix (NaN where it is not positive
    definite). From ``CHOLESKY_BLOCKED_SIZE`` on, by 2 x 2 blocks: ``L11 = chol(A11)``,
    ``L21ᵀ = L11⁻¹ A12`` (a triangular solve), and the factor of the Schur complement
    ``A22 - L21 L21ᵀ``, recursively; the matrix is positive definite exactly when both
    blocks' factorisations succeed, and a failure in ``L11`` reaches ``L22`` as NaN."""
    k = int(matrix.shape[0])
    if k < CHOLESKY_BLOCKED_SIZE:
        return tf.linalg.diag_part(tf.linalg.cholesky(matrix))
    half = k // 2
    l11 = tf.linalg.cholesky(matrix[:half, :half])
    l21_t = tf.linalg.triangular_solve(l11, matrix[:half, half:], lower=True)
    schur = matrix[half:, half:] - tf.matmul(l21_t, l21_t, transpose_a=True)
    return tf.concat([tf.linalg.diag_part(l11), _cholesky_diagonal(schur)], axis=0)


def _enclosed_parts(gram, low, high, rtol, precision=None):
    """``(Σ σ, P = G^(-1/2))`` by scaled Newton-Schulz when the Ritz values, widened by
    ``ENCLOSURE_MARGINS``, certifiably enclose the spectrum: every λ in
    (r², s²) = ((1 - d) λ̂_min, (1 + u) λ̂_max) (``_spectrum_within``). Then every singular
    value of ``X_0 = A / s`` lies in [r / s, 1], the interval the Newton-Schulz schedule of
    ``_inverse_sqrt`` is proven on (none of them can fall outside its basin and converge to
    -1), no singular value is below the zero tolerance (r / s > rtol), and the value is
    ``tr(G P) = <G, P> = Σ σ_i x_i`` with every x_i within ``precision`` (default ``100 eps``)
    of 1. Otherwise ``eigh`` as in ``_spectral_parts``."""
    k = int(gram.shape[0])
    below, above = ENCLOSURE_MARGINS
    lower, upper = (1.0 - below) * low, (1.0 + above) * high
    ratio = tf.sqrt(tf.math.divide_no_nan(lower, upper))
    floor = default_rtol(k, gram.dtype) if rtol is None else rtol
    gram_squared = tf.matmul(gram, gram)  # also the first Newton-Schulz step's M0²

    def newton_schulz():
        projector = _inverse_sqrt(gram, gram_squared, tf.sqrt(upper), ratio, precision)
        return tf.reduce_sum(gram * projector), projector

    usable = (ratio > floor) & _spectrum_within(gram, gram_squared, lower, upper)
    return tf.cond(usable, newton_schulz, lambda: _eigh_parts(gram, rtol))


def _newton_schulz_coefficients(lower):
    """Scaled Newton-Schulz step ``x -> α x + β x³`` for singular values in [lower, 1]
    (Chen & Chow 2014: ``h(γx)``, ``h(y) = (3y - y³)/2``, ``γ = sqrt(3 / (1 + l + l²))``):
    maps [lower, 1] into [l', 1] with ``l' = lower (α + β lower²)``; never above 1, never
    negative, since γ <= sqrt(3). Returns ``(α, β, l')``."""
    gamma = tf.sqrt(3.0 / (1.0 + lower + lower * lower))
    alpha, beta = 1.5 * gamma, -0.5 * gamma ** 3
    return alpha, beta, lower * (alpha + beta * lower * lower)


def _newton_schulz_steps(lower, delta):
    """How many ``_newton_schulz_coefficients`` steps take [lower, 1] into [1 - delta, 1]
    (a scalar recursion in float64; at least 1, at most 16)."""
    def body(steps, low):
        return steps + 1, _newton_schulz_coefficients(low)[2]

    steps, _ = tf.while_loop(lambda steps, low: (low < 1.0 - delta) & (steps < 16), body,
                             (tf.constant(1), _newton_schulz_coefficients(lower)[2]))
    return steps


def _inverse_sqrt(gram, gram_squared, sigma_max, lower, precision=None):
    """``G^(-1/2)`` for a Gram matrix G = AᵀA whose singular values σ(A) lie in
    [lower · sigma_max, sigma_max], by scaled Newton-Schulz on ``X = A S`` in Gram form.

    ``S_0 = I / sigma_max``, ``M_0 = S_0 G S_0 = X_0ᵀX_0``; each step ``H = α I + β M``,
    ``S <- S H``, ``M <- H M H`` (all polynomials in G, so they commute) moves every singular
    value x of X to ``α x + β x³``, and the known interval [l, 1] to [l', 1]. The steps run
    until ``1 - l <= precision`` (default and floor ``100 eps`` of the dtype), so ``X = A S`` is
    ``U Vᵀ`` to within that relative error in every singular direction (l = 0.36: 4 steps and
    9 matrix products with G² at ``100 eps``; 3 steps and 6 products at 1e-3). The first
    ``M_1 = α² M_0 + 2αβ M_0² + β² M_0³`` takes one product, given ``gram_squared`` = G².
    """
    dtype = gram.dtype
    k = int(gram.shape[0])
    eye = tf.eye(k, dtype=dtype)
    lower64 = tf.cast(lower, tf.float64)
    delta = 100.0 * float(np.finfo(dtype.as_numpy_dtype).eps)
    delta = delta if precision is None else max(delta, float(precision))
    steps = _newton_schulz_steps(lower64, delta)
    scale = 1.0 / sigma_max

    def step_matrix(low, m):
        alpha, beta, low_next = _newton_schulz_coefficients(low)
        return tf.cast(alpha, dtype) * eye + tf.cast(beta, dtype) * m, low_next

    def next_m(h, m):
        return _symmetrized(tf.matmul(tf.matmul(h, m), h))

    m0 = gram * scale ** 2
    alpha, beta, low = _newton_schulz_coefficients(lower64)
    alpha, beta = tf.cast(alpha, dtype), tf.cast(beta, dtype)
    s = (alpha * eye + beta * m0) * scale  # S_1 = S_0 H_0

    def first_m():
        m0_squared = gram_squared * scale ** 4
        return _symmetrized(alpha ** 2 * m0 + 2.0 * alpha * beta * m0_squared
                            + beta ** 2 * tf.matmul(m0_squared, m0))

    m = tf.cond(steps > 1, first_m, lambda: m0)

    def body(i, low, s, m):
        h, low_next = step_matrix(low, m)
        # The last step needs S only.
        m = tf.cond(i + 1 < steps, lambda: next_m(h, m), lambda: m)
        return i + 1, low_next, tf.matmul(s, h), m

    _, _, s, _ = tf.while_loop(lambda i, *_: i < steps, body, (tf.constant(1), low, s, m))
    return _symmetrized(s)


def _symmetrized(matrix):
    """``(M + Mᵀ) / 2``: removes the rounding asymmetry of a product known to be symmetric."""
    return 0.5 * (matrix + tf.transpose(matrix))


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


def _sketch_may_certify(a, size, tolerance, seed):
    """False when no sketch of ``size`` probes can pass the certificate, decided before paying
    for one: ``‖R‖_F² >= ‖A‖_F² - size · σ_max²`` and ``‖B‖* <= size · σ_max`` for every
    sketch, so with ``s² >= σ_max²`` the certificate ``sqrt(k - size) ‖R‖_F <= tolerance ‖B‖*``
    is impossible when ``(k - size)(‖A‖_F² - size s²) > tolerance² size² s²``. ``s²`` is
    ``SKETCH_TEST_MARGIN`` x a two-step power estimate of σ_max² (one probe vector: four
    matrix-vector passes over A); an estimate below σ_max² can only send a sketchable
    unfolding to the exact path (slower, never less accurate)."""
    m, n = int(a.shape[0]), int(a.shape[1])
    wide = m <= n
    k = min(m, n)

    def gram_times(x):  # (A Aᵀ or Aᵀ A) x on the smaller side
        if wide:
            return tf.matmul(a, tf.matmul(a, x, transpose_a=True))
        return tf.matmul(a, tf.matmul(a, x), transpose_a=True)

    probe = tf.random.stateless_normal(
        (k, 1), seed=tf.random.experimental.stateless_fold_in(seed, 1), dtype=a.dtype)
    once = gram_times(probe)
    once = tf.math.divide_no_nan(once, tf.norm(once))
    bound = SKETCH_TEST_MARGIN * tf.norm(gram_times(once))
    tail = tf.maximum(tf.reduce_sum(tf.square(a)) - size * bound, 0.0)
    return float(k - size) * tail <= tolerance ** 2 * size ** 2 * bound


def matrix_trace_norm(a, svd="exact", rank=None, oversampling=10, power_iterations=2,
                      seed=(0, 0), rtol=None, tolerance=DEFAULT_TOLERANCE, gram_dtype=None):
    """‖A‖* = Σ σ_i for a 2-D tensor, with gradient U Vᵀ (Hu et al. 2018, §2.2 Optimisation).

    ``svd="randomized"``: a sketch of ``rank + oversampling`` probes when that is below
    min(m, n) and its certified relative error is at most ``tolerance``, else the Gram path
    with its Newton-Schulz iteration run to ``tolerance`` too (every singular direction of
    the gradient, and so the value, within that relative error; ``eigh`` is exact).
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
    precision = tolerance if svd == "randomized" else None

    def parts(a):
        """(value, P, tall) for the chosen mode."""
        if not use_sketch:
            return _exact_parts(a, rtol, precision)
        if svd == "randomized_fixed":
            return _sketched_parts(a, size, power_iterations, seed, rtol, top=rank)[:3]

        def exact():
            return _exact_parts(a, rtol, precision)[:2]

        def certified_sketch():
            value, projector, _, residual_sq = _sketched_parts(a, size, power_iterations, seed,
                                                               rtol)
            gap = certified_gap(residual_sq(), smaller, size)
            return tf.cond(gap <= tolerance * value, lambda: (value, projector), exact)

        value, projector = tf.cond(_sketch_may_certify(a, size, tolerance, seed),
                                   certified_sketch, exact)
        return value, projector, int(a.shape[0]) >= int(a.shape[1])

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


@functools.cache
def kernel_trace_norms(options, shape, dtype):
    """``tensor_trace_norm(w, *options)`` for kernels of one shape and dtype, as a
    ``tf.function`` that a training step calls rather than inlines (``_noinline``).

    Why: a ResNet-34 has 33 regularised kernels but 8 kernel shapes, and each kernel's trace
    norm is a graph of a few hundred ops and dozens of branch and loop functions (Lanczos,
    certificate, Newton-Schulz, sketch). Inlined into the step, TensorFlow traced and then
    optimised all 33 copies: the first step of the 2-task ResNet-34 of
    ``benchmarks/trace_norm_overhead.py`` (batch 4 per task, 2 CPU cores) took 66 s with Tucker
    and 94 s with TT (``svd="randomized"``), against 2 s without the regulariser. As called
    functions, each shape is traced and optimised once: 16 s and 18 s; the later steps were not
    slower (batch 128 per task: step ratio 1.33 -> 1.27-1.29 for Tucker). One cached function
    per (options, shape, dtype), its input signature fixed, so none of them is ever retraced.
    ``_noinline`` is a TensorFlow function attribute (``tf.function(experimental_attributes=...)``).
    """
    return tf.function(lambda w: tensor_trace_norm(w, *options),
                       input_signature=[tf.TensorSpec(shape, dtype)],
                       experimental_attributes={"_noinline": True})


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
        norms = self.norms_function(tuple(x.shape), x.dtype.name)(x)
        return self.strength * reduce_unfoldings(norms, gammas, self.normalize)

    def norms_function(self, shape, dtype):
        """The ``tf.function`` giving the per-unfolding norms of a kernel of this shape and
        dtype with this regulariser's options (``kernel_trace_norms``; shared by every
        regulariser with the same options)."""
        options = (self.method, self.svd, self.rank, self.oversampling, self.power_iterations,
                   self.seed, self.rtol, self.tolerance, self.gram_dtype)
        return kernel_trace_norms(options, shape, dtype)

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
