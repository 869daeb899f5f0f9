"""Tensor trace norms (Hu et al. 2018, §2.2, Eqs. 1-3) against NumPy written from the paper."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.regularizers import (
    TensorTraceNorm,
    matrix_trace_norm,
    randomized_svd,
    tensor_trace_norm,
    trace_norm,
    tt_unfold,
    unfold,
)
from fermtl_tf.regularizers.trace_norm import (
    _inverse_sqrt,
    _newton_schulz_coefficients,
    _ritz_extremes,
    _sketch_may_certify,
    _spectrum_within,
    certified_gap,
    default_rtol,
)

SHAPE = (3, 4, 2, 5, 2)  # a 5-way "stacked conv kernel" (kh, kw, cin, cout, T)


# ---- NumPy references, from the paper's definitions --------------------------------------

def np_mode_unfold(w, i):
    """W_(i+1) = reshape(permute(W, [i, 0, .., i-1, i+1, ..]), [D_i, -1]) in C order."""
    return np.moveaxis(w, i, 0).reshape(w.shape[i], -1)


def np_fold_mode(m, i, shape):
    moved = (shape[i],) + tuple(d for j, d in enumerate(shape) if j != i)
    return np.moveaxis(m.reshape(moved), 0, i)


def np_unfoldings(w, method):
    """[(matrix, fold-back function)] for Eq. 1 (laf), Eq. 2 (tucker), Eq. 3 (tt)."""
    n = w.ndim
    if method == "laf":
        modes = [n - 1]
    elif method == "tucker":
        modes = list(range(n))
    else:
        return [(w.reshape(int(np.prod(w.shape[:i])), -1), lambda m: m.reshape(w.shape))
                for i in range(1, n)]
    return [(np_mode_unfold(w, i), lambda m, i=i: np_fold_mode(m, i, w.shape)) for i in modes]


def np_trace_norms(w, method):
    return np.array([np.linalg.svd(m, compute_uv=False).sum() for m, _ in np_unfoldings(w, method)])


def np_trace_norm_gradient(w, method):
    """Σ_i fold_i(U_i V_iᵀ), U V from NumPy's thin SVD (§2.2 Optimisation)."""
    total = np.zeros_like(w)
    for m, fold in np_unfoldings(w, method):
        u, _, vt = np.linalg.svd(m, full_matrices=False)
        total += fold(u @ vt)
    return total


def value_and_gradient(w, method, **kwargs):
    x = tf.Variable(w)
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(tensor_trace_norm(x, method, **kwargs))
    return value.numpy(), tape.gradient(value, x).numpy()


@pytest.fixture
def w():
    return np.random.default_rng(0).standard_normal(SHAPE)


# ---- unfolding order ------------------------------------------------------------------------

def test_unfold_matches_paper_permute_order_in_c_order(w):
    for i in range(w.ndim):
        paper_perm = [i] + [j for j in range(w.ndim) if j != i]  # [i, 1, .., i-1, i+1, .., N]
        expected = np.transpose(w, paper_perm).reshape(w.shape[i], -1)
        np.testing.assert_array_equal(unfold(tf.constant(w), i).numpy(), expected)
        np.testing.assert_array_equal(expected, np_mode_unfold(w, i))


def test_tt_unfold_is_row_major_reshape(w):
    for i in range(1, w.ndim):
        expected = w.reshape(int(np.prod(w.shape[:i])), int(np.prod(w.shape[i:])))
        np.testing.assert_array_equal(tt_unfold(tf.constant(w), i).numpy(), expected)


# ---- values and gradients -------------------------------------------------------------------

@pytest.mark.parametrize("method, count", [("laf", 1), ("tucker", 5), ("tt", 4)])
def test_trace_norms_equal_numpy_svd(w, method, count):
    norms = tensor_trace_norm(tf.constant(w), method).numpy()
    assert norms.shape == (count,)
    np.testing.assert_allclose(norms, np_trace_norms(w, method), rtol=1e-6)


