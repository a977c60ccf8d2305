"""The numba kernels of ``lenet5``'s compiled training step: one part of a batch, forward pass,
cross-entropy and gradients, as float32 loops (:mod:`lenet.training.steps.lenet5_numba` cuts
the batch, owns the buffers and threads, and calls :func:`part_step` once per part).

Layout: the batch is the innermost axis (a map is (rows, columns, batch)), so every loop of a
convolution runs over contiguous (column, batch) rows and every tap is a scalar times a vector.
Loads index a slice by the loop variable alone: numba adds a negative-index check to any other
index expression, which stops LLVM vectorizing. Max-pooling and its ReLU are fused into the
convolution (two conv rows at a time, so the 28x28 maps never leave the cache), and keep which
of the four positions won for the backward pass. C3's input gradient is the forward loop run
on its gradient maps zero-bordered to 18x18 with the kernels flipped. The dense layers go the
other way: with the batch inside, a pass over one weight was a vector or two long and its loop
cost more than its arithmetic, so each digit's inputs are transposed to a row and the layer is
dot products over them, four weight rows a pass (a part of 32 digits: about half the time).

Float semantics as in :mod:`lenet.training.steps.pattern_kernels`: float32, sums may be
reassociated and multiply-adds fused (what oneDNN does too), NaN and inf kept, so a diverging
run shows a non-finite loss.

numba's on-disk cache keys a kernel on its own bytecode and this file, not on the globals it
reads nor on the kernels of other files it calls: so every kernel, constant and compile option
the kernels use lives here, and a change to any of them recompiles.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# The order of the parameters in the kernel's argument list, with the shapes it works on.
SHAPES = (("c1.weight", (6, 25)), ("c1.bias", (6,)), ("c3.weight", (16, 6, 25)),
          ("c3.bias", (16,)), ("c5.weight", (120, 400)), ("c5.bias", (120,)),
          ("f6.weight", (84, 120)), ("f6.bias", (84,)), ("output.weight", (-1, 84)),
          ("output.bias", (-1,)))

_F = np.float32
ZERO = _F(0.0)
# numba's cache (next to this file, else the user's cache directory) keeps the machine code for
# later processes, which load it instead of compiling. The options are spelled out (not a dict
# splatted into njit) so that the type checker matches them against numba's own stubs and the
# kernels keep their signatures: a call with a wrong argument count fails ``mypy``.
_jit = numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"}, error_model="numpy")


@_jit
def _conv5(x: np.ndarray, row: int, nb: int, wa: np.ndarray, wb: np.ndarray, n: int,
           oa: np.ndarray, ob: np.ndarray) -> None:
    """oa[q] += Σ_uv wa[u*5 + v] x[u*row + v*nb + q] for q < n, and ob the same with wb: two
    5x5 kernels over one input whose rows are ``row`` floats (columns x batch). Two outputs
    per pass share every load of x, and a kernel row's five taps go in one pass."""
    for u in range(5):
        b = u * row
        x0, x1, x2 = x[b:b + n], x[b + nb:b + nb + n], x[b + 2 * nb:b + 2 * nb + n]
        x3, x4 = x[b + 3 * nb:b + 3 * nb + n], x[b + 4 * nb:b + 4 * nb + n]
        a0, a1, a2, a3, a4 = wa[u * 5], wa[u * 5 + 1], wa[u * 5 + 2], wa[u * 5 + 3], wa[u * 5 + 4]
        c0, c1, c2, c3, c4 = wb[u * 5], wb[u * 5 + 1], wb[u * 5 + 2], wb[u * 5 + 3], wb[u * 5 + 4]
        for q in range(n):
            v0, v1, v2, v3, v4 = x0[q], x1[q], x2[q], x3[q], x4[q]
            oa[q] = oa[q] + (a0 * v0 + a1 * v1) + (a2 * v2 + a3 * v3) + a4 * v4
            ob[q] = ob[q] + (c0 * v0 + c1 * v1) + (c2 * v2 + c3 * v3) + c4 * v4


