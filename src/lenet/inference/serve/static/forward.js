"use strict";
// The page without a server (`lenet export --format web`): the network's forward pass with
// every layer's activations, in the browser, from window.LENET_MODEL (model.js: the operations
// lenet.webexport found in the model, and its float32 weights, base64). run() answers what
// POST /api/activations answers for a 28x28 digit, so app.js and layers.js draw it unchanged;
// mnist.js makes the digit. Computed in float64 (the server: float32).
// lineScores() runs a reader (window.LENET_READER: the SDNN, LeNet-5 replicated over the line)
// over a 28-high strip of any width: the same operations, their output sizes found from the
// input's, as torch finds them.
// Exposes window.LenetForward = {load, run, lineScores}.
(function () {
  const SIDE = 28, MIN_CONTRAST = 24;  // lenet.inference.preprocess.MIN_CONTRAST

  function numel(shape) { return shape.reduce(function (a, b) { return a * b; }, 1); }

  // ------------------------------------------------------------------ the model
  function load(model) {
    const bytes = Uint8Array.from(atob(model.weights_base64), function (c) { return c.charCodeAt(0); });
    const view = new DataView(bytes.buffer), n = bytes.length / 4;
    const weights = new Float32Array(n);
    for (let i = 0; i < n; i++) weights[i] = view.getFloat32(4 * i, true);  // little-endian
    return { doc: model, weights: weights };
  }

  function tensor(net, ref) { return net.weights.subarray(ref.offset, ref.offset + numel(ref.shape)); }

  function conv(net, op, x, shape) {
    const cin = shape[0], h = shape[1], w = shape[2];
    const cout = op.out[0], oh = op.out[1], ow = op.out[2];
    const kh = op.kernel[0], kw = op.kernel[1], sy = op.stride[0], sx = op.stride[1];
    const py = op.padding[0], px = op.padding[1];
    const wt = tensor(net, op.weight), bias = op.bias ? tensor(net, op.bias) : null;
    // Grouped (an ensemble reader's members side by side): output map o reads only its
    // group's input maps, and its weights hold cin / groups of them.
    const groups = op.groups || 1, cpg = cin / groups, opg = cout / groups;
    const wcin = op.table ? cin : cpg;
    const y = new Float64Array(cout * oh * ow), byGroup = [];
    for (let g = 0; g < groups; g++) {
      const maps = [];
      for (let i = g * cpg; i < (g + 1) * cpg; i++) maps.push(i);
      byGroup.push(maps);
    }
    for (let o = 0; o < cout; o++) {
      const g = Math.floor(o / opg), base = op.table ? 0 : g * cpg;
      const maps = op.table ? op.table[o] : byGroup[g];  // the sparse C3 skips maps Table I leaves out
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          let s = bias ? bias[o] : 0;
          for (const i of maps) {
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * sy - py + ky;
              if (iy < 0 || iy >= h) continue;
              const row = (i * h + iy) * w, krow = ((o * wcin + i - base) * kh + ky) * kw;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * sx - px + kx;
                if (ix >= 0 && ix < w) s += x[row + ix] * wt[krow + kx];
              }
            }
          }
          y[(o * oh + oy) * ow + ox] = s;
        }
      }
    }
    return y;
  }

  // max or average over each window; `source[o]`: the input map of output map o.
  function pool(x, shape, out, kernel, stride, max, source) {
    const h = shape[1], w = shape[2], oh = out[1], ow = out[2];
    const y = new Float64Array(numel(out));
    for (let o = 0; o < out[0]; o++) {
      const m = source ? source[o] : o;
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          let s = max ? -Infinity : 0;
          for (let ky = 0; ky < kernel[0]; ky++) {
            for (let kx = 0; kx < kernel[1]; kx++) {
              const v = x[(m * h + oy * stride[0] + ky) * w + ox * stride[1] + kx];
              s = max ? (v > s ? v : s) : s + v;
            }
          }
          y[(o * oh + oy) * ow + ox] = max ? s : s / (kernel[0] * kernel[1]);
        }
      }
    }
    return y;
  }

  function subsample(net, op, x, shape) {
    const coef = tensor(net, op.coefficient), bias = tensor(net, op.bias);
    const y = pool(x, shape, op.out, [2, 2], [2, 2], false, op.source);
    const per = op.out[1] * op.out[2];
    for (let i = 0; i < y.length; i++) {
      const m = Math.floor(i / per);
      y[i] = y[i] * 4 * coef[m] + bias[m];  // the sum of the 2x2 block, weighted, plus bias
    }
    return y;
  }

  function linear(net, op, x) {
    const wt = tensor(net, op.weight), bias = op.bias ? tensor(net, op.bias) : null;
    const n = op.weight.shape[1], y = new Float64Array(op.weight.shape[0]);
    for (let o = 0; o < y.length; o++) {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < n; i++) s += wt[o * n + i] * x[i];
      y[o] = s;
    }
    return y;
  }

  function rbf(net, op, x) {  // minus the squared Euclidean distance to each code
    const codes = tensor(net, op.codes), n = op.codes.shape[1], y = new Float64Array(op.codes.shape[0]);
    for (let o = 0; o < y.length; o++) {
      let s = 0;
      for (let i = 0; i < n; i++) { const d = x[i] - codes[o * n + i]; s += d * d; }
      y[o] = -s;
    }
    return y;
  }

  const ACTS = {
    relu: function (v) { return v > 0 ? v : 0; },
    tanh: Math.tanh,
    sigmoid: function (v) { return 1 / (1 + Math.exp(-v)); },
    squash: function (v) { return 1.7159 * Math.tanh(v * (2 / 3)); },  // the 1998 paper's
  };

  function apply(net, op, x, shape) {
    switch (op.op) {
      case "conv": return conv(net, op, x, shape);
      case "maxpool": return pool(x, shape, op.out, op.kernel, op.stride, true, null);
      case "avgpool": return pool(x, shape, op.out, op.kernel, op.stride, false, null);
      case "subsample": return subsample(net, op, x, shape);
      case "linear": return linear(net, op, x);
      case "rbf": return rbf(net, op, x);
      case "act": return x.map(ACTS[op.fn]);
      default: throw new Error("model.js: unknown operation " + op.op);
    }
  }

  // The 28x28 uint8 digit as the network's input: zero-padded, then (x/255 - mean) / std.
  function input(doc, digit) {
    const p = doc.preprocessing, side = SIDE + 2 * p.pad, x = new Float64Array(side * side);
    const scale = 1 / (255 * p.std), shift = p.mean / p.std;
    for (let i = 0; i < side * side; i++) {
      const r = Math.floor(i / side) - p.pad, c = i % side - p.pad;
      const v = r >= 0 && r < SIDE && c >= 0 && c < SIDE ? digit[r * SIDE + c] : 0;
      x[i] = v * scale - shift;
    }
    return x;
  }

  function softmax(scores) {
    const top = Math.max.apply(null, scores);
    const e = scores.map(function (s) { return Math.exp(s - top); });
    const sum = e.reduce(function (a, b) { return a + b; }, 0);
    return e.map(function (v) { return v / sum; });
  }

  function rbfReading(doc, layers) {
    if (!doc.rbf) return undefined;
    const features = layers[layers.length - 2].values;
    const distances = doc.rbf.codes.map(function (code) {
      let s = 0;
      for (let i = 0; i < code.length; i++) { const d = features[i] - code[i]; s += d * d; }
      return Math.sqrt(s);
    });
    const nearest = distances.indexOf(Math.min.apply(null, distances));
    return { codes: doc.rbf.codes, shape: doc.rbf.shape, distances: distances, nearest: nearest,
             features: doc.rbf.features };
  }

  // Every layer for one 28x28 digit (uint8, row-major), as /api/activations answers.
  function run(net, digit) {
    const doc = net.doc;
    let x = input(doc, digit), shape = doc.layers[0].shape;
    const values = [Array.from(x)];
    for (const op of doc.ops) {
      x = apply(net, op, x, shape);
      shape = op.out;
      if (op.layer !== null) values[op.layer] = x;
    }
    const layers = doc.layers.map(function (l, i) {
      return { name: l.name, kind: l.kind, shape: l.shape, values: Array.from(values[i]),
               omitted: false, reads: l.reads };
    });
    const scores = Array.from(x), probabilities = softmax(scores);
    const best = scores.indexOf(Math.max.apply(null, scores));
    const top2 = scores.slice().sort(function (a, b) { return b - a; });
    const answer = { digit: best, label: doc.classes[best] === undefined ? String(best) : doc.classes[best],
             confidence: probabilities[best], probabilities: probabilities, classes: doc.classes,
             preprocessed: Array.from(digit), model: doc.model, layers: layers, scores: scores,
             rbf: rbfReading(doc, layers), no_digit: false,
             // unsure: the top-two margin at most the weights' reject margin (Predictor's rule)
             unsure: doc.reject_margin != null && !(top2[0] - top2[1] > doc.reject_margin) };
    if (Math.max.apply(null, Array.from(digit)) < MIN_CONTRAST) {  // no ink: "no digit"
      Object.assign(answer, { digit: null, label: null, confidence: 0, unsure: false, no_digit: true,
                              probabilities: probabilities.map(function () { return 0; }) });
    }
    return answer;
  }

  // ------------------------------------------------------------------ a line (the reader)
  // An operation's output shape for an input of `shape` (torch's floor division).
  function outShape(op, shape) {
    const side = function (n, k, s, p) { return Math.floor((n + 2 * p - k) / s) + 1; };
    if (op.op === "conv") {
      return [op.weight.shape[0], side(shape[1], op.kernel[0], op.stride[0], op.padding[0]),
              side(shape[2], op.kernel[1], op.stride[1], op.padding[1])];
    }
    if (op.op === "maxpool" || op.op === "avgpool") {
      return [shape[0], side(shape[1], op.kernel[0], op.stride[0], 0),
              side(shape[2], op.kernel[1], op.stride[1], 0)];
    }
    if (op.op === "act") return shape;
    if (op.op === "pad") return [shape[0], shape[1], shape[2] + 2 * op.width];
    throw new Error("reader.js: operation " + op.op + " cannot run over a line");
  }

  // `width` columns of `value` added on each side of every map (the SDNN's margin).
  function padColumns(x, shape, width, value) {
    const h = shape[1], w = shape[2], ow = w + 2 * width;
    const y = new Float64Array(shape[0] * h * ow).fill(value);
    for (let r = 0; r < shape[0] * h; r++) {
      for (let c = 0; c < w; c++) y[r * ow + width + c] = x[r * w + c];
    }
    return y;
  }

  // The reader's scores for a (28, width) uint8 strip, row-major: {scores: T rows of the
  // classes' logits, one per output column}. The last operation's output is (classes, 1, T).
  function lineScores(net, strip, width) {
    const doc = net.doc, p = doc.preprocessing, h = 28 + 2 * p.pad, w = width + 2 * p.pad;
    const scale = 1 / (255 * p.std), shift = p.mean / p.std;
    let x = new Float64Array(h * w), shape = [1, h, w];
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        const rr = r - p.pad, cc = c - p.pad;
        const v = rr >= 0 && rr < 28 && cc >= 0 && cc < width ? strip[rr * width + cc] : 0;
        x[r * w + c] = v * scale - shift;
      }
    }
    for (const op of doc.ops) {
      const out = outShape(op, shape);
      if (out[1] < 1 || out[2] < 1) throw new Error("the line is too narrow for the reader");
      x = op.op === "pad" ? padColumns(x, shape, op.width, op.value)
        : apply(net, Object.assign({}, op, { out: out }), x, shape);
      shape = out;
    }
    if (shape[1] !== 1) throw new Error("reader.js: the reader's output is not one row");
    const scores = [];
    for (let t = 0; t < shape[2]; t++) {
      const row = new Float64Array(shape[0]);
      for (let k = 0; k < shape[0]; k++) row[k] = x[k * shape[2] + t];
      scores.push(row);
    }
    return { scores: scores };
  }

  window.LenetForward = { load: load, run: run, lineScores: lineScores };
})();
