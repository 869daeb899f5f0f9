"""Randomized SVD (Halko, Martinsson & Tropp, SIAM Review 2011).

Hu et al. 2018 (ECCV), §2.2 "Optimisation": "Though exact SVD is expensive, we find that a fast
randomized SVD [16] works well in practice"; [16] is Halko et al. The paper gives no rank,
oversampling or power-iteration count; those are parameters here.

* ``sketch``: Halko et al. Alg. 4.4 (randomized subspace iteration) + the first step of
  Alg. 5.1 (direct SVD): an orthonormal basis Q of the dominant singular subspace of A on A's
  *smaller* side, and the small projected matrix B (A ≈ Q B, or A ≈ B Qᵀ when A is tall).
* ``randomized_svd``: the rest of Alg. 5.1: SVD of the small B, lifted back with Q.

Departure from Alg. 4.4, for speed on unbalanced unfoldings (e.g. 512 x 9,216): Q is
re-orthonormalised (Householder QR) once per power iteration on the small side,
``Q <- qr(A Aᵀ Q)``, instead of after each half step; the large-side QR of ``Aᵀ Q`` cost
more than all the matrix products together on a CPU. Directions with σ_i/σ_1 below about
sqrt(eps) can be lost in ``A Aᵀ Q``; they do not affect the leading ``rank`` triplets.

The test matrix Ω is drawn with ``tf.random.stateless_normal`` from an explicit seed pair, so
a call is a pure function of (A, seed): the same A gives the same answer inside and outside a
compiled step, on every replica.
"""

import tensorflow as tf


def sketch_size(shape, rank, oversampling):
    """``l = min(rank + oversampling, m, n)``: the number of random probes actually used."""
    return min(int(rank) + int(oversampling), int(shape[0]), int(shape[1]))


def sketch(a, size, power_iterations=2, seed=(0, 0)):
    """Returns ``(q, b, wide)``: for a wide A (m <= n) ``A ≈ Q B`` with Q (m x size)
    orthonormal and ``B = Qᵀ A``; for a tall A ``A ≈ B Qᵀ`` with Q (n x size), ``B = A Q``.

    Q = qr((M Mᵀ)^q M Ω) with M = A (wide) or Aᵀ (tall), one QR per power iteration.
    """
    a = tf.convert_to_tensor(a)
    wide = int(a.shape[0]) <= int(a.shape[1])
    probes = int(a.shape[1] if wide else a.shape[0])
    omega = tf.random.stateless_normal((probes, size), seed=seed, dtype=a.dtype)

    def apply(x):  # M x
        return tf.matmul(a, x) if wide else tf.matmul(a, x, transpose_a=True)

    def apply_transposed(x):  # Mᵀ x
        return tf.matmul(a, x, transpose_a=True) if wide else tf.matmul(a, x)

    q, _ = tf.linalg.qr(apply(omega))
    for _ in range(int(power_iterations)):
        q, _ = tf.linalg.qr(apply(apply_transposed(q)))
    b = tf.matmul(q, a, transpose_a=True) if wide else tf.matmul(a, q)
    return q, b, wide


def randomized_svd(a, rank, oversampling=10, power_iterations=2, seed=(0, 0)):
    """Approximate top-``rank`` SVD of a 2-D tensor: returns ``(s, u, v)`` with
    ``a ≈ u @ diag(s) @ vᵀ``, ``s`` descending, ``u`` (m x rank), ``v`` (n x rank).

    ``l = min(rank + oversampling, m, n)`` probes. When ``l`` reaches ``min(m, n)`` the basis
    spans the whole smaller side and the result is exact up to rounding. Each ``s[i]`` is the
    i-th singular value of the projected B and never exceeds the i-th singular value of A.
    """
    a = tf.convert_to_tensor(a)
    if a.shape.rank != 2:
        raise ValueError(f"randomized_svd expects a matrix; got shape {a.shape}.")
    rank = min(int(rank), int(a.shape[0]), int(a.shape[1]))
    q, b, wide = sketch(a, sketch_size(a.shape, rank, oversampling), power_iterations, seed)
    s, u_b, v_b = tf.linalg.svd(b)
    if wide:
        return s[:rank], tf.matmul(q, u_b[:, :rank]), v_b[:, :rank]
    return s[:rank], u_b[:, :rank], tf.matmul(q, v_b[:, :rank])
