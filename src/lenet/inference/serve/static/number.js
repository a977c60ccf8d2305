"use strict";
// The page's number mode: write a number on the wide pad (pointer events: mouse, pen, touch);
// each stroke (debounced) is read by POST /api/read, or, in the page `lenet export --format
// web` writes, by read.js and the reader in reader.js (no server). The answer is shown with the
// reader's output columns drawn as the 1998 paper's Figs. 25-26 draw them: the normalized strip
// the reader saw, under it each output column's top class and its probability, the twelve
// classes' probabilities per column (a heatmap) with the Viterbi path outlined, and the answer,
// each character under the columns it was read from. The digit mode (app.js) is left as it is.
// The last answer is kept as window.lenetNumber (the browser tests read it).
(function () {
  const pad = document.getElementById("wide");
  if (!pad) return;
  const ctx = pad.getContext("2d");
  const fig = document.getElementById("columns");
  const textEl = document.getElementById("number-text");
  const confEl = document.getElementById("number-confidence");
  const statusEl = document.getElementById("number-status");
  const patternEl = document.getElementById("pattern");
  const DEBOUNCE_MS = 250, PEN = 14;
  const local = window.LENET_READER && window.LenetRead && window.LenetForward
    ? window.LenetRead.load(window.LENET_READER) : null;
  let timer = null, seq = 0;

  // ------------------------------------------------------------------ modes
  function setMode(mode) {
    const number = mode === "number";
    document.querySelectorAll("[data-digit-mode]").forEach(function (e) { e.hidden = number; });
    document.getElementById("number-mode").hidden = !number;
    document.getElementById("mode-digit").setAttribute("aria-pressed", String(!number));
    document.getElementById("mode-number").setAttribute("aria-pressed", String(number));
    document.body.dataset.view = mode;
  }
  document.getElementById("mode-digit").addEventListener("click", function () { setMode("digit"); });
  document.getElementById("mode-number").addEventListener("click", function () { setMode("number"); });
  const serverless = window.LENET_MODEL !== undefined;
  if (serverless && !local) document.getElementById("mode-number").hidden = true;  // no reader
  setMode(location.hash === "#number" && !document.getElementById("mode-number").hidden
    ? "number" : "digit");

  // ------------------------------------------------------------------ drawing
  function blank() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    pen.dirty = false;
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(read, DEBOUNCE_MS);
  }

  // Read once the stroke ends, not in the middle of it.
  const pen = window.LenetPen.attach(pad, PEN, {
    down: function () { clearTimeout(timer); },
    end: schedule,
  });
  patternEl.addEventListener("change", function () { if (pen.dirty) schedule(); });

  document.getElementById("wide-clear").addEventListener("click", function () {
    seq++;  // drop answers still on their way
    clearTimeout(timer);
    blank();
    textEl.textContent = "–";
    confEl.textContent = statusEl.textContent = "";
    fig.width = fig.height = 0;
    shown = null;
    readout.textContent = "";
    window.lenetNumber = null;
    document.body.dataset.number = "cleared";
  });

  // ------------------------------------------------------------------ reading
  function read() {
    if (!pen.dirty) return;
    const mine = ++seq, pattern = patternEl.value;
    document.body.dataset.number = "reading";
    const answer = local ? readHere(pattern) : readOnServer(pattern);
    answer.then(function (r) {
      if (mine !== seq) return;
      statusEl.textContent = "";
      show(r);
    }).catch(function (err) {
      if (mine !== seq) return;
      statusEl.textContent = String(err && err.message || err).replace(/^upload: /, "");
      document.body.dataset.number = "failed";
    });
  }

  function readOnServer(pattern) {
    return new Promise(function (resolve) { pad.toBlob(resolve, "image/png"); }).then(function (b) {
      const form = new FormData();
      form.append("file", b, "number.png");
      if (pattern) form.append("pattern", pattern);
      return fetch("/api/read", { method: "POST", body: form });
    }).then(function (resp) {
      return resp.json().then(function (body) {
        if (!resp.ok) throw new Error(typeof body.detail === "string" ? body.detail : "error " + resp.status);
        return body;
      });
    });
  }

  function readHere(pattern) {
    return new Promise(function (resolve) {
      const data = ctx.getImageData(0, 0, pad.width, pad.height).data;
      const gray = window.LenetMnist.grayFromImage(data, pad.width, pad.height);
      resolve(window.LenetRead.read(local, gray, pad.width, pad.height, pattern ? { pattern: pattern } : {}));
    });
  }

  // ------------------------------------------------------------------ the answer, as Figs. 25-26
  const GUTTER = 28, TOP_ROW = 18, CELL = 11, ANSWER_ROW = 26;
  const readout = document.getElementById("columns-readout");
  let shown = null;
  let K = 3;  // figure px per strip px: 3 to 6, so that a short number is not drawn tiny

  function show(r) {
    textEl.textContent = r.text === "" ? "(nothing)" : r.text;
    confEl.textContent = (100 * r.confidence).toFixed(1) + "% confident" + (r.rejected ? " · unsure (rejected)" : "");
    textEl.classList.toggle("rejected", !!r.rejected);
    drawFigure(r);
    shown = r;
    readout.textContent = "";
    window.lenetNumber = r;
    document.body.dataset.number = "read";
  }

  function heat(p) {  // white (0) to deep blue (1)
    const v = Math.round(255 * (1 - p));
    return "rgb(" + v + "," + Math.round(255 - 0.6 * (255 - v)) + ",255)";
  }

  // Each character's columns [t0, t1) on a path: a run of one non-blank class (CTC's rule:
  // a blank between two equal classes makes them two characters).
  function spans(path, blank) {
    const out = [];
    for (let t = 0; t < path.length; t++) {
      if (path[t] === blank) continue;
      if (t > 0 && path[t - 1] === path[t]) out[out.length - 1][1] = t + 1;
      else out.push([t, t + 1]);
    }
    return out;
  }

  function drawFigure(r) {
    const strip = r.strip, cols = r.columns || [], path = r.path || [], n = cols.length;
    if (!strip) { fig.width = fig.height = 0; return; }
    const classes = r.classes, rows = classes.length, w = strip.width;
    K = Math.max(3, Math.min(6, Math.floor(1050 / Math.max(w, 1))));
    const heatTop = 28 * K + TOP_ROW, answerTop = heatTop + rows * CELL + 4;
    fig.width = GUTTER + w * K;
    fig.height = answerTop + ANSWER_ROW;
    const g = fig.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, fig.width, fig.height);
    const img = g.createImageData(w, 28);  // the strip, white ink on black, K times larger
    for (let i = 0; i < w * 28; i++) {
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = strip.pixels[i];
      img.data[4 * i + 3] = 255;
    }
    const c = document.createElement("canvas");
    c.width = w; c.height = 28;
    c.getContext("2d").putImageData(img, 0, 0);
    g.imageSmoothingEnabled = false;
    g.drawImage(c, GUTTER, 0, w * K, 28 * K);
    g.font = "11px system-ui, sans-serif";
    g.textAlign = "right";
    g.textBaseline = "middle";
    g.fillStyle = "#333";
    g.fillText("top", GUTTER - 3, 28 * K + TOP_ROW / 2);
    classes.forEach(function (name, k) {
      g.fillText(name === "none" ? "–" : name, GUTTER - 3, heatTop + (k + 0.5) * CELL);
    });
    g.textAlign = "center";
    const cw = r.stride * K;
    for (let t = 0; t < n; t++) {
      const x = GUTTER + (r.centres[t] - r.stride / 2) * K;
      let best = 0;
      for (let k = 0; k < rows; k++) {
        const p = cols[t][k];
        if (p > cols[t][best]) best = k;
        g.fillStyle = heat(p);
        g.fillRect(x, heatTop + k * CELL, cw, CELL);
      }
      const p = cols[t][best];  // the column's top class, as dark as it is probable
      g.fillStyle = "rgba(20,20,20," + (0.25 + 0.75 * p).toFixed(2) + ")";
      g.fillText(classes[best] === "none" ? "·" : classes[best], x + cw / 2, 28 * K + TOP_ROW / 2);
      if (t < path.length) {  // the Viterbi path
        g.strokeStyle = "#d6573b";
        g.lineWidth = 2;
        g.strokeRect(x + 1, heatTop + path[t] * CELL + 1, cw - 2, CELL - 2);
      }
    }
    g.font = "bold 18px system-ui, sans-serif";
    g.fillStyle = "#1d1d1f";
    spans(path, rows - 1).forEach(function (s, i) {
      const mid = (r.centres[s[0]] + r.centres[s[1] - 1]) / 2;
      g.fillText(r.text[i] || "", GUTTER + mid * K, answerTop + ANSWER_ROW / 2);
    });
  }

  // Pointing at a column says its top class and probability, and the path's class there.
  fig.addEventListener("pointermove", function (ev) {
    if (!shown || !shown.columns) return;
    const box = fig.getBoundingClientRect(), x = (ev.clientX - box.left) * fig.width / box.width;
    const at = (x - GUTTER) / K, n = shown.columns.length;
    const t = Math.min(n - 1, Math.max(0, Math.round((at - shown.centres[0]) / shown.stride)));
    const col = shown.columns[t], name = function (k) { return shown.classes[k] === "none" ? "none" : "'" + shown.classes[k] + "'"; };
    let best = 0;
    for (let k = 1; k < col.length; k++) if (col[k] > col[best]) best = k;
    readout.textContent = "column " + t + " (centred at x = " + shown.centres[t] + " px of the line): top " +
      name(best) + " " + (100 * col[best]).toFixed(1) + "%, the path reads " + name(shown.path[t]);
  });

  blank();
})();
