"""The numba kernels of ``lenet5-1998``'s compiled per-pattern SDLM step, loops written for its
sizes: forward pass, RBF loss (Eq. 8 / Eq. 9), gradients and update, on flat float32 buffers
(:mod:`lenet.training.steps.pattern_numba` holds the buffers and the parameter views and calls
:func:`step` or :func:`sequence`).

Layout: a convolution writes its output "wide": output pixel (r, s) of a map is element
r * W + s of a row-major buffer, W the *input* width, so output q reads input q + u*W + v for
tap (u, v) and every loop over q is contiguous, which LLVM vectorizes (forward: the 25 taps
accumulate in a register; weight gradients: one pass over q per kernel row, five dot
products). The W - W_out columns past each output row are junk: pooling never reads them and
the backward pass zeroes their gradient. C3's input gradient is the same forward loop run on
its gradient maps zero-bordered to 18x18 with the kernels flipped. For a batch of one, F6's and
C5's weights (58,000 of the 60,000) are updated inside the backward pass, row by row right after
their old values were used, instead of writing and re-reading a gradient.

Float semantics: float32 throughout, like the reference; the kernels may reassociate sums
(``reassoc``, so dot products vectorize) and fuse multiply-adds (``contract``), the freedom a
BLAS or oneDNN kernel takes (so the last bits differ between an AVX2 and an AVX-512 machine, as
torch's do; one machine is deterministic), but keep IEEE NaN/inf handling (no ``nnan``/``ninf``),
so a diverging run still shows a non-finite loss. tanh is a rational approximation (below).

numba's on-disk cache keys a kernel on its own bytecode and this file, not on the globals it
reads nor on the kernels of other files it calls: so every kernel, constant and compile option
the kernels use lives here, and a change to any of them recompiles.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# The order of the parameters in the kernel's argument list and in its flat gradient and
# step-size buffers.
NAMES = ("c1.weight", "c1.bias", "s2.coefficient", "s2.bias", "c3.weight", "c3.bias",
         "s4.coefficient", "s4.bias", "c5.weight", "c5.bias", "f6.weight", "f6.bias")
# 2-D views the kernel works on (rows, columns); the others keep their own (1-D) shape.
VIEWS = {"c1.weight": (6, 25), "c3.weight": (-1, 25), "c5.weight": (120, 400)}

# Literal copies of lenet1998's constants: numba's on-disk cache is keyed on this file alone and
# freezes globals into the machine code, so the kernels must not read another module's values.
# pattern_numba.supports() refuses the step if lenet1998's differ (the torch step runs), and a
# test keeps them equal, so a change there means a change here, which invalidates the cache.
SQUASH_A, SQUASH_S = 1.7159, 2.0 / 3.0
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

_F = np.float32
A, S, AS = _F(SQUASH_A), _F(SQUASH_S), _F(SQUASH_A * SQUASH_S)  # as torch casts them
ONE, TWO, ZERO = _F(1.0), _F(2.0), _F(0.0)
L1, L3 = 27 * 32 + 28, 9 * 14 + 10  # wide lengths of C1 (28x28 from 32 wide), C3 (10x10 of 14)
LX = 13 * 18 + 14  # S2's 14x14 gradient, wide in C3's gradient zero-bordered to 18x18 (g3p)
# The workspace, name -> (rows, columns).
_WS = (("t1", 6, L1), ("p1", 6, 196), ("t2", 6, 196), ("x2", 6, 196), ("t3", 16, L3),
       ("p3", 16, 25), ("t4", 16, 25), ("x4", 16, 25), ("t5", 1, 120), ("x5", 1, 120),
       ("t6", 1, 84), ("x6", 1, 84), ("coef", 1, 10), ("g6", 1, 84), ("g5", 1, 120),
       ("g4", 16, 25), ("g3", 16, L3), ("gx2", 6, 196), ("g1", 6, L1), ("g3p", 16, 324),
       ("gxw", 6, LX), ("w3f", 60, 25))
WS_SIZE = sum(r * c for _, r, c in _WS)
# Indices into _WSO, the (offset, rows, columns) of each part of the workspace.
(T1, P1, T2, X2, T3, P3, T4, X4, T5, X5, T6, X6, COEF, G6, G5, G4, G3, GX2, G1, G3P, GXW,
 W3F) = range(len(_WS))
_WSO = tuple((sum(r * c for _, r, c in _WS[:k]), r, c) for k, (_, r, c) in enumerate(_WS))
# Table I as constants: C3 map o sums the S2 maps _C3_IN[_C3_START[o]:_C3_START[o + 1]], and
# packed kernel k of c3.weight belongs to the k-th of those (o, i) pairs.
_C3_IN = np.array([i for inputs in C3_TABLE for i in inputs], dtype=np.int64)
_C3_START = np.cumsum([0] + [len(inputs) for inputs in C3_TABLE]).astype(np.int64)
# The flat gradient / step-size buffers: (offset, rows, columns) of each parameter in NAMES.
_SHAPES = ((6, 25), (1, 6), (1, 6), (1, 6), (60, 25), (1, 16), (1, 16), (1, 16), (120, 400),
           (1, 120), (84, 120), (1, 84))
GO = tuple((sum(r * c for r, c in _SHAPES[:k]), r, c) for k, (r, c) in enumerate(_SHAPES))
N_PARAMS = sum(r * c for r, c in _SHAPES)
# Compiling takes ~15-25 s; numba's cache makes later processes load it in ~0.4 s. It writes
# next to this file if it can (a __pycache__ folder), else under the user's cache directory
# (NUMBA_CACHE_DIR overrides), atomically, keyed on this file, the numba version and the CPU.
# The options are spelled out (not a dict splatted into njit) so that the type checker matches
# them against numba's own stubs and the kernels keep their signatures.
_jit = numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"}, error_model="numpy")


@_jit
def _part(buf: np.ndarray, where: tuple[int, int, int]) -> np.ndarray:
    """The (rows, columns) view at ``where`` = (offset, rows, columns) of a flat buffer."""
    at, rows, cols = where
    return buf[at:at + rows * cols].reshape((rows, cols))


# tanh(z) as Eigen's float rational interpolant (13/6 degree, "accurate up to a couple of ulp";
# Eigen's MathFunctionsImpl.h): plain arithmetic, so the loops that call it vectorize, where
# libm's tanhf is a scalar call that cost more than all the convolutions together. Measured
# against float64 tanh on 2.2 million points in [-12, 12]: at most 2.6e-7 off (4.4 ulp), within
# 2.4e-7 of torch.tanh.
_TANH_CLAMP, _TANH_TINY = _F(7.90531110763549805), _F(0.0004)
_TANH_P = tuple(_F(c) for c in (4.89352455891786e-03, 6.37261928875436e-04,
                                1.48572235717979e-05, 5.12229709037114e-08,
                                -8.60467152213735e-11, 2.00018790482477e-13,
                                -2.76076847742355e-16))
_TANH_Q = tuple(_F(c) for c in (4.89352518554385e-03, 2.26843463243900e-03,
                                1.18534705686654e-04, 1.19825839466702e-06))


@_jit
def _tanh(z: float) -> float:
    """tanh of a float32 to a couple of ulp; NaN stays NaN (a diverging run must show it)."""
    # Clamped so that NaN fails both comparisons and passes through.
    x = _TANH_CLAMP if z > _TANH_CLAMP else z
    x = -_TANH_CLAMP if x < -_TANH_CLAMP else x
    x2 = x * x
    p = _TANH_P[6]
    for k in range(5, -1, -1):
        p = p * x2 + _TANH_P[k]
    q = _TANH_Q[3]
    for k in range(2, -1, -1):
        q = q * x2 + _TANH_Q[k]
    return z if abs(z) < _TANH_TINY else x * p / q


@_jit
def _squash(a: np.ndarray, t: np.ndarray) -> None:
    """t = tanh(S a) (kept for f'), a <- f(a) = A t; elementwise over matching 1-D views."""
    for q in range(a.shape[0]):
        tq = _tanh(a[q] * S)
        t[q] = tq
        a[q] = tq * A


@_jit
def _conv_wide(x: np.ndarray, w: np.ndarray, width: int, out: np.ndarray) -> None:
    """out[q] += Σ_uv w[uv] x[q + u*width + v]: one 5x5 kernel over one wide input map; the
    25 taps (unrolled by LLVM) accumulate in a register, one store per output."""
    for q in range(out.shape[0]):
        acc = out[q]
        for u in range(5):
            for v in range(5):
                acc += w[u * 5 + v] * x[q + u * width + v]
        out[q] = acc


@_jit
def _conv_wide_back(g: np.ndarray, x: np.ndarray, width: int, gw: np.ndarray) -> None:
    """gw[u*5 + v] += Σ_q g[q] x[q + u*width + v]: a 5x5 kernel's gradient, wide g; a row's
    five taps share one pass over g (five vector accumulators)."""
    n = g.shape[0]
    for u in range(5):
        off = u * width
        a0 = a1 = a2 = a3 = a4 = ZERO
        for q in range(n):
            gq, b = g[q], off + q
            a0 += gq * x[b]
            a1 += gq * x[b + 1]
            a2 += gq * x[b + 2]
            a3 += gq * x[b + 3]
            a4 += gq * x[b + 4]
        gw[u * 5] += a0
        gw[u * 5 + 1] += a1
        gw[u * 5 + 2] += a2
        gw[u * 5 + 3] += a3
        gw[u * 5 + 4] += a4


@_jit
def _pool_squash(xw: np.ndarray, width: int, side: int, c: float, b: float,
                 p: np.ndarray, t: np.ndarray, out: np.ndarray) -> None:
    """One subsampling map: p = sums of the 2x2 blocks of the wide map xw (A t of the layer
    below), out = f(b + c p), t = tanh(S (b + c p)); all side x side, row-major."""
    for i in range(side):
        for j in range(side):
            q = 2 * i * width + 2 * j
            s = (xw[q] + xw[q + 1]) + (xw[q + width] + xw[q + width + 1])
            k = i * side + j
            p[k] = s
            tk = _tanh((b + s * c) * S)
            t[k] = tk
            out[k] = tk * A


@_jit
def _spread_back(g: np.ndarray, c: float, side: int, width: int, t: np.ndarray,
                 gw: np.ndarray) -> None:
    """∂E/∂a of a wide conv map from ∂E/∂a of the subsampling map above: each 2x2 block gets
    g c, times f'; the junk columns get 0 (they must not reach the weight gradients)."""
    gw[:] = ZERO
    for r in range(2 * side):
        for s in range(2 * side):
            q = r * width + s
            tq = t[q]
            gw[q] = g[(r // 2) * side + s // 2] * c * (ONE - tq * tq) * AS


@_jit
def _forward(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, c2: np.ndarray, b2: np.ndarray,
             w3: np.ndarray, b3: np.ndarray, c4: np.ndarray, b4: np.ndarray, ws: np.ndarray
             ) -> None:
    """Input (1024,) -> the S4 states x4, keeping t = tanh(S a) and the block sums p."""
    t1, p1, t2, x2 = _part(ws, _WSO[T1]), _part(ws, _WSO[P1]), _part(ws, _WSO[T2]), _part(
        ws, _WSO[X2])
    t3, p3, t4, x4 = _part(ws, _WSO[T3]), _part(ws, _WSO[P3]), _part(ws, _WSO[T4]), _part(
        ws, _WSO[X4])
    a1 = _part(ws, _WSO[G1])  # the gradient's space, free until the backward pass
    for m in range(6):
        a1[m, :] = b1[m]
        _conv_wide(x, w1[m], 32, a1[m])
        _squash(a1[m], t1[m])
        _pool_squash(a1[m], 32, 14, c2[m], b2[m], p1[m], t2[m], x2[m])
    a3 = _part(ws, _WSO[G3])  # as a1
    for o in range(16):
        a3[o, :] = b3[o]
        for k in range(_C3_START[o], _C3_START[o + 1]):
            _conv_wide(x2[_C3_IN[k]], w3[k], 14, a3[o])
        _squash(a3[o], t3[o])
        _pool_squash(a3[o], 14, 5, c4[o], b4[o], p3[o], t4[o], x4[o])


@_jit
def _dense(w: np.ndarray, b: np.ndarray, x: np.ndarray, out: np.ndarray, t: np.ndarray) -> None:
    """out = f(w x + b), t = tanh(S (w x + b))."""
    for o in range(w.shape[0]):
        acc = ZERO
        for j in range(w.shape[1]):
            acc += w[o, j] * x[j]
        tq = _tanh((acc + b[o]) * S)
        t[o] = tq
        out[o] = tq * A


@_jit
def _rbf_loss(x6: np.ndarray, codes: np.ndarray, label: int, mle: bool, rbf_j: float,
              scale: float, scores: np.ndarray, coef: np.ndarray) -> float:
    """Scores -y_i, the pattern's loss, and coef_i = scale * ∂E/∂y_i (Eq. 8 or Eq. 9)."""
    if label < 0 or label >= 10:  # the reference's one_hot refuses it too; never write past
        raise ValueError("NumbaPatternStep: a label outside 0..9")
    for i in range(10):
        acc = ZERO
        for j in range(84):
            d = x6[j] - codes[i, j]
            acc += d * d
        scores[i] = -acc
    coef[:] = ZERO
    coef[label] = _F(scale)
    if mle:  # Eq. 8: E = y_D
        return -scores[label]
    # Eq. 9: E = -log p_D, p the softmax over (-j, -y_0, ..., -y_9).
    top = max(_F(-rbf_j), scores.max())
    total = math.exp(_F(-rbf_j) - top)
    for i in range(10):
        total += math.exp(scores[i] - top)
    lse = _F(top + math.log(total))
    for i in range(10):
        coef[i] -= _F(scale) * _F(math.exp(scores[i] - lse))
    return lse - scores[label]


@_jit
def _dense_back(g: np.ndarray, t: np.ndarray, x: np.ndarray, w: np.ndarray, gw: np.ndarray,
                gb: np.ndarray, gx: np.ndarray, eps: np.ndarray, fused: bool) -> None:
    """g = ∂E/∂f(a) -> ∂E/∂a in place; gb += g, gx = wᵀ g (∂E/∂x) and gw += g xᵀ, or with
    ``fused`` (a batch of one) the update w += ε g xᵀ at once, each row right after its old
    weights gave gx: the same arithmetic without writing, zeroing and re-reading gw."""
    gx[:] = ZERO
    for o in range(w.shape[0]):
        go = g[o] * (ONE - t[o] * t[o]) * AS
        g[o] = go
        gb[o] += go
        if fused:
            for j in range(w.shape[1]):
                gx[j] += go * w[o, j]
                w[o, j] += go * x[j] * eps[o, j]
        else:
            for j in range(w.shape[1]):
                gw[o, j] += go * x[j]
                gx[j] += go * w[o, j]


@_jit
def _pool_back(g: np.ndarray, t: np.ndarray, p: np.ndarray, gc: np.ndarray, gb: np.ndarray,
               m: int) -> None:
    """One subsampling map: g = ∂E/∂f(a) -> ∂E/∂a in place; gb[m] += Σ g, gc[m] += Σ g p."""
    sb, sc = ZERO, ZERO
    for k in range(g.shape[0]):
        gk = g[k] * (ONE - t[k] * t[k]) * AS
        g[k] = gk
        sb += gk
        sc += gk * p[k]
    gb[m] += sb
    gc[m] += sc


@_jit
def _backward_top(ws: np.ndarray, codes: np.ndarray, w5: np.ndarray, w6: np.ndarray,
                  grads: np.ndarray, steps: np.ndarray, fused: bool) -> None:
    """From coef = ∂E/∂y through the RBF layer, F6 and C5, down to g4 = ∂E/∂f(a4) (S4)."""
    coef, x6, g6 = _part(ws, _WSO[COEF])[0], _part(ws, _WSO[X6])[0], _part(ws, _WSO[G6])[0]
    total = coef.sum()
    for j in range(84):  # ∂E/∂x_j = 2 Σ_i c_i (x_j - w_ij)
        acc = ZERO
        for i in range(10):
            acc += coef[i] * codes[i, j]
        g6[j] = (x6[j] * total - acc) * TWO
    g5 = _part(ws, _WSO[G5])[0]
    _dense_back(g6, _part(ws, _WSO[T6])[0], _part(ws, _WSO[X5])[0], w6,
                _part(grads, GO[10]), _part(grads, GO[11])[0], g5, _part(steps, GO[10]), fused)
    g4 = _part(ws, _WSO[G4]).reshape(400)
    _dense_back(g5, _part(ws, _WSO[T5])[0], _part(ws, _WSO[X4]).reshape(400), w5,
                _part(grads, GO[8]), _part(grads, GO[9])[0], g4, _part(steps, GO[8]), fused)


@_jit
def _c3_input_grad(g3: np.ndarray, w3: np.ndarray, g3p: np.ndarray, w3f: np.ndarray,
                   gxw: np.ndarray, gx2: np.ndarray) -> None:
    """gx2 = ∂E/∂x2 as a forward correlation: each C3 gradient map g3 (wide, junk zeroed)
    zero-bordered by 4 into g3p (18x18), and each kernel flipped, w3f; the result, 18 wide in
    gxw, is compacted into gx2 (14x14). The border stays 0 from the allocation on."""
    for o in range(16):
        for r in range(10):
            g3p[o, (r + 4) * 18 + 4:(r + 4) * 18 + 14] = g3[o, r * 14:r * 14 + 10]
    for k in range(60):
        for t in range(25):
            w3f[k, t] = w3[k, 24 - t]
    gxw[:, :] = ZERO
    for o in range(16):
        for k in range(_C3_START[o], _C3_START[o + 1]):
            _conv_wide(g3p[o], w3f[k], 18, gxw[_C3_IN[k]])
    for i in range(6):
        for r in range(14):
            gx2[i, r * 14:r * 14 + 14] = gxw[i, r * 18:r * 18 + 14]


@_jit
def _backward_convs(ws: np.ndarray, x: np.ndarray, c2: np.ndarray, w3: np.ndarray,
                    c4: np.ndarray, grads: np.ndarray) -> None:
    """From g4 = ∂E/∂f(a4) through S4, C3, S2 and C1 into their parameter gradients."""
    g4, g3, gx2, g1 = (_part(ws, _WSO[G4]), _part(ws, _WSO[G3]), _part(ws, _WSO[GX2]),
                       _part(ws, _WSO[G1]))
    t4, p3, t3, x2 = _part(ws, _WSO[T4]), _part(ws, _WSO[P3]), _part(ws, _WSO[T3]), _part(
        ws, _WSO[X2])
    gw3, gb3, gc4, gb4 = (_part(grads, GO[4]), _part(grads, GO[5])[0],
                          _part(grads, GO[6])[0], _part(grads, GO[7])[0])
    for o in range(16):
        _pool_back(g4[o], t4[o], p3[o], gc4, gb4, o)
        _spread_back(g4[o], c4[o], 5, 14, t3[o], g3[o])
        gb3[o] += g3[o].sum()
        for k in range(_C3_START[o], _C3_START[o + 1]):
            _conv_wide_back(g3[o], x2[_C3_IN[k]], 14, gw3[k])
    _c3_input_grad(g3, w3, _part(ws, _WSO[G3P]), _part(ws, _WSO[W3F]), _part(ws, _WSO[GXW]),
                   gx2)
    t2, p1, t1 = _part(ws, _WSO[T2]), _part(ws, _WSO[P1]), _part(ws, _WSO[T1])
    gw1, gb1, gc2, gb2 = (_part(grads, GO[0]), _part(grads, GO[1])[0],
                          _part(grads, GO[2])[0], _part(grads, GO[3])[0])
    for m in range(6):
        _pool_back(gx2[m], t2[m], p1[m], gc2, gb2, m)
        _spread_back(gx2[m], c2[m], 14, 32, t1[m], g1[m])
        gb1[m] += g1[m].sum()
        _conv_wide_back(g1[m], x, 32, gw1[m])


@_jit
def _update(p: np.ndarray, grads: np.ndarray, steps: np.ndarray, where: tuple[int, int, int]
            ) -> None:
    """p += ε g over one parameter (ε = -lr / (mu + h), negative), p any contiguous shape."""
    flat = p.reshape(p.size)
    # Sliced first: indices that are provably in range let the loop vectorize.
    g, eps = grads[where[0]:where[0] + flat.size], steps[where[0]:where[0] + flat.size]
    for k in range(flat.shape[0]):
        flat[k] += g[k] * eps[k]


@_jit
def step(x: np.ndarray, y: np.ndarray, mle: bool, rbf_j: float, apply: bool, ws: np.ndarray,
          grads: np.ndarray, steps: np.ndarray, scores: np.ndarray, codes: np.ndarray,
          w1: np.ndarray, b1: np.ndarray, c2: np.ndarray, b2: np.ndarray, w3: np.ndarray,
          b3: np.ndarray, c4: np.ndarray, b4: np.ndarray, w5: np.ndarray, b5: np.ndarray,
          w6: np.ndarray, b6: np.ndarray) -> float:
    """One SDLM step on the batch x (n, 1024) with labels y: the mean loss; scores (n, 10),
    the gradients (flat, in NAMES order) in ``grads``; the update only if ``apply``."""
    n = x.shape[0]
    fused = apply and n == 1  # F6 and C5 updated in the backward pass (_dense_back)
    if fused:  # their weight gradients are not written
        grads[:GO[8][0]] = ZERO
        _part(grads, GO[9])[:] = ZERO
        _part(grads, GO[11])[:] = ZERO
    else:
        grads[:] = ZERO
    loss = 0.0
    for k in range(n):
        _forward(x[k], w1, b1, c2, b2, w3, b3, c4, b4, ws)
        _dense(w5, b5, _part(ws, _WSO[X4]).reshape(400), _part(ws, _WSO[X5])[0],
               _part(ws, _WSO[T5])[0])
        _dense(w6, b6, _part(ws, _WSO[X5])[0], _part(ws, _WSO[X6])[0], _part(ws, _WSO[T6])[0])
        loss += _rbf_loss(_part(ws, _WSO[X6])[0], codes, y[k], mle, rbf_j, 1.0 / n, scores[k],
                          _part(ws, _WSO[COEF])[0])
        _backward_top(ws, codes, w5, w6, grads, steps, fused)
        _backward_convs(ws, x[k], c2, w3, c4, grads)
    if apply:
        _update_all(grads, steps, w1, b1, c2, b2, w3, b3, c4, b4, w5, b5, w6, b6, not fused)
    return loss / n


@_jit
def sequence(x: np.ndarray, y: np.ndarray, mle: bool, rbf_j: float, ws: np.ndarray,
              grads: np.ndarray, steps: np.ndarray, scores: np.ndarray, losses: np.ndarray,
              codes: np.ndarray, w1: np.ndarray, b1: np.ndarray, c2: np.ndarray, b2: np.ndarray,
              w3: np.ndarray, b3: np.ndarray, c4: np.ndarray, b4: np.ndarray, w5: np.ndarray,
              b5: np.ndarray, w6: np.ndarray, b6: np.ndarray) -> None:
    """len(x) SDLM steps of one pattern each, in order, each at the weights the one before
    left: losses[k] and scores[k] of pattern k, as len(x) calls of step with n = 1."""
    for k in range(x.shape[0]):
        losses[k] = step(x[k:k + 1], y[k:k + 1], mle, rbf_j, True, ws, grads, steps,
                          scores[k:k + 1], codes, w1, b1, c2, b2, w3, b3, c4, b4, w5, b5, w6, b6)


@_jit
def _update_all(grads: np.ndarray, steps: np.ndarray, w1: np.ndarray, b1: np.ndarray,
                c2: np.ndarray, b2: np.ndarray, w3: np.ndarray, b3: np.ndarray, c4: np.ndarray,
                b4: np.ndarray, w5: np.ndarray, b5: np.ndarray, w6: np.ndarray, b6: np.ndarray,
                dense_weights: bool) -> None:
    """Every parameter += ε g, after all the gradients were taken at the old weights (as the
    reference does)."""
    _update(w1, grads, steps, GO[0])
    _update(b1, grads, steps, GO[1])
    _update(c2, grads, steps, GO[2])
    _update(b2, grads, steps, GO[3])
    _update(w3, grads, steps, GO[4])
    _update(b3, grads, steps, GO[5])
    _update(c4, grads, steps, GO[6])
    _update(b4, grads, steps, GO[7])
    _update(b5, grads, steps, GO[9])
    _update(b6, grads, steps, GO[11])
    if dense_weights:  # else _dense_back updated them already
        _update(w5, grads, steps, GO[8])
        _update(w6, grads, steps, GO[10])