@_jit
def _conv5_grad(ga: np.ndarray, gb: np.ndarray, x: np.ndarray, row: int, nb: int, n: int,
                gwa: np.ndarray, gwb: np.ndarray) -> None:
    """gwa[u*5 + v] += Σ_q ga[q] x[u*row + v*nb + q] for q < n, and gwb the same from gb: the
    kernel gradients of two output maps of one input, from one output row; a kernel row's
    five taps share a pass (ten vector accumulators), the two maps every load of x."""
    for u in range(5):
        b = u * row
        x0, x1, x2 = x[b:b + n], x[b + nb:b + nb + n], x[b + 2 * nb:b + 2 * nb + n]
        x3, x4 = x[b + 3 * nb:b + 3 * nb + n], x[b + 4 * nb:b + 4 * nb + n]
        a0 = a1 = a2 = a3 = a4 = c0 = c1 = c2 = c3 = c4 = ZERO
        for q in range(n):
            v0, v1, v2, v3, v4, g, h = x0[q], x1[q], x2[q], x3[q], x4[q], ga[q], gb[q]
            a0 += g * v0
            a1 += g * v1
            a2 += g * v2
            a3 += g * v3
            a4 += g * v4
            c0 += h * v0
            c1 += h * v1
            c2 += h * v2
            c3 += h * v3
            c4 += h * v4
        gwa[u * 5] += a0
        gwa[u * 5 + 1] += a1
        gwa[u * 5 + 2] += a2
        gwa[u * 5 + 3] += a3
        gwa[u * 5 + 4] += a4
        gwb[u * 5] += c0
        gwb[u * 5 + 1] += c1
        gwb[u * 5 + 2] += c2
        gwb[u * 5 + 3] += c3
        gwb[u * 5 + 4] += c4


@_jit
def _pool_relu(r0: np.ndarray, r1: np.ndarray, nb: int, side: int, p: np.ndarray,
               m: np.ndarray) -> None:
    """p[j*nb + n] = ReLU(max of the 2x2 block at column 2j of conv rows r0, r1) and m = which
    of the four won (0..3), for j < side. The first maximum wins and a NaN always wins, as in
    torch's max-pool; the ReLU keeps NaN."""
    for j in range(side):
        a = 2 * j * nb
        v0, v1 = r0[a:a + nb], r0[a + nb:a + 2 * nb]
        v2, v3 = r1[a:a + nb], r1[a + nb:a + 2 * nb]
        pj, mj = p[j * nb:(j + 1) * nb], m[j * nb:(j + 1) * nb]
        for n in range(nb):
            best, k = v0[n], 0
            if v1[n] > best or v1[n] != v1[n]:
                best, k = v1[n], 1
            if v2[n] > best or v2[n] != v2[n]:
                best, k = v2[n], 2
            if v3[n] > best or v3[n] != v3[n]:
                best, k = v3[n], 3
            pj[n] = ZERO if best < ZERO else best
            mj[n] = k


@_jit
def _unpool(g: np.ndarray, p: np.ndarray, m: np.ndarray, nb: int, side: int, out: np.ndarray,
            row: int, at: int) -> None:
    """The ReLU + max-pool backward of one map: g (∂/∂ the pooled map) where p > 0 goes to the
    block position m in out (``row`` floats a row, block (0, 0) at ``at``); the three other
    positions get 0, so out needs no zeroing."""
    for i in range(side):
        for j in range(side):
            k0 = (i * side + j) * nb
            gi, pi, mi = g[k0:k0 + nb], p[k0:k0 + nb], m[k0:k0 + nb]
            o = at + 2 * i * row + 2 * j * nb
            o0, o1 = out[o:o + nb], out[o + nb:o + 2 * nb]
            o2, o3 = out[o + row:o + row + nb], out[o + row + nb:o + row + 2 * nb]
            for n in range(nb):  # products with 0/1 rather than selects: this form vectorizes
                v = gi[n] * _F(pi[n] > ZERO)
                k = mi[n]
                o0[n] = v * _F(k == 0)
                o1[n] = v * _F(k == 1)
                o2[n] = v * _F(k == 2)
                o3[n] = v * _F(k == 3)


@_jit
def _transpose(x: np.ndarray, xt: np.ndarray) -> None:
    """xt[n, k] = x[k, n] for x (K, nb)."""
    for k in range(x.shape[0]):
        xk = x[k]
        for n in range(x.shape[1]):
            xt[n, k] = xk[n]


