"use strict";
// Every layer of the served network, drawn from one /api/activations answer: a small canvas per
// feature map (a grid of cells for a layer of units), each layer scaled from its own min to max.
// Pointing at a unit, or focusing a map and moving with the arrow keys, highlights the units it
// reads from: a convolution's input maps (by its connection table) and its window in them, a
// pool's window, or the whole previous layer for a dense unit. For an RBF output (lenet5-1998)
// the layer below is also drawn as a 7x12 bitmap beside the nearest digit code, with the ten
// Euclidean distances. Exposes window.LenetLayers = {render(answer), clear()}.
(function () {
  const root = document.getElementById("layers");
  const readout = document.getElementById("readout");
  const rbfEl = document.getElementById("rbf");
  const HINT = readout.textContent;
  let signature = "", views = [], cursor = null, rbfView = null;

  function spatial(l) { return l.shape.length === 3 && (l.shape[1] > 1 || l.shape[2] > 1); }
  function fmt(v) { return v === null || v === undefined ? "–" : v.toFixed(4); }

  function label(l, hidden) {
    if (l.kind === "input") return "Input";
    if (/^[a-z]+\d+$/.test(l.name)) return l.name.toUpperCase();
    if (l.kind === "linear") return "Hidden layer " + hidden + " (" + l.name + ")";
    return l.kind === "rbf" ? "Output (RBF)" : "Output";
  }

  function range(values) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) { if (v !== null) { if (v < lo) lo = v; if (v > hi) hi = v; } }
    return lo === Infinity ? [0, 0] : [lo, hi];
  }

  function paint(canvas, values, offset, count, lo, hi) {
    const c = canvas.getContext("2d");
    const img = c.createImageData(canvas.width, canvas.height);
    const span = hi - lo;
    for (let i = 0; i < count; i++) {
      const v = values[offset + i];
      const g = v === null || span <= 0 ? 0 : Math.round((v - lo) / span * 255);
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = g;
      img.data[4 * i + 3] = 255;
    }
    c.putImageData(img, 0, 0);
  }

  function makeCell(view, m, w, h, scale) {
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.tabIndex = 0;
    cell.dataset.map = String(m);
    const canvas = document.createElement("canvas");
    canvas.width = w; canvas.height = h;
    canvas.className = "map";
    canvas.style.width = w * scale + "px";
    canvas.style.height = h * scale + "px";
    const win = document.createElement("div");
    win.className = "win";
    win.hidden = true;
    cell.append(canvas, win);
    cell.setAttribute("aria-label", view.label + (view.flat ? " units" : " map " + m));
    listen(cell, canvas, view, m);
    return { el: cell, canvas: canvas, win: win };
  }

  function gridFor(n) {
    const cols = n <= 20 ? n : Math.ceil(Math.sqrt(n * 4));
    return { cols: cols, rows: Math.ceil(n / cols), scale: n <= 20 ? 22 : 10 };
  }

  function buildLayer(l, index, hidden) {
    const view = { data: l, index: index, label: label(l, hidden), flat: !spatial(l), cells: [] };
    const el = document.createElement("div");
    el.className = "layer";
    el.dataset.name = l.name;
    el.dataset.kind = l.kind;
    const head = document.createElement("header");
    head.innerHTML = "<h3></h3><span class=\"range\"></span>";
    head.querySelector("h3").textContent = view.label + " · " + l.kind + " · " + l.shape.join("×");
    view.rangeEl = head.querySelector(".range");
    const maps = document.createElement("div");
    maps.className = "maps";
    if (view.flat) {
      const n = l.shape.reduce(function (a, b) { return a * b; }, 1);
      view.grid = gridFor(n);
      view.cells.push(makeCell(view, 0, view.grid.cols, view.grid.rows, view.grid.scale));
    } else {
      const h = l.shape[1], w = l.shape[2], scale = Math.max(2, Math.floor(64 / h));
      view.scale = scale;
      for (let m = 0; m < l.shape[0]; m++) view.cells.push(makeCell(view, m, w, h, scale));
    }
    view.cells.forEach(function (c) { maps.appendChild(c.el); });
    el.append(head, maps);
    if (l.reads && l.reads.sparse) el.appendChild(buildTable(view, l.reads.table));
    view.el = el;
    return view;
  }

  function buildTable(view, table) {
    const t = document.createElement("table");
    t.className = "table";
    t.setAttribute("aria-label", view.label + " connection table: which input maps each map reads");
    const inputs = Math.max.apply(null, table.map(function (r) { return Math.max.apply(null, r); })) + 1;
    let html = "<tr><th></th>" + table.map(function (_, o) { return "<th>" + o + "</th>"; }).join("") + "</tr>";
    for (let i = 0; i < inputs; i++) {
      html += "<tr><th>" + i + "</th>" + table.map(function (r, o) {
        return "<td data-out=\"" + o + "\" class=\"" + (r.indexOf(i) >= 0 ? "on" : "") + "\"></td>";
      }).join("") + "</tr>";
    }
    t.innerHTML = html;
    view.table = t;
    return t;
  }

  function build(layers) {
    root.textContent = "";
    let hidden = 0;
    views = layers.map(function (l, i) {
      if (l.kind === "linear") hidden++;
      const v = buildLayer(l, i, hidden);
      root.appendChild(v.el);
      return v;
    });
  }

  function update(view, l) {
    view.data = l;
    if (l.values === null) { view.rangeEl.textContent = "values not sent (over the size bound)"; return; }
    const r = range(l.values);
    view.lo = r[0]; view.hi = r[1];
    view.rangeEl.innerHTML = "min <span class=\"min\"></span> · max <span class=\"max\"></span>";
    view.rangeEl.querySelector(".min").textContent = fmt(r[0]);
    view.rangeEl.querySelector(".max").textContent = fmt(r[1]);
    if (view.flat) {
      paint(view.cells[0].canvas, l.values, 0, l.values.length, r[0], r[1]);
      return;
    }
    const per = l.shape[1] * l.shape[2];
    view.cells.forEach(function (c, m) { paint(c.canvas, l.values, m * per, per, r[0], r[1]); });
  }

  // ------------------------------------------------------------------ what a unit reads
  function unitAt(view, m, canvas, ev) {
    const r = canvas.getBoundingClientRect();
    const x = Math.min(canvas.width - 1, Math.max(0, Math.floor((ev.clientX - r.left) / r.width * canvas.width)));
    const y = Math.min(canvas.height - 1, Math.max(0, Math.floor((ev.clientY - r.top) / r.height * canvas.height)));
    if (view.flat) return { index: view.index, u: Math.min(y * view.grid.cols + x, view.data.values ? view.data.values.length - 1 : 0) };
    return { index: view.index, m: m, y: y, x: x };
  }

  function listen(cell, canvas, view, m) {
    canvas.addEventListener("pointermove", function (ev) { setCursor(unitAt(view, m, canvas, ev)); });
    canvas.addEventListener("pointerdown", function (ev) { setCursor(unitAt(view, m, canvas, ev)); });
    cell.addEventListener("pointerleave", function () { setCursor(null); });
    cell.addEventListener("focus", function () {
      const h = view.data.shape[1] || 1, w = view.data.shape[2] || 1;
      setCursor(view.flat ? { index: view.index, u: 0 } : { index: view.index, m: m, y: h >> 1, x: w >> 1 });
    });
    cell.addEventListener("blur", function () { setCursor(null); });
    cell.addEventListener("keydown", function (ev) { key(view, ev); });
  }

  function key(view, ev) {
    const d = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] }[ev.key];
    if (!d || !cursor || cursor.index !== view.index) return;
    ev.preventDefault();
    if (view.flat) {
      const n = view.data.shape.reduce(function (a, b) { return a * b; }, 1);
      const u = cursor.u + d[1] + d[0] * view.grid.cols;
      setCursor({ index: view.index, u: Math.min(n - 1, Math.max(0, u)) });
      return;
    }
    const h = view.data.shape[1], w = view.data.shape[2];
    setCursor({ index: view.index, m: cursor.m, y: Math.min(h - 1, Math.max(0, cursor.y + d[0])),
                x: Math.min(w - 1, Math.max(0, cursor.x + d[1])) });
  }

  function unhighlight() {
    root.querySelectorAll(".src, .active").forEach(function (e) { e.classList.remove("src", "active"); });
    root.querySelectorAll(".win").forEach(function (w) { w.hidden = true; });
    root.querySelectorAll("td.hl, th.hl").forEach(function (e) { e.classList.remove("hl"); });
  }

  function showWindow(prev, maps, reads, y, x) {
    const k = reads.kernel, s = reads.stride, p = reads.padding;
    const top = y * s[0] - p[0], left = x * s[1] - p[1];
    const h = prev.data.shape[1], w = prev.data.shape[2];
    const y0 = Math.max(0, top), x0 = Math.max(0, left);
    const y1 = Math.min(h, top + k[0]), x1 = Math.min(w, left + k[1]);
    maps.forEach(function (m) {
      const c = prev.cells[m];
      if (!c) return;
      c.el.classList.add("src");
      if (prev.flat) return;
      c.win.style.left = (1 + x0 * prev.scale) + "px";
      c.win.style.top = (1 + y0 * prev.scale) + "px";
      c.win.style.width = Math.max(2, (x1 - x0) * prev.scale) + "px";
      c.win.style.height = Math.max(2, (y1 - y0) * prev.scale) + "px";
      c.win.hidden = false;
    });
    return "window rows " + y0 + "–" + (y1 - 1) + ", columns " + x0 + "–" + (x1 - 1);
  }

  function describe(view, at) {
    const l = view.data, vals = l.values || [];
    if (view.flat) return view.label + " unit " + at.u + " = " + fmt(vals[at.u]);
    const per = l.shape[1] * l.shape[2];
    return view.label + " map " + at.m + " (row " + at.y + ", column " + at.x + ") = " +
      fmt(vals[at.m * per + at.y * l.shape[2] + at.x]);
  }

  function setCursor(at) {
    cursor = at;
    unhighlight();
    if (!at || !views[at.index]) { readout.textContent = HINT; return; }
    const view = views[at.index], prev = views[at.index - 1], reads = view.data.reads || {};
    view.cells[view.flat ? 0 : at.m].el.classList.add("active");
    let text = describe(view, at);
    if (!prev) { readout.textContent = text + " · the input reads nothing"; return; }
    if (reads.type === "conv" || reads.type === "pool") {
      const m = view.flat ? at.u : at.m, y = view.flat ? 0 : at.y, x = view.flat ? 0 : at.x;
      const maps = reads.table[m] || [];
      text += " · reads " + prev.label + " map" + (maps.length > 1 ? "s " : " ") + maps.join(", ") +
        ", " + showWindow(prev, maps, reads, y, x);
      if (view.table) view.table.querySelectorAll("[data-out=\"" + m + "\"]").forEach(function (td) { td.classList.add("hl"); });
    } else {
      prev.el.classList.add("src");
      text += " · reads every unit of " + prev.label;
    }
    readout.textContent = text;
  }

  // ------------------------------------------------------------------ the RBF output
  function bitmap(canvas, values, lo, hi) {
    paint(canvas, values, 0, values.length, lo, hi);
  }

  function buildRbf(rbf) {
    rbfEl.innerHTML = "<figure><canvas id=\"f6-bitmap\"></canvas><figcaption></figcaption></figure>" +
      "<figure><canvas id=\"rbf-code\"></canvas><figcaption></figcaption></figure>" +
      "<div><h3>Euclidean distance to each code</h3><ol id=\"rbf-distances\"></ol></div>";
    const h = rbf.shape[0], w = rbf.shape[1];
    const canvases = rbfEl.querySelectorAll("canvas");
    canvases.forEach(function (c) { c.width = w; c.height = h; });
    const list = rbfEl.querySelector("ol");
    rbf.distances.forEach(function (_, d) {
      const li = document.createElement("li");
      li.tabIndex = 0;
      li.dataset.digit = String(d);
      li.addEventListener("pointerenter", function () { showCode(d); });
      li.addEventListener("focus", function () { showCode(d); });
      li.addEventListener("pointerleave", function () { showCode(null); });
      li.addEventListener("blur", function () { showCode(null); });
      list.appendChild(li);
    });
    rbfView = { f6: canvases[0], code: canvases[1], list: list, data: rbf };
  }

  function showCode(d) {
    const rbf = rbfView.data, digit = d === null ? rbf.nearest : d;
    bitmap(rbfView.code, rbf.codes[digit], -1, 1);
    rbfView.code.parentElement.querySelector("figcaption").textContent =
      (d === null ? "nearest code: " : "code of ") + digit + " (distance " + fmt(rbf.distances[digit]) + ")";
  }

  function renderRbf(rbf, layers) {
    if (!rbf) { rbfEl.hidden = true; rbfEl.textContent = ""; rbfView = null; return; }
    if (!rbfView) buildRbf(rbf);
    rbfView.data = rbf;
    rbfEl.hidden = false;
    const features = layers.find(function (l) { return l.name === rbf.features; });
    if (features && features.values) bitmap(rbfView.f6, features.values, -1.7159, 1.7159);
    rbfView.f6.parentElement.querySelector("figcaption").textContent = label(features || { name: rbf.features, kind: "" }, 0) + " as a " + rbf.shape[1] + "×" + rbf.shape[0] + " bitmap";
    rbfView.list.querySelectorAll("li").forEach(function (li, d) {
      li.textContent = d + ": " + fmt(rbf.distances[d]);
      li.classList.toggle("nearest", d === rbf.nearest);
    });
    showCode(null);
  }

  function render(answer) {
    const layers = answer.layers;
    const sig = layers.map(function (l) { return l.name + ":" + l.shape.join("x"); }).join(",");
    if (sig !== signature) { build(layers); signature = sig; }
    layers.forEach(function (l, i) { update(views[i], l); });
    renderRbf(answer.rbf, layers);
    if (cursor) setCursor(cursor);
  }

  function clear() {
    root.textContent = "";
    signature = ""; views = []; cursor = null;
    renderRbf(null, []);
    readout.textContent = HINT;
  }

  window.LenetLayers = { render: render, clear: clear };
})();
