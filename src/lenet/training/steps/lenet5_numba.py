"""The ``lenet5`` training step (ReLU, max-pool, cross-entropy) compiled with numba, any batch.

At batch 64 a torch step spends about a third of its time outside arithmetic: autograd's
graph, dispatch, and zeroing and re-reading maps that fall out of the cache (BENCHMARKS.md,
"Where a batch-64 step goes"). This module computes the same forward pass and the same
gradients as float32 loops and leaves the update to the run's own torch optimizer: it writes
``p.grad`` of every parameter and calls ``optimizer.step()``, so SGD, Adam, weight decay, the
schedules, checkpoints and resuming are the ones every other step uses.

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

Threads: a batch is cut into one part per thread it is given (``threads``, else torch's count;
the trainer gives the run's threads and leaves torch one), parts of 16 digits or more; each
part runs on its own thread (the kernels release the GIL) into its own gradient buffers,
and the parts' gradients are added in a fixed order: one machine and one thread count give the
same bits every run.

Float semantics as in :mod:`lenet.training.steps.pattern_numba`: float32, sums may be reassociated
and
multiply-adds fused (what oneDNN does too), NaN and inf kept, so a diverging run shows a
non-finite loss. Tests hold the gradients to autograd's at 1e-5.

Needs numba (``lenet[fast]``), imported here at module level: the trainer imports this module
lazily and keeps torch's step when the import fails. The first step of a process compiles the
kernels, once per machine, or loads them from numba's on-disk cache (BENCHMARKS.md has both
times).
"""

from __future__ import annotations

import itertools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
import torch
from torch import nn

from lenet.models.lenet5 import LeNet5

# The order of the parameters in the kernel's argument list, with the shapes it works on.
SHAPES = (("c1.weight", (6, 25)), ("c1.bias", (6,)), ("c3.weight", (16, 6, 25)),
          ("c3.bias", (16,)), ("c5.weight", (120, 400)), ("c5.bias", (120,)),
          ("f6.weight", (84, 120)), ("f6.bias", (84,)), ("output.weight", (-1, 84)),
          ("output.bias", (-1,)))
MIN_PART = 16  # digits per thread: below this a part's loops are too short to pay for a thread

_F = np.float32
ZERO = _F(0.0)
# numba's cache (next to this file, else the user's cache directory) keeps the machine code for
# later processes, which load it instead of compiling.
_JIT = {"nogil": True, "cache": True, "fastmath": {"reassoc", "contract"}, "error_model": "numpy"}


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
def _transpose(x: np.ndarray, xt: np.ndarray) -> None:
    """xt[n, k] = x[k, n] for x (K, nb)."""
    for k in range(x.shape[0]):
        xk = x[k]
        for n in range(x.shape[1]):
            xt[n, k] = xk[n]


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
def _interior_sum(g: np.ndarray, row: int, at: int, rows: int, n: int) -> float:
    """The sum of ``rows`` runs of n floats, ``row`` apart from ``at``: a bias's gradient."""
    s = ZERO
    for r in range(rows):
        gr = g[at + r * row:at + r * row + n]
        for q in range(n):
            s += gr[q]
    return s


