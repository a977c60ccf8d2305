"use strict";
// The digit a page without a server shows (`lenet export --format web`): an image (the drawing
// or a file) made MNIST-style in the browser, and the sliders' distortions of that 28x28 digit.
//
// preprocess() is lenet.inference.preprocess.mnist_trace step by step: invert light paper,
// stretch the ink, crop to it, scale its longest side to 20 px with Pillow's Lanczos resampling
// (the same coefficients, two float32 passes, horizontal first), rescale to peak 255, round half
// to even, and place it by its centre of mass, so that a drawing gives the server's digit pixel
// for pixel. distort() is lenet.inference.serve.digits.apply, made of lenet.data.geometry's
// stroke, affine_map and warp (tests/inference/serve/test_mnist_js.py compares the two): stroke
// width, one bilinear affine map about the centre, then noise; the noise comes from a seeded
// generator of its own (torch's cannot be had here), so with noise the digit differs from the
// server's. Exposes window.LenetMnist.
(function () {
  const BOX = 20, SIDE = 28, CENTRE = 14.0, THUMB = 56;
  const INK_THRESHOLD = 0.2, NOISE_FLOOR = 0.08, MIN_CONTRAST = 24.0;

  // numpy.rint and Python's round(): halves go to the even neighbour.
  function rint(x) {
    const r = Math.round(x);
    return (r - x === 0.5 && r % 2 !== 0) ? r - 1 : r;
  }

  function median(values) {  // numpy.median: the mean of the two middle values of an even count
    const s = Float64Array.from(values).sort(), n = s.length;
    return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }

  function border(g, w, h) {  // row 0, the last row, then the first and last columns between
    const out = [];
    for (let x = 0; x < w; x++) out.push(g[x]);
    for (let x = 0; x < w; x++) out.push(g[(h - 1) * w + x]);
    for (let y = 1; y < h - 1; y++) out.push(g[y * w]);
    for (let y = 1; y < h - 1; y++) out.push(g[y * w + w - 1]);
    return out;
  }

  // ------------------------------------------------------------------ Pillow's Lanczos resize
  function sinc(x) { if (x === 0) return 1; x *= Math.PI; return Math.sin(x) / x; }
  function lanczos(x) { return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0; }

  function coefficients(inSize, outSize) {  // Pillow's precompute_coeffs, support 3
    const scale = inSize / outSize, filterscale = Math.max(scale, 1), support = 3 * filterscale;
    const out = [];
    for (let xx = 0; xx < outSize; xx++) {
      const center = (xx + 0.5) * scale;
      const lo = Math.max(0, Math.trunc(center - support + 0.5));
      const n = Math.min(inSize, Math.trunc(center + support + 0.5)) - lo;
      const k = new Float64Array(n);
      let sum = 0;
      for (let x = 0; x < n; x++) { k[x] = lanczos((x + lo - center + 0.5) / filterscale); sum += k[x]; }
      if (sum !== 0) for (let x = 0; x < n; x++) k[x] /= sum;
      out.push({ lo: lo, k: k });
    }
    return out;
  }

  // One pass along rows (horizontal) or columns; float32 results, as Pillow stores mode F.
  function pass(src, w, h, size, horizontal) {
    const cs = coefficients(horizontal ? w : h, size);
    const ow = horizontal ? size : w, oh = horizontal ? h : size, out = new Float32Array(ow * oh);
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        const c = cs[horizontal ? x : y];
        let s = 0;
        for (let i = 0; i < c.k.length; i++) {
          s += (horizontal ? src[y * w + c.lo + i] : src[(c.lo + i) * w + x]) * c.k[i];
        }
        out[y * ow + x] = s;
      }
    }
    return out;
  }

  function resize(src, w, h, nw, nh) {
    let img = Float32Array.from(src);
    if (nw !== w) img = pass(img, w, h, nw, true);
    if (nh !== h) img = pass(img, nw, h, nh, false);
    return img;
  }

  // ------------------------------------------------------------------ MNIST preprocessing
  function inkBox(ink, w, h) {
    const cut = INK_THRESHOLD * 255.0;
    let top = h, bottom = -1, left = w, right = -1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (ink[y * w + x] >= cut) {
          top = Math.min(top, y); bottom = Math.max(bottom, y);
          left = Math.min(left, x); right = Math.max(right, x);
        }
      }
    }
    return bottom < 0 ? null : [top, left, bottom + 1, right + 1];
  }

  function stretch(white, w, h) {  // the ink from 0 to 255 above the background, faint ink zeroed
    const background = median(border(white, w, h));
    let peak = -Infinity;
    for (const v of white) peak = Math.max(peak, v);
    if (peak - background < MIN_CONTRAST) throw new Error("no ink found (the image is blank or has too little contrast)");
    const f = 255.0 / (peak - background);
    return white.map(function (v) {
      const s = Math.min(255, Math.max(0, (v - background) * f));
      return s < NOISE_FLOOR * 255.0 ? 0 : s;
    });
  }

  function place(small, nw, nh) {  // rescaled to peak 255, rounded, centred by mass in 28x28
    let peak = 0;
    const d = Float64Array.from(small, function (v) { const c = Math.min(255, Math.max(0, v)); peak = Math.max(peak, c); return c; });
    if (peak <= 0) throw new Error("no ink left after scaling the digit to " + BOX + " px");
    const f = 255.0 / peak;
    let mass = 0, my = 0, mx = 0;
    for (let i = 0; i < d.length; i++) {
      d[i] = rint(d[i] * f);
      mass += d[i]; my += d[i] * Math.floor(i / nw); mx += d[i] * (i % nw);
    }
    const top = Math.min(Math.max(rint(CENTRE - my / mass), 0), SIDE - nh);
    const left = Math.min(Math.max(rint(CENTRE - mx / mass), 0), SIDE - nw);
    const out = new Uint8Array(SIDE * SIDE);
    for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) out[(top + y) * SIDE + left + x] = d[y * nw + x];
    return out;
  }

  // Grayscale (Float64Array, w x h, 0..255) -> {digit: Uint8Array(784), steps: pictures}.
  function preprocess(gray, w, h) {
    const inverted = median(border(gray, w, h)) > 127.5;  // light paper, dark ink
    const white = inverted ? gray.map(function (v) { return 255.0 - v; }) : gray;
    const ink = stretch(white, w, h);
    const box = inkBox(ink, w, h);
    if (!box) throw new Error("no ink found (the image is blank or has too little contrast)");
    const ch = box[2] - box[0], cw = box[3] - box[1], crop = new Float64Array(cw * ch);
    for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) crop[y * cw + x] = ink[(box[0] + y) * w + box[1] + x];
    const scale = BOX / Math.max(ch, cw);
    const nw = Math.max(1, rint(cw * scale)), nh = Math.max(1, rint(ch * scale));
    const digit = place(resize(crop, cw, ch, nw, nh), nw, nh);
    const steps = [thumb("grayscale", gray, w, h),
                   thumb(inverted ? "ink made white" : "ink already white", white, w, h, box),
                   thumb("cropped to the ink", cropOf(white, w, box), cw, ch),
                   thumb("scaled to 20 px, centred by mass (28x28)", digit, SIDE, SIDE)];
    return { digit: digit, steps: steps };
  }

  function cropOf(g, w, box) {
    const cw = box[3] - box[1], out = new Float64Array(cw * (box[2] - box[0]));
    for (let i = 0; i < out.length; i++) out[i] = g[(box[0] + Math.floor(i / cw)) * w + box[1] + i % cw];
    return out;
  }

  // A picture of one step, its longest side at most THUMB pixels (area-averaged), as the
  // server's steps: {name, width, height, pixels, box}. For people, not for the network.
  function thumb(name, g, w, h, box) {
    const f = Math.min(1, THUMB / Math.max(w, h));
    const tw = Math.max(1, Math.round(w * f)), th = Math.max(1, Math.round(h * f));
    const pixels = [];
    for (let ty = 0; ty < th; ty++) {
      for (let tx = 0; tx < tw; tx++) {
        const y0 = Math.floor(ty * h / th), y1 = Math.max(y0 + 1, Math.floor((ty + 1) * h / th));
        const x0 = Math.floor(tx * w / tw), x1 = Math.max(x0 + 1, Math.floor((tx + 1) * w / tw));
        let s = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) s += g[y * w + x];
        pixels.push(Math.round(Math.min(255, Math.max(0, s / ((y1 - y0) * (x1 - x0))))));
      }
    }
    const step = { name: name, width: tw, height: th, pixels: pixels };
    if (box) step.box = [Math.floor(box[0] * f), Math.floor(box[1] * f), Math.ceil(box[2] * f), Math.ceil(box[3] * f)];
    return step;
  }

  // RGBA pixels (ImageData) -> grayscale as Pillow makes it: composited on white, then ITU-R
  // 601-2 luma with Pillow's integer weights.
  function grayFromImage(data, w, h) {
    const g = new Float64Array(w * h);
    for (let i = 0; i < w * h; i++) {
      const a = data[4 * i + 3] / 255, paper = 255 * (1 - a);
      const r = Math.round(data[4 * i] * a + paper), gr = Math.round(data[4 * i + 1] * a + paper);
      const b = Math.round(data[4 * i + 2] * a + paper);
      g[i] = (r * 19595 + gr * 38470 + b * 7471 + 0x8000) >> 16;
    }
    return g;
  }

  // ------------------------------------------------------------------ the sliders
  function morph(x, dilate) {  // 3x3 grayscale dilation (max) or erosion (min), borders ignored
    const y = new Float64Array(x.length);
    for (let r = 0; r < SIDE; r++) {
      for (let c = 0; c < SIDE; c++) {
        let v = dilate ? -Infinity : Infinity;
        for (let dr = -1; dr <= 1; dr++) {
          for (let dc = -1; dc <= 1; dc++) {
            const rr = r + dr, cc = c + dc;
            if (rr < 0 || rr >= SIDE || cc < 0 || cc >= SIDE) continue;
            const u = x[rr * SIDE + cc];
            v = dilate ? Math.max(v, u) : Math.min(v, u);
          }
        }
        y[r * SIDE + c] = v;
      }
    }
    return y;
  }

  // lenet.data.geometry.affine_map's forward map, inverted as lenet.data.geometry.warp inverts
  // it: output pixel -> where it samples the input, in affine_grid's coordinates with
  // align_corners=False (pixel i's centre at (2 i + 1) / SIDE - 1; the field's edges at -1, 1).
  function inverseAffine(t) {
    const s = t.scale, q = t.squeeze, k = t.shear, a = t.rotate * Math.PI / 180;
    const c = Math.cos(a), n = Math.sin(a);
    const m = [[s * q, k * s / q], [0, s / q]];
    const f = [[c * m[0][0] + n * m[1][0], c * m[0][1] + n * m[1][1]],
               [-n * m[0][0] + c * m[1][0], -n * m[0][1] + c * m[1][1]]];
    const det = f[0][0] * f[1][1] - f[0][1] * f[1][0];
    const inv = [[f[1][1] / det, -f[0][1] / det], [-f[1][0] / det, f[0][0] / det]];
    const tx = t.shift_x * 2 / SIDE, ty = t.shift_y * 2 / SIDE;
    return [[inv[0][0], inv[0][1], -(inv[0][0] * tx + inv[0][1] * ty)],
            [inv[1][0], inv[1][1], -(inv[1][0] * tx + inv[1][1] * ty)]];
  }

  function sample(x, iy, ix) {  // bilinear, zero outside
    const y0 = Math.floor(iy), x0 = Math.floor(ix);
    let s = 0;
    for (const [yy, wy] of [[y0, 1 - (iy - y0)], [y0 + 1, iy - y0]]) {
      for (const [xx, wx] of [[x0, 1 - (ix - x0)], [x0 + 1, ix - x0]]) {
        if (yy >= 0 && yy < SIDE && xx >= 0 && xx < SIDE) s += x[yy * SIDE + xx] * wy * wx;
      }
    }
    return s;
  }

  function gaussians(seed) {  // mulberry32, then Box-Muller: a seeded standard normal stream
    let state = seed >>> 0;
    function uniform() {
      state = (state + 0x6D2B79F5) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 15), z | 1);
      z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
      return (((z ^ (z >>> 14)) >>> 0) + 0.5) / 4294967296;
    }
    return function () { return Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()); };
  }

  const NEUTRAL = { rotate: 0, scale: 1, shift_x: 0, shift_y: 0, squeeze: 1, shear: 0, stroke: 0, noise: 0, seed: 0 };

  // The 28x28 uint8 digit distorted by the sliders' fields (missing ones are neutral).
  function distort(digit, fields) {
    const t = Object.assign({}, NEUTRAL, fields || {});
    if (Object.keys(NEUTRAL).every(function (k) { return k === "seed" || t[k] === NEUTRAL[k]; })) return Uint8Array.from(digit);
    let x = Float64Array.from(digit);
    for (let i = 0; i < Math.abs(t.stroke); i++) x = morph(x, t.stroke > 0);
    const th = inverseAffine(t), y = new Float64Array(SIDE * SIDE);
    for (let r = 0; r < SIDE; r++) {
      for (let c = 0; c < SIDE; c++) {
        const xn = (2 * c + 1) / SIDE - 1, yn = (2 * r + 1) / SIDE - 1;
        const gx = th[0][0] * xn + th[0][1] * yn + th[0][2], gy = th[1][0] * xn + th[1][1] * yn + th[1][2];
        y[r * SIDE + c] = sample(x, ((gy + 1) * SIDE - 1) / 2, ((gx + 1) * SIDE - 1) / 2);
      }
    }
    if (t.noise > 0) {
      const normal = gaussians(t.seed);
      for (let i = 0; i < y.length; i++) y[i] += normal() * t.noise * 255;
    }
    return Uint8Array.from(y, function (v) { return rint(Math.min(255, Math.max(0, v))); });
  }

  // ------------------------------------------------------------------ a line (number mode)
  // lenet.inference.read.line.normalize step by step: a drawing of a number -> the reader's
  // strip, uint8 (28, W) white on black, the digits 20 px high, the centre of mass at row 14.
  const LINE_MARGIN = 4, MAX_LINE = 20480, LINE_SHARE = 0.5, MERGE_GAP = 0.25, PERCENTILE = 98;
  const INK_LEVEL = 231.0, INK_FLOOR = 26.0, MAX_GAIN = 3.0;

  function solid(mask, w, h) {  // without pixels that have fewer than 2 of 8 neighbours set
    const out = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!mask[y * w + x]) continue;
        let n = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const yy = y + dy, xx = x + dx;
            if ((dy || dx) && yy >= 0 && yy < h && xx >= 0 && xx < w) n += mask[yy * w + xx];
          }
        }
        out[y * w + x] = n >= 2 ? 1 : 0;
      }
    }
    return out;
  }

  function lineRows(mask, w, h) {  // [top, bottom) of the one line of ink; two lines: an error
    const bands = [];
    for (let y = 0; y < h; y++) {
      let any = false;
      for (let x = 0; x < w && !any; x++) any = mask[y * w + x] === 1;
      if (any && (y === 0 || !bands.length || bands[bands.length - 1][1] !== y)) bands.push([y, y + 1]);
      else if (any) bands[bands.length - 1][1] = y + 1;
    }
    let tallest = Math.max.apply(null, bands.map(function (b) { return b[1] - b[0]; }));
    const merged = [bands[0].slice()];
    for (const b of bands.slice(1)) {
      const lastBand = merged[merged.length - 1];
      if (b[0] - lastBand[1] < MERGE_GAP * tallest) lastBand[1] = b[1];
      else merged.push(b.slice());
    }
    tallest = Math.max.apply(null, merged.map(function (b) { return b[1] - b[0]; }));
    const lines = merged.filter(function (b) { return b[1] - b[0] >= LINE_SHARE * tallest; });
    if (lines.length > 1) throw new Error("found " + lines.length + " lines of ink; a number is read from one line");
    return lines[0];
  }

  function percentile(values, q) {  // line._digit_height's linear rule
    const v = Float64Array.from(values).sort(), k = (v.length - 1) * q / 100;
    const lo = Math.floor(k), hi = Math.min(lo + 1, v.length - 1);
    return v[lo] + (k - lo) * (v[hi] - v[lo]);
  }

  function digitHeight(mask, w, top, bottom, left, right) {  // a high percentile of column extents
    const extents = [];
    for (let x = left; x < right; x++) {
      let first = -1, lastRow = -1;
      for (let y = top; y < bottom; y++) if (mask[y * w + x]) { if (first < 0) first = y; lastRow = y; }
      if (first >= 0) extents.push(lastRow + 1 - first);
    }
    return Math.max(1, percentile(extents, PERCENTILE));
  }

  // Grayscale (Float64Array, w x h) -> {strip: Uint8Array(28 * width), width, scale, offset}
  // (strip column x is the drawing's column offset + x / scale); width 0 for a blank drawing.
  function line(gray, w, h) {
    const none = { strip: new Uint8Array(0), width: 0, scale: 1, offset: 0 };
    const inverted = median(border(gray, w, h)) > 127.5;
    let ink;
    try {
      ink = stretch(inverted ? gray.map(function (v) { return 255.0 - v; }) : gray, w, h);
    } catch (e) {
      return none;  // no ink: the drawing reads as ""
    }
    const cut = INK_THRESHOLD * 255.0, mask = solid(Uint8Array.from(ink, function (v) { return v >= cut ? 1 : 0; }), w, h);
    if (!mask.includes(1)) return none;
    const rows = lineRows(mask, w, h), top = rows[0], bottom = rows[1];
    let left = w, right = -1;
    for (let y = top; y < bottom; y++) {
      for (let x = 0; x < w; x++) if (mask[y * w + x]) { left = Math.min(left, x); right = Math.max(right, x + 1); }
    }
    const scale = Math.min(BOX / digitHeight(mask, w, top, bottom, left, right), SIDE / (bottom - top));
    const nw = Math.max(1, rint((right - left) * scale));
    if (nw + 2 * LINE_MARGIN > MAX_LINE) throw new Error("the line is too long to read: crop or split it");
    const nh = Math.min(SIDE, Math.max(1, rint((bottom - top) * scale)));
    const cw = right - left, ch = bottom - top, crop = new Float64Array(cw * ch);
    for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) crop[y * cw + x] = ink[(top + y) * w + left + x];
    const small = resize(crop, cw, ch, nw, nh);
    let peak = 0, sum = 0;
    const d = Float64Array.from(small, function (v) { const c = Math.min(255, Math.max(0, v)); peak = Math.max(peak, c); sum += c; return c; });
    if (sum <= 0) throw new Error("no ink left after scaling the line to " + BOX + " px high");
    const f = 255.0 / peak, inked = [];
    for (let i = 0; i < d.length; i++) { d[i] = rint(d[i] * f); if (d[i] >= INK_FLOOR) inked.push(d[i]); }
    // line._level: faint ink brightened (at most MAX_GAIN times) to MNIST's median ink level.
    const gain = inked.length ? Math.min(MAX_GAIN, Math.max(1, INK_LEVEL / median(inked))) : 1;
    if (gain > 1) for (let i = 0; i < d.length; i++) d[i] = Math.min(d[i] * gain, 255);
    let mass = 0, my = 0;
    for (let y = 0; y < nh; y++) {
      let r = 0;
      for (let x = 0; x < nw; x++) r += d[y * nw + x];
      mass += r; my += r * y;
    }
    const row = Math.min(Math.max(rint(CENTRE - my / mass), 0), SIDE - nh), width = nw + 2 * LINE_MARGIN;
    const strip = new Uint8Array(SIDE * width);
    for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) strip[(row + y) * width + LINE_MARGIN + x] = rint(d[y * nw + x]);
    return { strip: strip, width: width, scale: scale, offset: left - LINE_MARGIN / scale };
  }

  window.LenetMnist = { preprocess: preprocess, grayFromImage: grayFromImage, distort: distort, rint: rint,
                        line: line };
})();