@_jit
def _dense(w: np.ndarray, b: np.ndarray, x: np.ndarray, xt: np.ndarray, out: np.ndarray,
           relu: bool) -> None:
    """out = w x + b, then ReLU if asked; x (K, nb), out (O, nb). Each output is a dot product
    over a digit's K inputs (xt = xᵀ, scratch), four outputs per pass: with the batch inside,
    a pass was a few vectors long and its loop overhead cost more than its arithmetic."""
    nb, k_in, outs = x.shape[1], w.shape[1], w.shape[0]
    _transpose(x, xt)
    for n in range(nb):
        xn = xt[n, :k_in]
        o = 0
        while o + 4 <= outs:
            w0, w1, w2, w3 = w[o], w[o + 1], w[o + 2], w[o + 3]
            s0 = s1 = s2 = s3 = ZERO
            for k in range(k_in):
                s0 += w0[k] * xn[k]
                s1 += w1[k] * xn[k]
                s2 += w2[k] * xn[k]
                s3 += w3[k] * xn[k]
            out[o, n], out[o + 1, n] = s0 + b[o], s1 + b[o + 1]
            out[o + 2, n], out[o + 3, n] = s2 + b[o + 2], s3 + b[o + 3]
            o += 4
        for oo in range(o, outs):
            wo = w[oo]
            s = ZERO
            for k in range(k_in):
                s += wo[k] * xn[k]
            out[oo, n] = s + b[oo]
    if relu:
        for o in range(outs):
            acc = out[o]
            for n in range(nb):
                if acc[n] < ZERO:
                    acc[n] = ZERO


@_jit
def _dense_back(g: np.ndarray, x: np.ndarray, xt: np.ndarray, w: np.ndarray, gw: np.ndarray,
                gb: np.ndarray, gx: np.ndarray) -> None:
    """g (O, nb) = ∂/∂(w x + b): gb += Σ_n g, gw += g xᵀ (through xt = xᵀ, so each row is an
    axpy over K, four digits per pass), and gx = (wᵀ g) masked by x > 0 (the ReLU that made x)
    when gx has rows."""
    nb, k_in = g.shape[1], w.shape[1]
    _transpose(x, xt)
    for o in range(w.shape[0]):
        go, gwo = g[o], gw[o]
        s = ZERO
        for n in range(nb):
            s += go[n]
        gb[o] += s
        n = 0
        while n + 4 <= nb:
            g0, g1, g2, g3 = go[n], go[n + 1], go[n + 2], go[n + 3]
            x0, x1, x2, x3 = xt[n, :k_in], xt[n + 1, :k_in], xt[n + 2, :k_in], xt[n + 3, :k_in]
            for k in range(k_in):
                gwo[k] += (g0 * x0[k] + g1 * x1[k]) + (g2 * x2[k] + g3 * x3[k])
            n += 4
        for m in range(n, nb):
            gn, xn = go[m], xt[m, :k_in]
            for k in range(k_in):
                gwo[k] += gn * xn[k]
    if gx.shape[0] > 0:
        _dense_input_grad(g, w, x, xt, gx)


@_jit
def _dense_input_grad(g: np.ndarray, w: np.ndarray, x: np.ndarray, gt: np.ndarray,
                      gx: np.ndarray) -> None:
    """gx = (wᵀ g) where x > 0, else 0: each digit's row of gt (scratch, nb x K) is a sum of
    w's rows, four per pass, then goes back to gx's (K, nb) layout."""
    nb, k_in, outs = g.shape[1], w.shape[1], w.shape[0]
    for n in range(nb):
        acc = gt[n, :k_in]
        for k in range(k_in):
            acc[k] = ZERO
        o = 0
        while o + 4 <= outs:
            g0, g1, g2, g3 = g[o, n], g[o + 1, n], g[o + 2, n], g[o + 3, n]
            w0, w1, w2, w3 = w[o], w[o + 1], w[o + 2], w[o + 3]
            for k in range(k_in):
                acc[k] += (g0 * w0[k] + g1 * w1[k]) + (g2 * w2[k] + g3 * w3[k])
            o += 4
        for oo in range(o, outs):
            go, wo = g[oo, n], w[oo]
            for k in range(k_in):
                acc[k] += go * wo[k]
    for k in range(k_in):
        gxk, xk = gx[k], x[k]
        for n in range(nb):
            gxk[n] = gt[n, k] * _F(xk[n] > ZERO)


@_jit
def _loss(z: np.ndarray, y: np.ndarray, smoothing: float, scale: float, gz: np.ndarray) -> float:
    """Cross-entropy with label smoothing summed over the part's digits (float64), and
    gz = scale ∂loss/∂z; z and gz are (classes, nb)."""
    classes, nb = z.shape
    total = 0.0
    off = smoothing / classes
    for n in range(nb):
        label = y[n]
        if label < 0 or label >= classes:  # never index past z; torch refuses it too
            raise ValueError("NumbaLeNet5Step: a label outside the model's classes")
        top = z[0, n]
        for i in range(1, classes):
            top = max(top, z[i, n])
        s, zsum = 0.0, 0.0
        for i in range(classes):
            s += math.exp(z[i, n] - top)
            zsum += z[i, n]
        lse = top + math.log(s)
        total += lse - (1.0 - smoothing) * z[label, n] - off * zsum
        for i in range(classes):
            target = off + (1.0 - smoothing if i == label else 0.0)
            gz[i, n] = _F((math.exp(z[i, n] - lse) - target) * scale)
    return total


