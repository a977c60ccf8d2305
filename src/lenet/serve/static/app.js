"use strict";
// The draw-a-digit page: pointer events (mouse, pen, touch) on a 280x280 canvas; while drawing,
// a debounced POST of the canvas as PNG to /api/predict; the answer fills the bar chart, the
// 28x28 input and the first convolution's feature maps. No external assets.
(function () {
  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const statusEl = document.getElementById("status");
  const predEl = document.getElementById("prediction");
  const confEl = document.getElementById("confidence");
  const barsEl = document.getElementById("bars");
  const seen = document.getElementById("seen");
  const mapsEl = document.getElementById("maps");
  const DEBOUNCE_MS = 120;
  let drawing = false, last = null, timer = null, seq = 0, dirty = false, classes = [];

  function blank() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    dirty = false;
  }

  function makeBars(names) {
    classes = names;
    barsEl.textContent = "";
    names.forEach(function (name, i) {
      const row = document.createElement("div");
      row.className = "bar";
      row.dataset.index = String(i);
      row.innerHTML = '<span class="label"></span><span class="track"><span class="fill"></span></span><span class="value">0%</span>';
      row.querySelector(".label").textContent = name;
      barsEl.appendChild(row);
    });
  }

  function pos(ev) {
    const r = pad.getBoundingClientRect();
    return { x: (ev.clientX - r.left) * pad.width / r.width, y: (ev.clientY - r.top) * pad.height / r.height };
  }

  function stroke(a, b, pressure) {
    ctx.strokeStyle = "#000";
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = 22 * (pressure > 0 && pressure !== 0.5 ? 0.6 + pressure * 0.8 : 1);
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
    dirty = true;
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(predict, DEBOUNCE_MS);
  }

  pad.addEventListener("pointerdown", function (ev) {
    ev.preventDefault();
    pad.setPointerCapture(ev.pointerId);
    drawing = true;
    last = pos(ev);
    stroke(last, last, ev.pressure);
    schedule();
  });
  pad.addEventListener("pointermove", function (ev) {
    if (!drawing) return;
    const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
    for (const e of (events.length ? events : [ev])) {
      const p = pos(e);
      stroke(last, p, e.pressure);
      last = p;
    }
    schedule();
  });
  function end(ev) {
    if (!drawing) return;
    drawing = false;
    if (pad.hasPointerCapture(ev.pointerId)) pad.releasePointerCapture(ev.pointerId);
    clearTimeout(timer);
    predict();
  }
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);

  document.getElementById("clear").addEventListener("click", function () {
    seq++;  // drop answers still on their way
    clearTimeout(timer);
    blank();
    predEl.textContent = "–";
    confEl.textContent = "";
    statusEl.textContent = "";
    barsEl.querySelectorAll(".bar").forEach(function (row) {
      row.classList.remove("top");
      row.querySelector(".fill").style.width = "0";
      row.querySelector(".value").textContent = "0%";
    });
    seen.getContext("2d").clearRect(0, 0, 28, 28);
    mapsEl.textContent = "";
    document.body.dataset.state = "cleared";
  });

  function drawGray(canvas, values, w, h) {
    const c = canvas.getContext("2d");
    const img = c.createImageData(w, h);
    for (let i = 0; i < w * h; i++) {
      const v = values[i];
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    c.putImageData(img, 0, 0);
  }

  function show(r) {
    predEl.textContent = r.label;
    confEl.textContent = (100 * r.confidence).toFixed(1) + "% confident";
    if (classes.length !== r.probabilities.length) makeBars(r.classes);
    barsEl.querySelectorAll(".bar").forEach(function (row, i) {
      const p = r.probabilities[i];
      row.classList.toggle("top", i === r.digit);
      row.querySelector(".fill").style.width = (100 * p).toFixed(1) + "%";
      row.querySelector(".value").textContent = (100 * p).toFixed(1) + "%";
    });
    drawGray(seen, r.preprocessed, 28, 28);
    mapsEl.textContent = "";
    const fm = r.feature_maps;
    document.getElementById("maps-title").textContent = fm ? "First convolution (" + fm.layer + ")" : "No convolution in this model";
    if (fm) {
      const h = fm.shape[1], w = fm.shape[2];
      fm.maps.forEach(function (m, i) {
        const c = document.createElement("canvas");
        c.width = w; c.height = h;
        c.title = fm.layer + " map " + i;
        drawGray(c, m, w, h);
        mapsEl.appendChild(c);
      });
    }
    document.body.dataset.state = "predicted";
  }

  function predict() {
    if (!dirty) return;
    const mine = ++seq;
    pad.toBlob(function (blob) {
      const form = new FormData();
      form.append("file", blob, "digit.png");
      fetch("/api/predict", { method: "POST", body: form })
        .then(function (resp) { return resp.json().then(function (body) { return { ok: resp.ok, body: body }; }); })
        .then(function (res) {
          if (mine !== seq) return;
          if (res.ok) { statusEl.textContent = ""; show(res.body); }
          else { statusEl.textContent = typeof res.body.detail === "string" ? res.body.detail.replace(/^upload: /, "") : "error"; }
        })
        .catch(function (err) { if (mine === seq) statusEl.textContent = "server unreachable: " + err; });
    }, "image/png");
  }

  fetch("/api/model").then(function (r) { return r.json(); }).then(function (m) {
    const acc = m.accuracy == null ? "" : ", test accuracy " + (100 * m.accuracy).toFixed(2) + "%";
    document.getElementById("model-info").textContent = m.name + " on " + m.dataset + acc;
    makeBars(m.classes);
    document.body.dataset.state = "ready";
  }).catch(function () { document.getElementById("model-info").textContent = "model info unavailable"; });

  blank();
})();
