"""Golden model of one training step (docs/training.md), in numpy, operation by operation.

Forward through the frozen part is `fp16_golden.run_graph_all` of the compiled graph. The
trainable layers, the loss, the backward pass and the SGD update below perform exactly the
roundings docs/training.md lists, in its order, with reductions written out as loops
(vectorised over outputs only), so the generated C must equal this bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.passes.fp16 import ACTIVATION_BOUNDS
from edgekit.reference import fp16_golden as g
from edgekit.train.spec import ConvGeom, TailOp, TrainSpec

F32 = np.float32
# ek_train_logf (codegen/templates/train/train.c.j2): binary32 constants, bit for bit
SQRT2 = F32(float.fromhex("0x1.6a09e6p+0"))
LN2 = F32(float.fromhex("0x1.62e430p-1"))
LOG_POLY = [F32(2.0 / 9.0), F32(2.0 / 7.0), F32(2.0 / 5.0), F32(2.0 / 3.0), F32(2.0)]


def logf_ge1(x: Any) -> np.float32:
    """ln x for finite binary32 x >= 1 (the softmax sum): x = m 2^e with m in (sqrt(1/2),
    sqrt(2)], s = (m - 1) / (m + 1), ln m = s (2 + 2/3 s^2 + ... + 2/9 s^8) by Horner fmas,
    ln x = fma(e, ln 2, s p). Every step is one binary32 rounding."""
    bits = int(np.asarray(x, dtype=F32).view(np.uint32))
    e = (bits >> 23) - 127
    m = np.asarray((bits & 0x7FFFFF) | 0x3F800000, dtype=np.uint32).view(F32)[()]
    if m > SQRT2:
        m = F32(m * F32(0.5))
        e += 1
    f = F32(m - F32(1.0))
    s = F32(f / F32(f + F32(2.0)))
    z = F32(s * s)
    p = LOG_POLY[0]
    for c in LOG_POLY[1:]:
        p = F32(g.fma(p, z, c, F32))
    return F32(g.fma(F32(e), LN2, F32(s * p), F32))


def mul(a: Any, b: Any, dtype: Any) -> np.ndarray:
    """a * b rounded once: fma(a, b, -0) (adding -0 keeps the product's sign of zero)."""
    return g.fma(a, b, np.asarray(-0.0, dtype=dtype), dtype)


def relu_mask(y: np.ndarray, activation: str) -> np.ndarray:
    """Where the clamp passed the gradient: y > lo and y < hi (strictly; NaN passes nothing)."""
    lo, hi = ACTIVATION_BOUNDS[activation]
    mask = np.ones(y.shape, dtype=bool)
    if lo is not None:
        mask &= y > lo
    if hi is not None:
        mask &= y < hi
    return mask


def _tap_pixel(geom: ConvGeom, r: int, ky: int, kx: int) -> int | None:
    """The input pixel under tap (ky, kx) of output row r, or None in the padding."""
    oy, ox = divmod(r, geom.ow)
    iy = oy * geom.sh - geom.pt + ky * geom.dh
    ix = ox * geom.sw - geom.pl + kx * geom.dw
    if 0 <= iy < geom.h and 0 <= ix < geom.w:
        return iy * geom.w + ix
    return None


def im2col(x: np.ndarray, geom: ConvGeom) -> np.ndarray:
    """[oh*ow][kh*kw*c]: row r holds the taps of output pixel r in filter order, +0 in the
    padding (what the inference conv multiplies there, so the forward equals it)."""
    taps = tap_values(x, geom, np.arange(geom.c))
    return taps.reshape(geom.oh * geom.ow, geom.kh * geom.kw * geom.c)


def col2im(dcol: np.ndarray, geom: ConvGeom, dtype: Any) -> np.ndarray:
    """The input gradient of an im2col: every pixel starts at -0 and adds, one rounding each,
    the column entries that read it, rows r in order and taps in filter order within a row."""
    dx = np.full((geom.h * geom.w, geom.c), -0.0, dtype=dtype)
    taps = geom.kh * geom.kw
    d3 = dcol.reshape(geom.oh * geom.ow, taps, geom.c)
    for r in range(geom.oh * geom.ow):
        for t in range(taps):
            p = _tap_pixel(geom, r, *divmod(t, geom.kw))
            if p is not None:
                dx[p] = g.add(dx[p], d3[r, t], dtype)
    return dx.reshape(-1)


def _attrs(t: TailOp) -> dict[str, Any]:
    geom = t.conv
    assert geom is not None
    return {
        "stride": [geom.sh, geom.sw], "dilation": [geom.dh, geom.dw], "pad": [geom.pt, geom.pl],
        "activation": t.activation, "depth_multiplier": t.mult, "filter": [geom.kh, geom.kw],
    }  # fmt: skip


def tap_values(x: np.ndarray, geom: ConvGeom, src: np.ndarray) -> np.ndarray:
    """[rows][taps][len(src)]: input channel src[o] under every tap of every output pixel, +0
    in the padding."""
    img = x.reshape(geom.h * geom.w, geom.c)
    taps = geom.kh * geom.kw
    out = np.zeros((geom.oh * geom.ow, taps, src.size), dtype=x.dtype)
    for r in range(geom.oh * geom.ow):
        for t in range(taps):
            p = _tap_pixel(geom, r, *divmod(t, geom.kw))
            if p is not None:
                out[r, t] = img[p][src]
    return out


def pool_backward(t: TailOp, x: np.ndarray, y: np.ndarray, dy: np.ndarray, dtype: Any):
    """Input gradient of an avg or max pool: every input element starts at -0 and adds, one
    rounding each, what each window sends it, output pixels in order, taps in filter order.
    avg: every in-image tap of pixel r receives dy[r] / count[r] (binary32 divide, rounded to
    storage); max: only the first in-image tap, in filter order, whose value has the bits of
    the window's maximum receives dy[r]."""
    geom = t.conv
    assert geom is not None
    taps = geom.kh * geom.kw
    img = x.reshape(geom.h * geom.w, geom.c)
    d2 = dy.reshape(t.rows, geom.c)
    y2 = y.reshape(t.rows, geom.c)
    dx = np.full((geom.h * geom.w, geom.c), -0.0, dtype=dtype)
    chans = np.arange(geom.c)
    for r in range(t.rows):
        pix = [p for p in (_tap_pixel(geom, r, *divmod(k, geom.kw)) for k in range(taps))
               if p is not None]  # fmt: skip
        if t.pool == "avg":
            with np.errstate(invalid="ignore", over="ignore"):
                share = (d2[r].astype(F32) / F32(len(pix))).astype(F32).astype(dtype)
            for p in pix:
                dx[p] = g.add(dx[p], share, dtype)
            continue
        win = np.full(geom.c, -1)
        for p in pix:
            hit = g.same_bits(img[p], y2[r]) & (win < 0)
            win[hit] = p
        win[win < 0] = pix[0]  # unreachable for finite inputs; keeps the index valid
        dx[win, chans] = g.add(dx[win, chans], d2[r], dtype)
    return dx.reshape(-1)


class GoldenTrainer:
    """The trainable parameters of one training build and the steps that change them."""

    def __init__(self, spec: TrainSpec) -> None:
        self.spec = spec
        self.dtype = spec.dtype
        dt = self.dtype
        self.w = [layer.weights.copy() for layer in spec.layers]  # [units][depth]
        self.b = [layer.bias.copy() for layer in spec.layers]
        self.neg_lr = np.asarray(-spec.optimizer.lr).astype(dt)
        self.mu = np.asarray(spec.optimizer.momentum).astype(dt)
        self.momentum = spec.optimizer.momentum != 0
        self.vw = [np.zeros_like(w) for w in self.w]
        self.vb = [np.zeros_like(b) for b in self.b]

    # --- forward --------------------------------------------------------------------------------

    def features(self, x: np.ndarray) -> np.ndarray:
        """The frozen part: the input of the first trained layer, flattened."""
        values = g.run_graph_all(self.spec.graph, [x])
        return values[self.spec.feature].reshape(-1).astype(self.dtype)

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """[input of tail op 0, output of tail op 0, ..., output of the last], flattened."""
        acts = [self.features(x)]
        d = 0
        for t in self.spec.tail:
            v = acts[-1]
            if t.kind == "dense":
                rows = v.reshape(t.rows, t.depth) if t.conv is None else im2col(v, t.conv)
                y = g.fully_connected(rows, self.w[d], self.b[d], {"activation": t.activation})
                d += 1
            elif t.kind == "depthwise":
                geom = t.conv
                assert geom is not None
                w4 = self.w[d].T.reshape(1, geom.kh, geom.kw, t.units)
                y = g.depthwise_conv2d(
                    v.reshape(1, geom.h, geom.w, geom.c), w4, self.b[d], (geom.oh, geom.ow),
                    _attrs(t),
                )  # fmt: skip
                d += 1
            elif t.kind == "pool":
                geom = t.conv
                assert geom is not None
                fn = g.max_pool2d if t.pool == "max" else g.avg_pool2d
                y = fn(v.reshape(1, geom.h, geom.w, geom.c), (geom.oh, geom.ow), _attrs(t))
            elif t.kind == "avgpool":
                # the inference contract: binary32 sum from +0 in pixel order, / count, rounded
                rows = v.reshape(t.rows, t.units)
                acc = np.zeros(t.units, dtype=F32)
                for r in range(t.rows):
                    acc = (acc + rows[r].astype(F32)).astype(F32)
                y = g.clamp((acc / F32(t.rows)).astype(F32).astype(self.dtype), t.activation)
            else:
                y = v.copy()
            acts.append(np.asarray(y).reshape(-1))
        return acts

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[-1]

    # --- loss ----------------------------------------------------------------------------------

    def loss_grad(self, y: np.ndarray, target: Any) -> tuple[np.float32, np.ndarray]:
        """(loss in binary32, gradient of the loss with respect to y in storage format)."""
        n = y.size
        yf = y.astype(F32)
        if self.spec.loss == "cross-entropy":
            label = int(target)
            m = yf[0]
            for i in range(1, n):
                m = g.maximum_number(np.asarray(m), np.asarray(yf[i]))[()]
            with np.errstate(invalid="ignore", over="ignore"):
                e = g.expf_nonpositive((yf - F32(m)).astype(F32))
                total = F32(0.0)
                for i in range(n):
                    total = F32(total + e[i])
                p = (e / total).astype(F32)
                onehot = np.zeros(n, dtype=F32)
                onehot[label] = F32(1.0)
                grad = (p - onehot).astype(F32)
                loss = F32(logf_ge1(total) - F32(yf[label] - F32(m)))
            return loss, grad.astype(self.dtype)
        t = np.asarray(target).reshape(-1).astype(self.dtype).astype(F32)
        with np.errstate(invalid="ignore", over="ignore"):
            d = (yf - t).astype(F32)
            # 8 partial sums, element i into partial i mod 8 in order, then added 0..7 from +0
            part = np.zeros(8, dtype=F32)
            for b in range(0, n, 8):
                seg = d[b : b + 8]
                part[: seg.size] = g.fma(seg, seg, part[: seg.size], F32)
            acc = F32(0.0)
            for j in range(8):
                acc = F32(acc + part[j])
            loss = F32(acc / F32(n))
            grad = (d * F32(2.0 / n)).astype(F32)
        return loss, grad.astype(self.dtype)

    # --- one step ------------------------------------------------------------------------------

    def gradients(
        self, x: np.ndarray, target: Any
    ) -> tuple[np.float32, list[np.ndarray], list[np.ndarray]]:
        """(loss, weight gradients [units][depth], bias gradients) of every trained layer, in
        the contract's order, without changing the parameters."""
        dt = self.dtype
        neg_zero = np.asarray(-0.0, dtype=dt)
        acts = self.forward(x)
        loss, dy = self.loss_grad(acts[-1], target)
        gws: list[np.ndarray] = [np.empty(0)] * len(self.w)
        gbs: list[np.ndarray] = [np.empty(0)] * len(self.w)
        d = len(self.w)
        for ti in range(len(self.spec.tail) - 1, -1, -1):
            t = self.spec.tail[ti]
            if t.kind == "reshape":
                continue
            if t.kind in ("pool", "avgpool"):
                # a fused clamp after the pool passes the gradient where it passed the value
                mask = relu_mask(acts[ti + 1], t.activation)
                dy = np.where(mask, dy, dt.type(0.0)).astype(dt)
            if t.kind == "pool":
                dy = pool_backward(t, acts[ti], acts[ti + 1], dy, dt)
                continue
            if t.kind == "avgpool":
                # every pooled pixel receives dy / count, one binary32 divide, rounded once
                share = (dy.astype(F32) / F32(t.rows)).astype(F32).astype(dt)
                dy = np.tile(share, t.rows)
                continue
            d -= 1
            if t.kind == "depthwise":
                gws[d], gbs[d], dy = self._depthwise_backward(t, self.w[d], acts, ti, dy)
                continue
            w = self.w[d]
            xin = acts[ti].reshape(t.rows, t.depth) if t.conv is None else im2col(acts[ti], t.conv)
            y = acts[ti + 1].reshape(t.rows, t.units)
            dz = np.where(relu_mask(y, t.activation), dy.reshape(t.rows, t.units), dt.type(0.0))
            dz = dz.astype(dt)
            if ti > 0:
                # input gradient with the weights before the update: per (row, k) acc = -0,
                # then acc = fma(dz[r][u], w[u][k], acc) for u = 0 .. units-1
                acc = np.full((t.rows, t.depth), neg_zero, dtype=dt)
                for u in range(t.units):
                    acc = g.fma(dz[:, u : u + 1], w[u][None, :], acc, dt)
                dy = acc.reshape(-1) if t.conv is None else col2im(acc, t.conv, dt)
            # weight gradient: per (u, k) acc = -0, then acc = fma(x[r][k], dz[r][u], acc) for
            # rows r in order; bias gradient: acc = -0, then acc = acc + dz[r][u]
            gw = np.full((t.units, t.depth), neg_zero, dtype=dt)
            gb = np.full(t.units, neg_zero, dtype=dt)
            for r in range(t.rows):
                gw = g.fma(xin[r][None, :], dz[r][:, None], gw, dt)
                gb = g.add(gb, dz[r], dt)
            gws[d], gbs[d] = gw, gb
        return loss, gws, gbs

    def _depthwise_backward(
        self, t: TailOp, w: np.ndarray, acts: list[np.ndarray], ti: int, dy: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weight gradient [units][taps], bias gradient, input gradient) of a depthwise conv.
        dz = dy where the clamp passed. Input gradient (weights before the update): every input
        element starts at -0; for output pixels r in order, taps in filter order, outputs o in
        order: dx[tap pixel][o / mult] = fma(dz[r][o], w[o][tap], .). Weight gradient per
        (o, tap): -0, then fma(x under the tap (+0 in padding), dz[r][o], .) for r in order."""
        dt = self.dtype
        geom = t.conv
        assert geom is not None
        taps, oc, m = t.depth, t.units, t.mult
        src = np.arange(oc) // m
        y = acts[ti + 1].reshape(t.rows, oc)
        dz = np.where(relu_mask(y, t.activation), dy.reshape(t.rows, oc), dt.type(0.0)).astype(dt)
        dx = dy
        if ti > 0:
            dx2 = np.full((geom.h * geom.w, geom.c), -0.0, dtype=dt)
            for r in range(t.rows):
                for k in range(taps):
                    p = _tap_pixel(geom, r, *divmod(k, geom.kw))
                    if p is None:
                        continue
                    for j in range(m):  # o = c * m + j: per element, j ascending
                        o = np.arange(geom.c) * m + j
                        dx2[p] = g.fma(dz[r, o], w[o, k], dx2[p], dt)
            dx = dx2.reshape(-1)
        xt = tap_values(acts[ti], geom, src)  # [rows][taps][oc]
        gw = np.full((oc, taps), -0.0, dtype=dt)
        gb = np.full(oc, -0.0, dtype=dt)
        for r in range(t.rows):
            gw = g.fma(xt[r].T, dz[r][:, None], gw, dt)
            gb = g.add(gb, dz[r], dt)
        return gw, gb, dx

    def step(self, x: np.ndarray, target: Any) -> np.float32:
        """Forward, loss, backward and update; returns the loss before the update."""
        dt = self.dtype
        loss, gws, gbs = self.gradients(x, target)
        for d in range(len(self.w)):
            if self.momentum:
                self.vw[d] = g.fma(self.mu, self.vw[d], gws[d], dt)
                self.vb[d] = g.fma(self.mu, self.vb[d], gbs[d], dt)
                self.w[d] = g.fma(self.neg_lr, self.vw[d], self.w[d], dt)
                self.b[d] = g.fma(self.neg_lr, self.vb[d], self.b[d], dt)
            else:
                self.w[d] = g.fma(self.neg_lr, gws[d], self.w[d], dt)
                self.b[d] = g.fma(self.neg_lr, gbs[d], self.b[d], dt)
        return loss

    def load_weights(self, blob: bytes) -> None:
        """The inverse of weights_blob: take the parameters <name>_weights_export wrote."""
        a = np.frombuffer(blob, self.dtype)
        at = 0
        for i, layer in enumerate(self.spec.layers):
            n = layer.units * layer.depth
            shape = (layer.units, layer.depth) if layer.kind == "dense" else (layer.depth, -1)
            w = a[at : at + n].reshape(shape)
            self.w[i] = (w if layer.kind == "dense" else w.T).copy()
            self.b[i] = a[at + n : at + n + layer.units].copy()
            at += n + layer.units
        if at != a.size:
            raise ValueError(f"{a.size} parameters given, the trained layers hold {at}")

    def weights_blob(self) -> bytes:
        """What <name>_weights_export writes: per trained layer its weights in the model's layout
        (dense [units][depth], depthwise [taps][channels]), then its bias [units]."""
        return b"".join(
            np.ascontiguousarray(a).tobytes()
            for layer, w, b in zip(self.spec.layers, self.w, self.b, strict=True)
            for a in ((w if layer.kind == "dense" else w.T), b)
        )