@_jit
def _forward(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w3: np.ndarray, b3: np.ndarray,
             w5: np.ndarray, b5: np.ndarray, w6: np.ndarray, b6: np.ndarray, w7: np.ndarray,
             b7: np.ndarray, xp: np.ndarray, p1: np.ndarray, m1: np.ndarray, p3: np.ndarray,
             m3: np.ndarray, h5: np.ndarray, h6: np.ndarray, z: np.ndarray, rb1: np.ndarray,
             rb3: np.ndarray, xt: np.ndarray) -> None:
    """Digits x (nb, 784) -> logits z (classes, nb), keeping what the backward pass reads."""
    nb = x.shape[0]
    for n in range(nb):  # C1's padding: xp is 32x32 x batch with a zero border of 2
        for r in range(28):
            for s in range(28):
                xp[((r + 2) * 32 + s + 2) * nb + n] = x[n, r * 28 + s]
    _conv_pool(xp, 32, 28, w1.reshape((6, 1, 25)), b1, rb1, p1, m1, nb)
    _conv_pool(p1, 14, 10, w3, b3, rb3, p3, m3, nb)
    f = p3.reshape((400, nb))  # torch's flatten order: map, row, column
    _dense(w5, b5, f, xt, h5, True)
    _dense(w6, b6, h5, xt, h6, True)
    _dense(w7, b7, h6, xt, z, False)


@_jit
def _conv_pool(x: np.ndarray, width: int, side: int, w: np.ndarray, b: np.ndarray,
               rb: np.ndarray, p: np.ndarray, m: np.ndarray, nb: int) -> None:
    """A 5x5 convolution (w: outputs x inputs x 25) -> 2x2 max-pool -> ReLU into p (and the
    pool's choices into m), two output maps and two conv rows (rb) per pooled row. x holds
    the inputs' maps (width x width x batch) one after another, flat or one per row."""
    plane = width * width * nb
    xf = x.reshape(-1)
    half = side // 2
    for o in range(0, w.shape[0], 2):
        for i in range(half):
            rb[0:2, :] = b[o]
            rb[2:4, :] = b[o + 1]
            for c in range(w.shape[1]):
                for r in range(2):
                    at = c * plane + (2 * i + r) * width * nb
                    _conv5(xf[at:], width * nb, nb, w[o, c], w[o + 1, c], side * nb, rb[r],
                           rb[2 + r])
            for d in range(2):
                _pool_relu(rb[2 * d], rb[2 * d + 1], nb, half, p[o + d, i * half * nb:],
                           m[o + d, i * half * nb:])


@_jit
def _backward_convs(w3: np.ndarray, g1w: np.ndarray, g1b: np.ndarray, g3w: np.ndarray,
                    g3b: np.ndarray, xp: np.ndarray, p1: np.ndarray, m1: np.ndarray,
                    p3: np.ndarray, m3: np.ndarray, gf: np.ndarray, g3p: np.ndarray,
                    w3f: np.ndarray, gp1: np.ndarray, g1: np.ndarray) -> None:
    """From gf = ∂/∂ the 400 features down to C3's and C1's weight and bias gradients."""
    nb = gf.shape[1]
    row3, row1 = 18 * nb, 28 * nb
    gp3 = gf.reshape((16, 25 * nb))
    for o in range(16):  # into C3's gradient maps, zero-bordered by 4 (g3p)
        _unpool(gp3[o], p3[o], m3[o], nb, 5, g3p[o], row3, 4 * row3 + 4 * nb)
        g3b[o] += _interior_sum(g3p[o], row3, 4 * row3 + 4 * nb, 10, 10 * nb)
    _kernel_grads(g3p, row3, 4 * row3 + 4 * nb, 10, p1, 14, g3w, nb)
    for c in range(6):  # S2's gradient: a full correlation with C3's kernels flipped
        for o in range(16):
            for t in range(25):
                w3f[c, o, t] = w3[o, c, 24 - t]
    gp1[:, :] = ZERO
    for c in range(0, 6, 2):
        for r in range(14):
            for o in range(16):
                _conv5(g3p[o, r * row3:], row3, nb, w3f[c, o], w3f[c + 1, o], 14 * nb,
                       gp1[c, r * 14 * nb:], gp1[c + 1, r * 14 * nb:])
    for c in range(6):  # into C1's gradient maps
        _unpool(gp1[c], p1[c], m1[c], nb, 14, g1[c], row1, 0)
        g1b[c] += _interior_sum(g1[c], row1, 0, 28, row1)
    _kernel_grads(g1, row1, 0, 28, xp.reshape((1, -1)), 32, g1w.reshape((6, 1, 25)), nb)


