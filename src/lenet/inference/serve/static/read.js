"use strict";
// Reading a number in the page without a server (`lenet export --format web` with a reader):
// the ports of lenet.inference.read.line (any drawing -> the 28-high white-on-black strip the
// reader takes) and lenet.inference.read.decode (the reader's output columns -> the string:
// CTC's character model, the best path, or Viterbi over (pattern state x CTC state) for a
// length or a pattern, and the confidence from the forward algorithm), step by step in float64,
// with numpy's tie-breaking (the first maximum), so that the page reads what the server reads
// (tests/inference/serve/test_read_js.py compares them). forward.js's lineScores runs the
// reader. Exposes window.LenetRead = {load, read, decode, line, logSoftmax}.
(function () {
  const ALPHABET = "0123456789.", BLANK = ALPHABET.length, NUM_CLASSES = BLANK + 1;
  const PATTERNS = { zip: "d{5}", amount: "d+.dd" };
  const MAX_STATES = 4096, NEG = -Infinity;

  function logaddexp(a, b) {  // numpy.logaddexp
    if (a === NEG) return b;
    if (b === NEG) return a;
    const m = Math.max(a, b);
    return m + Math.log1p(Math.exp(-Math.abs(a - b)));
  }

  function logSoftmax(row) {
    let top = -Infinity;
    for (const v of row) top = Math.max(top, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - top);
    const z = top + Math.log(s);
    return Float64Array.from(row, function (v) { return v - z; });
  }

  // ------------------------------------------------------------------ the pattern automaton
  const TOKEN = /(d|[0-9]|\.)(\{(\d+)(,(\d*))?\}|\+|\*|\?)?/y;

  function repeat(m, pattern) {
    if (m[2] === undefined) return [1, 1];
    if (m[2] === "+") return [1, null];
    if (m[2] === "*") return [0, null];
    if (m[2] === "?") return [0, 1];
    const low = Number(m[3]);
    const high = m[4] === undefined ? low : (m[5] ? Number(m[5]) : null);
    if (high !== null && high < low) throw new Error("pattern " + pattern + ": " + m[2] + " repeats at most fewer times than at least");
    if (Math.max(low, high || 0) > 1000) throw new Error("pattern " + pattern + ": " + m[2] + " repeats more than 1000 times");
    return [low, high];
  }

  // {edges: per state, sorted [class, next] pairs; accept: Set}, without epsilon moves.
  function nfa(pattern) {
    if (pattern === null) {
      const e = [];
      for (let c = 0; c < BLANK; c++) e.push([c, 0]);
      return { edges: [e], accept: new Set([0]) };
    }
    const template = PATTERNS[pattern] || pattern;
    const eps = [new Set()], moves = [[]];
    function fresh() { eps.push(new Set()); moves.push([]); return eps.length - 1; }
    let cur = 0, pos = 0;
    while (pos < template.length) {
      TOKEN.lastIndex = pos;
      const m = TOKEN.exec(template);
      if (m === null) throw new Error("pattern " + pattern + ": cannot read " + template.slice(pos));
      pos = TOKEN.lastIndex;
      const chars = m[1] === "d" ? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] : [ALPHABET.indexOf(m[1])];
      const lh = repeat(m, pattern), low = lh[0], high = lh[1];
      for (let i = 0; i < low; i++) { const nxt = fresh(); moves[cur].push([chars, nxt]); cur = nxt; }
      if (high === null) {
        const loop = fresh();
        eps[cur].add(loop);
        moves[loop].push([chars, loop]);
        cur = loop;
      } else if (high > low) {
        const end = fresh();
        for (let i = 0; i < high - low; i++) {
          eps[cur].add(end);
          const nxt = fresh();
          moves[cur].push([chars, nxt]);
          cur = nxt;
        }
        eps[cur].add(end);
        cur = end;
      }
    }
    if (eps.length > MAX_STATES) throw new Error("pattern " + pattern + " is too long");
    const closures = eps.map(function (_, q) {
      const seen = new Set([q]), todo = [q];
      while (todo.length) for (const r of eps[todo.pop()]) if (!seen.has(r)) { seen.add(r); todo.push(r); }
      return seen;
    });
    const edges = closures.map(function (closure) {
      const found = new Map();
      for (const r of closure) for (const mv of moves[r]) for (const c of mv[0]) found.set(c * 1e6 + mv[1], [c, mv[1]]);
      return Array.from(found.values()).sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
    });
    const accept = new Set();
    closures.forEach(function (closure, q) { if (closure.has(cur)) accept.add(q); });
    return { edges: edges, accept: accept };
  }

  // The CTC x automaton states: label, allowed moves (list of [from, to]), start and final.
  function graph(automaton, length) {
    const nodes = new Map([["0,0", 0]]), order = [[0, 0]], arcs = [];
    for (let i = 0; i < order.length; i++) {
      const q = order[i][0], k = order[i][1];
      if (length !== null && k === length) continue;
      for (const e of automaton.edges[q]) {
        const key = e[1] + "," + (length !== null ? k + 1 : 0);
        if (!nodes.has(key)) {
          nodes.set(key, order.length);
          order.push([e[1], length !== null ? k + 1 : 0]);
          if (order.length > MAX_STATES) throw new Error("pattern with length " + length + " has too many states");
        }
        arcs.push([i, e[0], nodes.get(key)]);
      }
    }
    const states = new Map(), keys = [];
    function add(n, c) {
      const key = n * 100 + c;
      if (!states.has(key)) { states.set(key, keys.length); keys.push([n, c]); }
    }
    for (let n = 0; n < order.length; n++) add(n, BLANK);
    for (const a of arcs) add(a[2], a[1]);
    const size = keys.length, label = new Int32Array(size);
    const into = [];  // into[s]: the states that may move to s (itself included)
    for (let s = 0; s < size; s++) into.push(new Set());
    keys.forEach(function (nc, s) {
      label[s] = nc[1];
      into[s].add(s);
      if (nc[1] !== BLANK) into[states.get(nc[0] * 100 + BLANK)].add(s);
    });
    const atNode = new Map();
    keys.forEach(function (nc, s) {
      if (!atNode.has(nc[0])) atNode.set(nc[0], []);
      atNode.get(nc[0]).push([nc[1], s]);
    });
    for (const a of arcs) {
      for (const ps of atNode.get(a[0])) if (ps[0] !== a[1]) into[states.get(a[2] * 100 + a[1])].add(ps[1]);
    }
    const from = into.map(function (set) { return Array.from(set).sort(function (a, b) { return a - b; }); });
    const start = states.get(BLANK);  // (node 0, blank): the start state's moves
    const startOk = new Uint8Array(size);
    from.forEach(function (f, s) { if (f.includes(start)) startOk[s] = 1; });
    const final = new Uint8Array(size);
    keys.forEach(function (nc, s) {
      const node = order[nc[0]];
      final[s] = automaton.accept.has(node[0]) && (length === null || node[1] === length) ? 1 : 0;
    });
    return { label: label, from: from, startOk: startOk, final: final };
  }

  function viterbi(lp, g) {
    const n = g.label.length, T = lp.length, back = [];
    let score = new Float64Array(n);
    for (let s = 0; s < n; s++) score[s] = g.startOk[s] ? lp[0][g.label[s]] : NEG;
    back.push(null);
    for (let t = 1; t < T; t++) {
      const next = new Float64Array(n), b = new Int32Array(n);
      for (let s = 0; s < n; s++) {
        let best = NEG, arg = 0;  // numpy's argmax over every state: the first maximum
        for (const p of g.from[s]) if (score[p] > best) { best = score[p]; arg = p; }
        if (best === NEG) arg = 0;
        b[s] = arg;
        next[s] = best + lp[t][g.label[s]];
      }
      back.push(b);
      score = next;
    }
    let s = -1, best = NEG;
    for (let q = 0; q < n; q++) if (g.final[q] && score[q] > best) { best = score[q]; s = q; }
    if (s < 0) return null;
    const states = [s];
    for (let t = T - 1; t > 0; t--) { s = back[t][s]; states.push(s); }
    return states.reverse().map(function (q) { return g.label[q]; });
  }

  function forwardGraph(lp, g) {
    const n = g.label.length;
    let alpha = new Float64Array(n);
    for (let s = 0; s < n; s++) alpha[s] = g.startOk[s] ? lp[0][g.label[s]] : NEG;
    for (let t = 1; t < lp.length; t++) {
      const next = new Float64Array(n);
      for (let s = 0; s < n; s++) {
        let a = NEG;
        for (const p of g.from[s]) a = logaddexp(a, alpha[p]);
        next[s] = a + lp[t][g.label[s]];
      }
      alpha = next;
    }
    let z = NEG;
    for (let s = 0; s < n; s++) if (g.final[s]) z = logaddexp(z, alpha[s]);
    return z;
  }

  function forwardLabels(lp, labels) {  // log P(labels | columns): CTC's forward algorithm
    const n = 2 * labels.length + 1, ext = new Int32Array(n).fill(BLANK);
    labels.forEach(function (c, i) { ext[2 * i + 1] = c; });
    let alpha = new Float64Array(n).fill(NEG);
    alpha[0] = lp[0][ext[0]];
    if (n > 1) alpha[1] = lp[0][ext[1]];
    for (let t = 1; t < lp.length; t++) {
      const next = new Float64Array(n);
      for (let s = 0; s < n; s++) {
        let a = logaddexp(alpha[s], s > 0 ? alpha[s - 1] : NEG);
        if (s >= 3 && s % 2 === 1 && ext[s] !== ext[s - 2]) a = logaddexp(a, alpha[s - 2]);
        next[s] = a + lp[t][ext[s]];
      }
      alpha = next;
    }
    return n > 1 ? logaddexp(alpha[n - 1], alpha[n - 2]) : alpha[n - 1];
  }

  function result(lp, path, logZ) {
    const labels = [], spans = [], probabilities = [];
    for (let t0 = 0; t0 < path.length;) {
      let t1 = t0 + 1;
      while (t1 < path.length && path[t1] === path[t0]) t1++;
      const c = path[t0];
      if (c !== BLANK) {
        let top = NEG;
        for (let t = t0; t < t1; t++) top = Math.max(top, lp[t][c]);
        labels.push(c);
        spans.push([t0, t1]);
        probabilities.push(Math.exp(top));
      }
      t0 = t1;
    }
    const confidence = Math.min(1, Math.max(0, Math.exp(forwardLabels(lp, labels) - logZ)));
    return { text: labels.map(function (c) { return ALPHABET[c]; }).join(""), confidence: confidence,
             spans: spans, probabilities: probabilities, path: Array.from(path) };
  }

  // lenet.inference.read.decode.decode: (T, 12) log-probabilities -> the best string.
  function decode(lp, length, pattern) {
    length = length === undefined ? null : length;
    pattern = pattern === undefined ? null : pattern;
    if (lp.length === 0) return { text: "", confidence: length === null || length === 0 ? 1 : 0, spans: [], probabilities: [], path: [] };
    if (lp[0].length !== NUM_CLASSES) throw new Error("decode takes (T, " + NUM_CLASSES + ") log-probabilities");
    if (length === null && pattern === null) {
      const path = lp.map(function (row) {
        let best = 0;
        for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k;
        return best;
      });
      return result(lp, path, 0);
    }
    const g = graph(nfa(pattern), length), path = viterbi(lp, g);
    if (path === null) return { text: "", confidence: 0, spans: [], probabilities: [], path: [] };
    return result(lp, path, forwardGraph(lp, g));
  }

  // ------------------------------------------------------------------ reading a drawing
  // lenet.inference.read.reader.Reader: the strip through the reader, decoded, each character's
  // ink columns found in the strip and mapped back to the drawing's pixels.
  function load(model) { return window.LenetForward.load(model); }

  function columnsFor(doc, width) {  // lenet.models.sdnn.SDNN.columns
    return Math.max(0, Math.floor((Math.floor((width + 2 * doc.margin) / 2) - 4) / 2) - 4);
  }

  function charBoxes(line, centres, stride) {  // reader._char_boxes
    const inked = [];
    for (let x = 0; x < line.width; x++) {
      for (let y = 0; y < 28; y++) if (line.strip[y * line.width + x] >= 51) { inked.push(x); break; }
    }
    return centres.map(function (c, k) {
      const lo = Math.max(c - 14, k ? (centres[k - 1] + c) / 2 : -Infinity);
      const hi = Math.min(c + 14, k + 1 < centres.length ? (centres[k + 1] + c) / 2 : Infinity);
      const near = inked.filter(function (x) { return x >= lo && x < hi; });
      return near.length ? [near[0], near[near.length - 1] + 1] : [c - stride / 2, c + stride / 2];
    });
  }

  // What POST /api/read answers, for a drawing's grey levels (Float64Array, w x h).
  function read(net, gray, w, h, opts) {
    const doc = net.doc, o = opts || {}, line = window.LenetMnist.line(gray, w, h);
    const answer = { method: "sdnn", classes: doc.classes, stride: doc.stride, reject: doc.reject,
                     strip: { width: line.width, height: 28, pixels: Array.from(line.strip) } };
    if (line.width === 0) {
      return Object.assign(answer, { text: "", confidence: 1, rejected: false, digits: [],
                                     columns: null, path: [], centres: [] });
    }
    const padded = Math.ceil(line.width / 4) * 4, x = new Uint8Array(28 * padded);
    for (let r = 0; r < 28; r++) x.set(line.strip.subarray(r * line.width, (r + 1) * line.width), r * padded);
    const lp = window.LenetForward.lineScores(net, x, padded).scores
      .slice(0, columnsFor(doc, line.width)).map(logSoftmax);
    const d = decode(lp, o.length, o.pattern);
    const centres = lp.map(function (_, t) { return doc.centre0 + doc.stride * t; });
    const mids = d.spans.map(function (s) { return (centres[s[0]] + centres[s[1] - 1]) / 2; });
    const toInput = function (v) { return Math.min(Math.max(window.LenetMnist.rint(line.offset + v / line.scale), 0), w); };
    const digits = charBoxes(line, mids, doc.stride).map(function (b, i) {
      const x0 = toInput(b[0]);
      return { char: d.text[i], x0: x0, x1: Math.max(toInput(b[1]), x0 + 1), probability: d.probabilities[i] };
    });
    return Object.assign(answer, {
      text: d.text, confidence: d.confidence, rejected: doc.reject !== null && d.confidence < doc.reject,
      digits: digits, path: d.path, centres: centres,
      columns: lp.map(function (row) { return Array.from(row, Math.exp); }) });
  }

  window.LenetRead = { load: load, read: read, decode: decode, logSoftmax: logSoftmax };
})();