@numba.njit(**_JIT)
def _part_step(x: np.ndarray, y: np.ndarray, smoothing: float, scale: float,
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


def _workspace(nb: int, classes: int) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """A part's zeroed float workspace (``_part_step``'s ws, in its order) and its two maps of
    max-pool positions. The borders of xp and g3p are never written, so they stay zero."""
    shapes = ((32 * 32 * nb,), (6, 196 * nb), (16, 25 * nb), (120, nb), (84, nb),
              (classes, nb), (4, 28 * nb), (4, 10 * nb), (classes, nb), (84, nb), (120, nb),
              (400, nb), (16, 324 * nb), (6, 16, 25), (6, 196 * nb), (6, 784 * nb), (nb, 400))
    ws = tuple(np.zeros(shape, _F) for shape in shapes)
    return ws, np.zeros((6, 196 * nb), np.int8), np.zeros((16, 25 * nb), np.int8)


def supports(model: nn.Module, optimizer: torch.optim.Optimizer, loss: str) -> bool:
    """Whether :class:`NumbaLeNet5Step` computes this setup's step: a ``lenet5`` as registered
    (ReLU, max-pool, C1 padded by 2 on 28x28 digits, any number of classes), float32 on the
    CPU, the cross-entropy loss, every parameter held by the optimizer."""
    if type(model) is not LeNet5 or loss != "cross-entropy":
        return False
    c1, c3 = model.c1, model.c3
    shape_ok = (isinstance(model.act, nn.ReLU) and isinstance(model.s4, nn.MaxPool2d)
                and (c1.in_channels, c1.out_channels, c1.padding) == (1, 6, (2, 2))
                and (c3.in_channels, c3.out_channels, c3.padding) == (6, 16, (0, 0))
                and c1.kernel_size == c3.kernel_size == (5, 5)
                and c1.stride == c3.stride == (1, 1)
                and (model.c5.in_features, model.f6.in_features) == (400, 120)
                and model.output.in_features == 84)
    params = list(model.parameters())
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    return (shape_ok and [n for n, _ in model.named_parameters()] == [n for n, _ in SHAPES]
            and all(p.device.type == "cpu" and p.dtype == torch.float32 and id(p) in held
                    for p in params))


class NumbaLeNet5Step:
    """``step(x, y) -> (loss, scores)`` for a ``lenet5``: the batch's mean loss (label smoothing
    as ``F.cross_entropy``) and its logits, with every parameter's ``.grad`` set to the
    gradient autograd would give and ``optimizer.step()`` applied."""

    compiled = "numba"  # what the trainer names in its first line

    def __init__(self, model: LeNet5, optimizer: torch.optim.Optimizer,
                 label_smoothing: float = 0.0, threads: int | None = None) -> None:
        if not supports(model, optimizer, "cross-entropy"):
            raise ValueError("NumbaLeNet5Step needs a lenet5 (ReLU, max-pool, C1 padded by 2) "
                             "with float32 parameters on the CPU, all held by the optimizer")
        self.optimizer, self.smoothing = optimizer, float(label_smoothing)
        self.threads = threads
        self.names, self.params = zip(*model.named_parameters(), strict=True)
        self.classes = model.output.out_features
        self.size = sum(p.numel() for p in self.params)
        self._ws: dict[tuple[int, int], tuple[Any, ...]] = {}
        self._grads: list[tuple[np.ndarray, tuple[np.ndarray, ...]]] = [self._new_grads()]
        # Part 0's buffer, which the parts' gradients are summed into, in each parameter's
        # shape: the parameters' .grad (built once; ten views a step cost more than the sum).
        self._views = [torch.from_numpy(g).view(p.shape)
                       for p, g in zip(self.params, self._grads[0][1], strict=True)]
        self._pool: ThreadPoolExecutor | None = None
        self._workers = 0
        self.compile_seconds: float | None = None  # the first call: compiling or cache load

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, scores, _ = self.gradients(x, y)
        self.optimizer.step()
        return loss, scores

    def gradients(self, x: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The batch's mean loss, its logits and {name: gradient}, which are the parameters'
        ``.grad`` tensors, set here (the next call writes over them); no update."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"NumbaLeNet5Step takes digits of shape (N, 1, 28, 28), got "
                             f"{tuple(x.shape)}")
        xs = np.ascontiguousarray(x.detach().reshape(len(x), 784).numpy(), dtype=_F)
        ys = np.ascontiguousarray(y.detach().numpy(), dtype=np.int64)
        bounds = self._bounds(len(xs))
        params = tuple(p.detach().contiguous().numpy().reshape(shape)
                       for p, (_, shape) in zip(self.params, SHAPES, strict=True))
        jobs = [(k, xs[a:b], ys[a:b], params, 1.0 / len(xs))
                for k, (a, b) in enumerate(itertools.pairwise(bounds))]
        while len(self._grads) < len(jobs):
            self._grads.append(self._new_grads())
        for k, (a, b) in enumerate(itertools.pairwise(bounds)):
            if (k, b - a) not in self._ws:
                self._ws[k, b - a] = _workspace(b - a, self.classes)
        started = time.perf_counter()
        if len(jobs) == 1 or self.compile_seconds is None:
            # The first call loads the kernels (or compiles them) once, on this thread: two
            # threads asking numba at once took twice as long.
            totals = [self._part(*job) for job in jobs]
        else:
            pool = self._executor(len(jobs) - 1)
            later = [pool.submit(self._part, *job) for job in jobs[1:]]
            totals = [self._part(*jobs[0])] + [f.result() for f in later]
        if self.compile_seconds is None:
            self.compile_seconds = time.perf_counter() - started
        self._set_grads(len(jobs))
        scores = np.concatenate([self._ws[k, len(job[1])][0][5].T for k, job in enumerate(jobs)])
        grads = dict(zip(self.names, (p.grad for p in self.params), strict=True))
        loss = torch.tensor(sum(totals) / len(xs), dtype=torch.float32)
        return loss, torch.from_numpy(scores), grads

    def _bounds(self, n: int) -> list[int]:
        """Where the batch's parts start and end: one per torch thread, MIN_PART digits or
        more each, sizes differing by at most one."""
        parts = max(1, min(self.threads or torch.get_num_threads(), n // MIN_PART))
        return [k * n // parts for k in range(parts + 1)]

    def _part(self, k: int, x: np.ndarray, y: np.ndarray, params: tuple, scale: float) -> float:
        """Part k on the calling thread, into its own gradient buffer and workspace."""
        flat, grads = self._grads[k]
        flat.fill(ZERO)
        ws, m1, m3 = self._ws[k, len(x)]
        return _part_step(x, y, self.smoothing, scale, *params, *grads, *ws, m1, m3)

    def _new_grads(self) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        flat = np.zeros(self.size, _F)
        views, at = [], 0
        for p, (_, shape) in zip(self.params, SHAPES, strict=True):
            views.append(flat[at:at + p.numel()].reshape(shape))
            at += p.numel()
        return flat, tuple(views)

    def _set_grads(self, parts: int) -> None:
        """Add the parts' gradients into part 0's buffer (in a fixed order) and make them each
        parameter's ``.grad``: views of that buffer, no copy, except where the parameter is
        laid out otherwise (channels-last kernels), whose ``.grad`` gets a copy in its layout."""
        total = self._grads[0][0]
        for k in range(1, parts):
            total += self._grads[k][0]
        for p, g in zip(self.params, self._views, strict=True):
            if p.stride() == g.stride():
                if p.grad is None or p.grad.data_ptr() != g.data_ptr():
                    p.grad = g
                continue
            if p.grad is None or p.grad.stride() != p.stride():
                p.grad = torch.empty_like(p)
            p.grad.copy_(g)

    def _executor(self, workers: int) -> ThreadPoolExecutor:
        if self._pool is None or self._workers != workers:
            self.close()
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="lenet-step")
            self._workers = workers
        return self._pool

    def close(self) -> None:
        """Stop the part threads (idle between steps; they also end with the process)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