@_jit
def _kernel_grads(g: np.ndarray, grow: int, gat: int, side: int, x: np.ndarray, width: int,
                  gw: np.ndarray, nb: int) -> None:
    """gw (outputs x inputs x 25) += the kernel gradients of a 5x5 convolution from its output
    gradient maps g (side x side, rows of ``grow`` floats from ``gat``) and its input maps x
    (width x width x batch), two output maps per pass."""
    for o in range(0, gw.shape[0], 2):
        for r in range(side):
            at = gat + r * grow
            ga, gb = g[o, at:at + side * nb], g[o + 1, at:at + side * nb]
            for c in range(gw.shape[1]):
                _conv5_grad(ga, gb, x[c, r * width * nb:], width * nb, nb, side * nb,
                            gw[o, c], gw[o + 1, c])


@_jit
def _interior_sum(g: np.ndarray, row: int, at: int, rows: int, n: int) -> float:
    """The sum of ``rows`` runs of n floats, ``row`` apart from ``at``: a bias's gradient."""
    s = ZERO
    for r in range(rows):
        gr = g[at + r * row:at + r * row + n]
        for q in range(n):
            s += gr[q]
    return s


@_jit
def part_step(x: np.ndarray, y: np.ndarray, smoothing: float, scale: float,
               w1: np.ndarray, b1: np.ndarray, w3: np.ndarray, b3: np.ndarray, w5: np.ndarray,
               b5: np.ndarray, w6: np.ndarray, b6: np.ndarray, w7: np.ndarray, b7: np.ndarray,
               g1w: np.ndarray, g1b: np.ndarray, g3w: np.ndarray, g3b: np.ndarray,
               g5w: np.ndarray, g5b: np.ndarray, g6w: np.ndarray, g6b: np.ndarray,
               g7w: np.ndarray, g7b: np.ndarray,
               xp: np.ndarray, p1: np.ndarray, p3: np.ndarray, h5: np.ndarray, h6: np.ndarray,
               z: np.ndarray, rb1: np.ndarray, rb3: np.ndarray, gz: np.ndarray,
               gh6: np.ndarray, gh5: np.ndarray, gf: np.ndarray, g3p: np.ndarray,
               w3f: np.ndarray, gp1: np.ndarray, g1: np.ndarray, xt: np.ndarray,
               m1: np.ndarray, m3: np.ndarray) -> float:
    """One part of a batch: forward, loss, and the gradients (times ``scale``) *added* to the
    g* arrays; returns the part's summed loss. Every array is its own argument: numba types a
    plain array in C but a tuple in Python, with the GIL held, and the threads took turns."""
    _forward(x, w1, b1, w3, b3, w5, b5, w6, b6, w7, b7, xp, p1, m1, p3, m3, h5, h6, z, rb1, rb3,
             xt)
    total = _loss(z, y, smoothing, scale, gz)
    _dense_back(gz, h6, xt, w7, g7w, g7b, gh6)
    _dense_back(gh6, h5, xt, w6, g6w, g6b, gh5)
    _dense_back(gh5, p3.reshape((400, x.shape[0])), xt, w5, g5w, g5b, gf)
    _backward_convs(w3, g1w, g1b, g3w, g3b, xp, p1, m1, p3, m3, gf, g3p, w3f, gp1, g1)
    return total


def workspace(nb: int, classes: int) -> tuple[np.ndarray, ...]:
    """A part's zeroed workspace, ``part_step``'s arrays from xp on, in its order: float32
    arrays, then the two int8 maps of max-pool positions. The borders of xp and g3p are never
    written, so they stay zero."""
    shapes = ((32 * 32 * nb,), (6, 196 * nb), (16, 25 * nb), (120, nb), (84, nb),
              (classes, nb), (4, 28 * nb), (4, 10 * nb), (classes, nb), (84, nb), (120, nb),
              (400, nb), (16, 324 * nb), (6, 16, 25), (6, 196 * nb), (6, 784 * nb), (nb, 400))
    return (*(np.zeros(shape, _F) for shape in shapes), np.zeros((6, 196 * nb), np.int8),
            np.zeros((16, 25 * nb), np.int8))