@pytest.mark.parametrize("method", ["laf", "tucker", "tt"])
def test_gradient_equals_folded_u_vt(w, method):
    _, grad = value_and_gradient(w, method)
    np.testing.assert_allclose(grad, np_trace_norm_gradient(w, method), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", ["laf", "tucker", "tt"])
def test_gradient_agrees_with_central_finite_differences(w, method):
    rng = np.random.default_rng(1)
    _, grad = value_and_gradient(w, method)
    h = 1e-6
    for _ in range(3):
        e = rng.standard_normal(w.shape)
        numeric = (np_trace_norms(w + h * e, method).sum()
                   - np_trace_norms(w - h * e, method).sum()) / (2 * h)
        np.testing.assert_allclose(np.sum(grad * e), numeric, rtol=1e-6)


def test_float32_values_close_to_float64_reference(w):
    norms = tensor_trace_norm(tf.constant(w, tf.float32), "tucker")
    assert norms.dtype == tf.float32
    np.testing.assert_allclose(norms.numpy(), np_trace_norms(w, "tucker"), rtol=1e-4)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("svd", ["exact", "randomized", "randomized_fixed"])
def test_zero_kernel_gives_zero_value_and_finite_zero_gradient(dtype, svd):
    x = tf.Variable(tf.zeros((3, 3, 16, 16, 2), dtype))
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(tensor_trace_norm(x, "tucker", svd=svd, rank=2, oversampling=2))
    grad = tape.gradient(value, x).numpy()
    assert value.numpy() == 0.0
    assert np.all(np.isfinite(grad)) and np.all(grad == 0.0)


def test_duplicate_singular_values_give_finite_exact_gradient():
    rng = np.random.default_rng(2)
    u, _ = np.linalg.qr(rng.standard_normal((7, 4)))
    v, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    a = u @ np.diag([2.0, 2.0, 2.0, 1.0]) @ v.T  # σ = 2 repeated three times
    x = tf.Variable(a)
    with tf.GradientTape() as tape:
        value = matrix_trace_norm(x)
    grad = tape.gradient(value, x).numpy()
    np.testing.assert_allclose(value.numpy(), 7.0, rtol=1e-12)
    np.testing.assert_allclose(grad, u @ v.T, atol=1e-10)


def test_rank_deficient_gradient_uses_nonzero_singular_values_only():
    rng = np.random.default_rng(3)
    u, _ = np.linalg.qr(rng.standard_normal((6, 2)))
    v, _ = np.linalg.qr(rng.standard_normal((5, 2)))
    a = u @ np.diag([3.0, 0.5]) @ v.T  # rank 2 of a 6 x 5 matrix
    x = tf.Variable(a)
    with tf.GradientTape() as tape:
        value = matrix_trace_norm(x)
    grad = tape.gradient(value, x).numpy()
    np.testing.assert_allclose(value.numpy(), 3.5, rtol=1e-9)
    np.testing.assert_allclose(grad, u @ v.T, atol=1e-6)


# ---- randomized SVD -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(120, 60), (60, 120)])
def test_randomized_svd_matches_exact_on_low_rank_matrix(shape):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((shape[0], 5)) @ rng.standard_normal((5, shape[1]))
    s, u, v = randomized_svd(tf.constant(a), rank=5, oversampling=5, power_iterations=1)
    np.testing.assert_allclose(s.numpy(), np.linalg.svd(a, compute_uv=False)[:5], rtol=1e-8)
    np.testing.assert_allclose((u.numpy() * s.numpy()) @ v.numpy().T, a, atol=1e-8)


@pytest.mark.parametrize("svd", ["randomized", "randomized_fixed"])
@pytest.mark.parametrize("method", ["tucker", "tt"])
def test_randomized_trace_norm_is_exact_on_low_rank_tensor(method, svd):
    rng = np.random.default_rng(5)
    shape = (4, 4, 12, 20, 2)
    # CP rank 3: every unfolding has rank <= 3, so a rank-3 sketch loses nothing.
    w = sum(np.einsum("a,b,c,d,e->abcde", *[rng.standard_normal(d) for d in shape])
            for _ in range(3))
    norms = tensor_trace_norm(tf.constant(w), method, svd=svd, rank=3, oversampling=3)
    np.testing.assert_allclose(norms.numpy(), np_trace_norms(w, method), rtol=1e-6)


def test_truncated_randomized_value_is_lower_bound_close_to_top_k_sum():
    a = np.random.default_rng(6).standard_normal((60, 200))
    s = np.linalg.svd(a, compute_uv=False)
    value = matrix_trace_norm(tf.constant(a), svd="randomized_fixed", rank=10,
                              oversampling=10).numpy()
    assert value <= s.sum()
    np.testing.assert_allclose(value, s[:10].sum(), rtol=2e-2)


def numpy_polar(a):
    u, _, vt = np.linalg.svd(a, full_matrices=False)
    return u @ vt


def matrix_value_and_gradient(a, **kwargs):
    x = tf.Variable(a)
    with tf.GradientTape() as tape:
        value = matrix_trace_norm(x, **kwargs)
    return value.numpy(), tape.gradient(value, x).numpy()


def low_rank_plus_noise(shape, rank, noise, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((shape[0], rank)) @ rng.standard_normal((rank, shape[1]))
            + noise * rng.standard_normal(shape))


@pytest.mark.parametrize("shape", [(60, 200), (200, 60)])
def test_sketch_bounds_bracket_the_trace_norm_in_numpy(shape):
    # The inequality svd="randomized" relies on, from the definitions alone: for any Q with
    # l orthonormal columns on A's smaller side and B = QᵀA (or AQ),
    # ‖B‖* <= ‖A‖* <= ‖B‖* + sqrt((k - l)(‖A‖_F² - ‖B‖_F²)).
    rng = np.random.default_rng(7)
    a = rng.standard_normal(shape) * np.geomspace(1, 1e-2, shape[1])
    k, probes = min(shape), 12
    q, _ = np.linalg.qr(rng.standard_normal((k, probes)))
    b = q.T @ a if shape[0] <= shape[1] else a @ q
    exact, sketched = (np.linalg.svd(m, compute_uv=False).sum() for m in (a, b))
    bound = np.sqrt((k - probes) * ((a ** 2).sum() - (b ** 2).sum()))
    assert sketched <= exact <= sketched + bound
    residual = a - (q @ b if shape[0] <= shape[1] else b @ q.T)
    np.testing.assert_allclose(
        certified_gap(tf.constant((residual ** 2).sum()), k, probes).numpy(), bound, rtol=1e-10)


@pytest.mark.parametrize("shape", [(60, 200), (200, 60)])
def test_randomized_falls_back_to_exact_on_a_flat_spectrum(shape):
    # A Gaussian matrix has no small tail: no rank-14 sketch is within 1 %, so the value and
    # gradient must be the exact ones.
    a = np.random.default_rng(8).standard_normal(shape)
    value, grad = matrix_value_and_gradient(a, svd="randomized", rank=10, oversampling=4)
    np.testing.assert_allclose(value, np.linalg.svd(a, compute_uv=False).sum(), rtol=1e-9)
    np.testing.assert_allclose(grad, numpy_polar(a), atol=1e-9)


@pytest.mark.parametrize("shape", [(60, 200), (200, 60)])
def test_randomized_sketches_a_small_tail_within_tolerance(shape):
    a = low_rank_plus_noise(shape, 5, 1e-4, seed=9)
    s = np.linalg.svd(a, compute_uv=False)
    value, grad = matrix_value_and_gradient(a, svd="randomized", rank=5, oversampling=5)
    assert value < s.sum()  # the sketch was used: it misses the 50 noise directions
    assert s.sum() - value <= 0.01 * s.sum()
    # Gradient: the polar factor of the rank-10 sketch, lifted: U Vᵀ on the 5 signal
    # directions, plus 5 unit directions from the (nearly flat) noise the sketch caught.
    u, _, vt = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(u[:, :5].T @ grad @ vt[:5].T, np.eye(5), atol=1e-6)
    singular = np.linalg.svd(grad, compute_uv=False)
    np.testing.assert_allclose(singular[:10], 1.0, atol=1e-6)
    np.testing.assert_allclose(singular[10:], 0.0, atol=1e-6)


@pytest.mark.parametrize("tolerance", [1e-1, 1e-2, 1e-3])
def test_randomized_value_is_within_the_stated_tolerance(tolerance):
    rng = np.random.default_rng(10)
    u, _ = np.linalg.qr(rng.standard_normal((80, 80)))
    v, _ = np.linalg.qr(rng.standard_normal((300, 80)))
    s = np.geomspace(1.0, 1e-4, 80)  # a decaying spectrum: some tolerances pass, some not
    a = (u * s) @ v.T
    value, _ = matrix_value_and_gradient(a, svd="randomized", rank=16, oversampling=8,
                                         tolerance=tolerance)
    assert s.sum() - value <= tolerance * s.sum() + 1e-12
    assert value <= s.sum() + 1e-9


def test_float64_gram_resolves_the_near_zero_singular_values_of_a_float32_kernel():
    # Rank 3 + noise 1e-5: the noise singular values (~1e-5 of σ_max) are below the float32
    # Gram's zero tolerance, so its gradient misses their unit directions; in float64 the
    # value and U Vᵀ match float64 SVD of the same float32 numbers.
    a = low_rank_plus_noise((40, 120), 3, 1e-5 * np.sqrt(120), seed=12).astype(np.float32)
    reference = a.astype(np.float64)
    s = np.linalg.svd(reference, compute_uv=False)
    value32, grad32 = matrix_value_and_gradient(a)
    value64, grad64 = matrix_value_and_gradient(a, gram_dtype="float64")
    assert grad64.dtype == np.float32
    np.testing.assert_allclose(value64, s.sum(), rtol=1e-6)
    np.testing.assert_allclose(grad64, numpy_polar(reference), atol=1e-6)
    assert np.linalg.norm(grad32 - numpy_polar(reference)) > 0.5 * np.sqrt(37)  # 37 missing


def test_randomized_runs_inside_a_compiled_function():
    a = np.random.default_rng(11).standard_normal((40, 90)).astype(np.float32)
    x = tf.Variable(a)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = matrix_trace_norm(x, svd="randomized", rank=4, oversampling=4)
        return value, tape.gradient(value, x)

    value, grad = step()
    np.testing.assert_allclose(value.numpy(), np.linalg.svd(a, compute_uv=False).sum(),
                               rtol=1e-4)
    np.testing.assert_allclose(grad.numpy(), numpy_polar(a.astype(np.float64)), atol=1e-4)


# ---- exact path without eigenvectors (eigvalsh + Newton-Schulz) ------------------------------

def with_spectrum(shape, sigma, seed):
    """A matrix with the given singular values (descending) and random singular vectors."""
    rng = np.random.default_rng(seed)
    k = min(shape)
    u, _ = np.linalg.qr(rng.standard_normal((shape[0], k)))
    v, _ = np.linalg.qr(rng.standard_normal((shape[1], k)))
    return (u * sigma) @ v.T


@pytest.mark.parametrize("lower", [0.01, 0.2, 0.36, 0.62, 0.95])
def test_newton_schulz_step_maps_the_interval_into_its_stated_image(lower):
    # x -> αx + βx³ on [l, 1], evaluated in NumPy on a grid: positive, at most 1, at least l',
    # and l' > l (the lower end moves up at every step).
    alpha, beta, image = (float(c) for c in _newton_schulz_coefficients(
        tf.constant(lower, tf.float64)))
    x = np.linspace(lower, 1.0, 10001)
    y = alpha * x + beta * x ** 3
    assert y.max() <= 1.0 + 1e-12 and y.min() >= image - 1e-12
    np.testing.assert_allclose(y.min(), image, rtol=1e-12)
    assert image > lower


@pytest.mark.parametrize("dtype, atol", [(tf.float32, 1e-5), (tf.float64, 1e-12)])
def test_inverse_sqrt_equals_numpy_eigendecomposition(dtype, atol):
    a = with_spectrum((70, 30), np.linspace(2.0, 0.5, 30), seed=20)
    gram = a.T @ a
    lam, v = np.linalg.eigh(gram)
    expected = (v / np.sqrt(lam)) @ v.T
    got = _inverse_sqrt(tf.constant(gram, dtype), tf.constant(gram @ gram, dtype),
                        tf.constant(2.0, dtype), tf.constant(0.25, dtype)).numpy()
    np.testing.assert_allclose(got, expected, atol=atol)


SMALL_POLAR = 48  # POLAR_MIN_SIZE for these tests, so that they run in a moment


@pytest.fixture
def small_polar_size(monkeypatch):
    monkeypatch.setattr(trace_norm, "POLAR_MIN_SIZE", SMALL_POLAR)


def forbid(monkeypatch, name):
    """Make ``trace_norm.<name>`` raise: proves which branch of an eager ``tf.cond`` ran."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} should not run here")

    monkeypatch.setattr(trace_norm, name, refuse)


@pytest.mark.parametrize("shape", [(150, SMALL_POLAR), (SMALL_POLAR, 170)])
def test_exact_path_on_a_well_conditioned_matrix_equals_numpy_svd(shape, small_polar_size,
                                                                  monkeypatch):
    # Gram size >= POLAR_MIN_SIZE and σ_min/σ_max = 0.3: Newton-Schulz, never eigh.
    forbid(monkeypatch, "_eigh_parts")
    a = with_spectrum(shape, np.geomspace(3.0, 0.9, min(shape)), seed=21)
    value, grad = matrix_value_and_gradient(a.astype(np.float32))
    np.testing.assert_allclose(value, np.linalg.svd(a, compute_uv=False).sum(), rtol=1e-5)
    reference = numpy_polar(a)
    assert np.linalg.norm(grad - reference) <= 2e-5 * np.linalg.norm(reference)


def test_exact_path_on_a_rank_deficient_matrix_keeps_the_zero_tolerance(small_polar_size,
                                                                        monkeypatch):
    # Half the singular values far below the zero tolerance: eigh, never Newton-Schulz; value
    # and U Vᵀ over the other half only.
    forbid(monkeypatch, "_inverse_sqrt")
    k = SMALL_POLAR
    sigma = np.concatenate([np.linspace(2.0, 1.0, k // 2), np.full(k - k // 2, 1e-5)])
    a = with_spectrum((120, k), sigma, seed=22)
    assert 1e-5 / 2.0 < default_rtol(k, tf.float32)
    value, grad = matrix_value_and_gradient(a.astype(np.float32))
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(value, s[: k // 2].sum(), rtol=1e-5)
    reference = u[:, : k // 2] @ vt[: k // 2]
    assert np.linalg.norm(grad - reference) <= 1e-4 * np.linalg.norm(reference)


def test_exact_path_on_a_moderately_conditioned_matrix_uses_eigh(small_polar_size, monkeypatch):
    # σ_min/σ_max = 0.05 < POLAR_MIN_RATIO, all above the zero tolerance: eigh, all of U Vᵀ.
    forbid(monkeypatch, "_inverse_sqrt")
    a = with_spectrum((120, SMALL_POLAR), np.geomspace(1.0, 0.05, SMALL_POLAR), seed=26)
    value, grad = matrix_value_and_gradient(a.astype(np.float32))
    np.testing.assert_allclose(value, np.linalg.svd(a, compute_uv=False).sum(), rtol=1e-5)
    np.testing.assert_allclose(grad, numpy_polar(a), atol=1e-4)


def test_exact_path_on_a_decayed_spectrum_goes_to_eigh_without_a_certificate(small_polar_size,
                                                                              monkeypatch):
    # Stable rank ~1.05 < POLAR_MIN_RATIO² k = 1.08: σ_min < POLAR_MIN_RATIO σ_max is certain
    # before any Cholesky certificate or Newton-Schulz step is paid for.
    forbid(monkeypatch, "_enclosed_parts")
    sigma = np.concatenate([[1.0, 0.2], np.geomspace(0.03, 0.01, SMALL_POLAR - 2)])
    assert (sigma ** 2).sum() < trace_norm.POLAR_MIN_RATIO ** 2 * SMALL_POLAR  # the premise
    a = with_spectrum((120, SMALL_POLAR), sigma, seed=27)
    value, grad = matrix_value_and_gradient(a.astype(np.float32))
    np.testing.assert_allclose(value, sigma.sum(), rtol=1e-5)
    np.testing.assert_allclose(grad, numpy_polar(a), atol=1e-3)


def test_exact_path_runs_inside_a_compiled_function(small_polar_size):
    a = with_spectrum((130, SMALL_POLAR), np.linspace(1.5, 0.6, SMALL_POLAR), seed=23)
    x = tf.Variable(a.astype(np.float32))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = matrix_trace_norm(x)
        return value, tape.gradient(value, x)

    value, grad = step()
    np.testing.assert_allclose(value.numpy(), np.linalg.svd(a, compute_uv=False).sum(),
                               rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), numpy_polar(a), atol=1e-5)


# ---- eigvalsh-free certificate: Ritz estimates widened, enclosure checked by Cholesky -------

def test_ritz_extremes_lie_inside_the_spectrum_and_near_its_ends():
    a = np.random.default_rng(30).standard_normal((300, 100))
    gram = a.T @ a
    lam = np.linalg.eigvalsh(gram)
    low, high = (float(x) for x in _ritz_extremes(tf.constant(gram)))
    assert lam[0] - 1e-9 <= low and high <= lam[-1] + 1e-9  # Ritz values: inside [λ_min, λ_max]
    assert low <= 1.05 * lam[0] and high >= 0.98 * lam[-1]


@pytest.mark.parametrize("lower, upper, inside", [
    (0.20, 1.10, True),    # encloses [0.25, 1] (eigenvalues of G = σ²)
    (0.30, 1.10, False),   # λ_min = 0.25 below the lower end
    (0.20, 0.95, False),   # λ_max = 1 above the upper end
])
def test_spectrum_within_is_true_exactly_for_an_enclosure(lower, upper, inside):
    a = with_spectrum((60, 20), np.sqrt(np.linspace(1.0, 0.25, 20)), seed=31)
    gram = (a.T @ a).astype(np.float32)
    got = _spectrum_within(tf.constant(gram), tf.constant(gram @ gram), lower, upper)
    assert bool(got) is inside


def lanczos_start(k):
    """The fixed start vector of ``_ritz_extremes`` for a k x k float32 Gram matrix."""
    return tf.random.stateless_normal((k, 1), seed=(0, 0), dtype=tf.float32).numpy()[:, 0]


def with_hidden_direction(shape, sigma, hidden, seed):
    """``with_spectrum`` whose right singular vector number ``hidden`` is orthogonal to the
    Lanczos start: no Krylov method from that start sees its singular value."""
    rng = np.random.default_rng(seed)
    k = shape[1]
    start = lanczos_start(k).astype(np.float64)
    start /= np.linalg.norm(start)
    columns = rng.standard_normal((k, k))
    columns[:, 0] -= (columns[:, 0] @ start) * start
    v, _ = np.linalg.qr(columns)  # first column orthogonal to the start
    order = list(range(1, k))
    order.insert(hidden, 0)
    u, _ = np.linalg.qr(rng.standard_normal((shape[0], k)))
    return (u * sigma) @ v[:, order].T


def test_undershooting_ritz_estimate_falls_back_to_eigh(small_polar_size, monkeypatch):
    # σ_1 = 1.5 isolated above a flat bulk [0.5, 1], its direction hidden from the start of a
    # 3-step Lanczos estimate (20 steps would recover it from float rounding): λ̂_max is below
    # the bulk's 1, so (1 + u) λ̂_max undershoots σ_1² and X_0 = A / s has a singular value
    # 1.53, past the zero sqrt(1 + l + l²) ≈ 1.36 of the first Newton-Schulz polynomial.
    monkeypatch.setattr(trace_norm, "LANCZOS_STEPS", 3)
    k = SMALL_POLAR
    sigma = np.concatenate([[1.5], np.linspace(1.0, 0.5, k - 1)])
    a = with_hidden_direction((120, k), sigma, hidden=0, seed=32)
    gram32 = (a.T @ a).astype(np.float32)
    low, high = (float(x) for x in _ritz_extremes(tf.constant(gram32)))
    below, above = trace_norm.ENCLOSURE_MARGINS
    scale = np.sqrt((1 + above) * high)
    lower = np.sqrt((1 - below) * low) / scale
    # The premise: σ_max missed, X_0 past the basin, and the pre-test passed.
    assert (sigma[0] / scale > np.sqrt(1 + lower + lower ** 2)
            and low >= trace_norm.POLAR_MIN_RATIO ** 2 * high)

    # Unguarded, Newton-Schulz converges to -1 on that direction: X = A S is orthogonal
    # (S G S = I) but not U Vᵀ, and the value <G, S> is short by 2 σ_1.
    s = _inverse_sqrt(tf.constant(gram32), tf.constant(gram32 @ gram32),
                      tf.constant(scale, tf.float32),
                      tf.constant(lower, tf.float32)).numpy().astype(np.float64)
    np.testing.assert_allclose(s @ a.T @ a @ s, np.eye(k), atol=1e-4)
    np.testing.assert_allclose(np.sum(a.T @ a * s), sigma.sum() - 2 * sigma[0], rtol=1e-4)

    # Guarded: the Cholesky certificate fails and eigh gives the right answer.
    forbid(monkeypatch, "_inverse_sqrt")
    value, grad = matrix_value_and_gradient(a.astype(np.float32))
    np.testing.assert_allclose(value, sigma.sum(), rtol=1e-5)
    np.testing.assert_allclose(grad, numpy_polar(a), atol=1e-4)


@pytest.mark.parametrize("smallest", [0.1, 0.0])
def test_hidden_small_singular_value_falls_back_to_eigh(smallest, small_polar_size, monkeypatch):
    # The bulk is [0.5, 1] (ratio 0.5), but σ_min = 0.1 (below POLAR_MIN_RATIO) or 0 (rank
    # deficient) along a direction hidden from the Lanczos start: λ̂_min overstates λ_min, the
    # lower end of the enclosure fails its Cholesky, and eigh applies the zero tolerance.
    # 3 Lanczos steps, so that float rounding cannot bring the hidden direction back.
    monkeypatch.setattr(trace_norm, "LANCZOS_STEPS", 3)
    forbid(monkeypatch, "_inverse_sqrt")
    k = SMALL_POLAR
    sigma = np.concatenate([np.linspace(1.0, 0.5, k - 1), [smallest]])
    a = with_hidden_direction((120, k), sigma, hidden=k - 1, seed=33)
    low, _ = _ritz_extremes(tf.constant((a.T @ a).astype(np.float32)))
    assert (1 - trace_norm.ENCLOSURE_MARGINS[0]) * float(low) > smallest ** 2  # the premise
    value, grad = matrix_value_and_gradient(a.astype(np.float32))
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    kept = s > 1e-3
    np.testing.assert_allclose(value, s[kept].sum(), rtol=1e-5)
    np.testing.assert_allclose(grad, u[:, kept] @ vt[kept], atol=1e-4)


def flat_spectrum_case(shape, monkeypatch):
    """A Gaussian matrix, the flat spectrum of a freshly initialised TT unfolding (2304 x 512
    for a 256-channel kernel: σ_min / σ_max ≈ 0.36), at the default POLAR_MIN_SIZE."""
    forbid(monkeypatch, "_eigh_parts")
    a = np.random.default_rng(34).standard_normal(shape) / np.sqrt(shape[0])
    value, grad = matrix_value_and_gradient(a.astype(np.float32))
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(value, s.sum(), rtol=1e-5)
    reference = u @ vt
    assert np.linalg.norm(grad - reference) <= 2e-5 * np.linalg.norm(reference)


@pytest.mark.parametrize("shape", [(2304, 512), (512, 2304)])
def test_flat_spectrum_at_gram_size_512_takes_newton_schulz_within_tolerance(shape,
                                                                             monkeypatch):
    flat_spectrum_case(shape, monkeypatch)


@pytest.mark.slow
def test_flat_spectrum_at_gram_size_1024_takes_newton_schulz_within_tolerance(monkeypatch):
    flat_spectrum_case((4608, 1024), monkeypatch)


@pytest.mark.parametrize("k", [16, 21])  # blocks of 8 + 8 (then 4 + 4), and 10 + 11
def test_blocked_cholesky_diagonal_equals_numpy(k, monkeypatch):
    monkeypatch.setattr(trace_norm, "CHOLESKY_BLOCKED_SIZE", 8)
    a = np.random.default_rng(40).standard_normal((3 * k, k))
    spd = a.T @ a
    got = trace_norm._cholesky_diagonal(tf.constant(spd)).numpy()
    np.testing.assert_allclose(got, np.diag(np.linalg.cholesky(spd)), rtol=1e-10)


@pytest.mark.parametrize("where", [0, 6, 15])  # first block, inside it, the Schur complement
def test_blocked_cholesky_diagonal_of_an_indefinite_matrix_is_not_all_positive(where,
                                                                               monkeypatch):
    # One negative eigenvalue, its eigenvector concentrated on coordinate ``where``.
    monkeypatch.setattr(trace_norm, "CHOLESKY_BLOCKED_SIZE", 8)
    rng = np.random.default_rng(41)
    q, _ = np.linalg.qr(np.eye(16) + 0.1 * rng.standard_normal((16, 16)))
    q = q[:, np.r_[where, [i for i in range(16) if i != where]]]
    matrix = (q * np.concatenate([[-0.1], np.linspace(1.0, 2.0, 15)])) @ q.T
    diagonal = trace_norm._cholesky_diagonal(tf.constant(matrix)).numpy()
    assert not np.all(np.isfinite(diagonal) & (diagonal > 0))


@pytest.mark.parametrize("tolerance, early", [(1e-2, True), (1e-6, False)])
def test_randomized_fallback_runs_newton_schulz_to_the_tolerance(tolerance, early,
                                                                 small_polar_size, monkeypatch):
    # A flat spectrum (σ_min/σ_max = 0.36) no sketch can certify: the Gram path, with the
    # iteration stopped once every singular direction is within the tolerance. Value and the
    # gradient's singular values along U, V (the x_i of X = A S) lie in [1 - tolerance, 1];
    # at 1 % that is one step (of four) before float32's 100 eps, which leaves x_min visibly
    # below 1; a tolerance under 100 eps runs to 100 eps.
    forbid(monkeypatch, "_eigh_parts")
    sigma = np.linspace(1.0, 0.36, SMALL_POLAR)
    a = with_spectrum((150, SMALL_POLAR), sigma, seed=42)
    value, grad = matrix_value_and_gradient(a.astype(np.float32), svd="randomized", rank=4,
                                            oversampling=4, tolerance=tolerance)
    assert (1 - tolerance) * sigma.sum() <= value <= sigma.sum() * (1 + 1e-6)
    u, _, vt = np.linalg.svd(a, full_matrices=False)
    x = np.diag(u.T @ grad @ vt.T)
    assert np.all(x >= 1 - max(tolerance, 2e-5)) and np.all(x <= 1 + 1e-5)
    assert bool(x.min() < 1 - 1e-4) is early
    # The exact mode on the same matrix runs to 100 eps.
    exact, _ = matrix_value_and_gradient(a.astype(np.float32))
    np.testing.assert_allclose(exact, sigma.sum(), rtol=2e-5)


def numpy_certificate_possible(a, probes, tolerance):
    """Whether any sketch with ``probes`` columns could pass the certificate, from the true
    σ_max: (k - l)(‖A‖_F² - l σ_max²) <= tolerance² l² σ_max² (module docstring)."""
    s = np.linalg.svd(a, compute_uv=False)
    k = min(a.shape)
    return (k - probes) * max((a ** 2).sum() - probes * s[0] ** 2, 0) <= (
        tolerance ** 2 * probes ** 2 * s[0] ** 2)


@pytest.mark.parametrize("shape", [(80, 300), (300, 80)])
def test_sketch_precheck_skips_a_flat_spectrum_and_keeps_a_low_rank_one(shape):
    flat = np.random.default_rng(24).standard_normal(shape)
    low = low_rank_plus_noise(shape, 4, 1e-4, seed=25)
    assert not numpy_certificate_possible(flat, 10, 0.01)
    assert not bool(_sketch_may_certify(tf.constant(flat), 10, 0.01, (0, 0)))
    assert numpy_certificate_possible(low, 10, 0.01)
    assert bool(_sketch_may_certify(tf.constant(low), 10, 0.01, (0, 0)))


# ---- Keras regulariser ----------------------------------------------------------------------

def test_regularizer_sum_is_strength_times_gamma_weighted_sum(w):
    gammas = [1.0, 0.5, 2.0, 0.0]
    reg = TensorTraceNorm("tt", strength=0.3, gammas=gammas, normalize="sum")
    expected = 0.3 * np.dot(gammas, np_trace_norms(w, "tt"))
    np.testing.assert_allclose(reg(tf.constant(w)).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("method", ["laf", "tucker", "tt"])
def test_regularizer_reference_is_the_mean_over_unfoldings(w, method):
    # The authors' TNRDMTL code: reduce_mean of the per-unfolding trace norms.
    reg = TensorTraceNorm(method, strength=0.3)
    assert reg.normalize == "reference"
    expected = 0.3 * np.mean(np_trace_norms(w, method))
    np.testing.assert_allclose(reg(tf.constant(w)).numpy(), expected, rtol=1e-6)


def test_regularizer_reference_gradient_is_the_mean_of_folded_u_vt(w):
    x = tf.Variable(w)
    with tf.GradientTape() as tape:
        value = TensorTraceNorm("tucker", strength=2.0)(x)
    expected = 2.0 * np_trace_norm_gradient(w, "tucker") / 5
    np.testing.assert_allclose(tape.gradient(value, x).numpy(), expected, rtol=1e-6, atol=1e-9)


def test_regularizer_in_a_compiled_step_traces_each_kernel_shape_once():
    # As a step of a stacked network calls it: several kernels share a shape. Each
    # (options, shape, dtype) has its own called function, traced once, and the value and
    # gradients through the calls are those of NumPy's SVD.
    rng = np.random.default_rng(5)
    shapes = [SHAPE, SHAPE, SHAPE, (2, 3, 2)]
    arrays = [rng.standard_normal(shape) for shape in shapes]
    kernels = [tf.Variable(a) for a in arrays]
    reg = TensorTraceNorm("tt", strength=0.7, seed=11)  # options of its own: fresh functions

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = tf.add_n([reg(k) for k in kernels])
        return value, tape.gradient(value, kernels)

    value, grads = step()
    np.testing.assert_allclose(
        value.numpy(), sum(0.7 * np.mean(np_trace_norms(a, "tt")) for a in arrays), rtol=1e-6)
    for a, grad in zip(arrays, grads, strict=True):
        expected = 0.7 * np_trace_norm_gradient(a, "tt") / (a.ndim - 1)
        np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-6, atol=1e-9)
    for shape in (SHAPE, (2, 3, 2)):
        assert reg.norms_function(shape, "float64").experimental_get_tracing_count() == 1


def test_unknown_normalize_is_rejected():
    with pytest.raises(ValueError, match="normalize must be one of"):
        TensorTraceNorm("tt", normalize="max")


def test_regularizer_rejects_wrong_number_of_gammas(w):
    with pytest.raises(ValueError, match="4 unfoldings but gammas has 2"):
        TensorTraceNorm("tt", gammas=[1.0, 1.0])(tf.constant(w))


def test_unknown_method_is_rejected(w):
    with pytest.raises(ValueError, match="method must be one of"):
        tensor_trace_norm(tf.constant(w), "cp")


def test_regularizer_serialises_round_trip():
    reg = TensorTraceNorm("tucker", 1e-2, gammas=[1, 2, 3, 4, 5], svd="randomized", rank=8,
                          oversampling=4, power_iterations=1, seed=7, rtol=1e-5,
                          normalize="sum", tolerance=0.05, gram_dtype="float64")
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
    assert isinstance(restored, TensorTraceNorm)
    assert restored.get_config() == reg.get_config()
