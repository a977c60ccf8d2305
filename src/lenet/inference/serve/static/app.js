"use strict";
// The draw-a-digit page. The digit comes from the 280x280 pad (pointer events: mouse, pen,
// touch), an image file (chosen, dropped or pasted) or a camera picture; every change (drawing,
// debounced, or a slider) is one POST to /api/activations, whose answer fills the bar chart, the
// 28x28 input, the preprocessing steps and every layer (layers.js). The sliders' transform is
// applied by the server to the MNIST-style 28x28 digit. An image is sent once; afterwards the
// sliders resend its 28x28 digit as JSON with "preprocess": false. No external assets.
// Without a server (`lenet export --format web` adds model.js, forward.js and mnist.js), the
// same answer is computed in the page instead of by POST /api/activations.
(function () {
  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const statusEl = document.getElementById("status");
  const predEl = document.getElementById("prediction");
  const confEl = document.getElementById("confidence");
  const barsEl = document.getElementById("bars");
  const seen = document.getElementById("seen");
  const stepsEl = document.getElementById("steps");
  const DEBOUNCE_MS = 120;
  const SLIDERS = [  // field, label, min, max, step, neutral, unit
    ["rotate", "Rotation", -90, 90, 1, 0, "°"], ["scale", "Scale", 0.5, 1.5, 0.05, 1, "×"],
    ["shift_x", "Shift x", -8, 8, 1, 0, " px"], ["shift_y", "Shift y", -8, 8, 1, 0, " px"],
    ["squeeze", "Squeeze", 0.6, 1.6, 0.05, 1, "×"], ["shear", "Shear", -0.6, 0.6, 0.05, 0, ""],
    ["stroke", "Stroke width", -1, 2, 1, 0, " px"], ["noise", "Noise", 0, 0.5, 0.02, 0, ""]];
  // source: "pad" (the drawing, sent as PNG), "file" (a Blob, sent once), "digit" (its 28x28).
  let timer = null, seq = 0, classes = [];
  let source = { kind: "pad" };
  const local = window.LENET_MODEL && window.LenetForward && window.LenetMnist
    ? window.LenetForward.load(window.LENET_MODEL) : null;

  function blank() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    pen.dirty = false;
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

  // ------------------------------------------------------------------ sliders
  function makeSliders() {
    const box = document.getElementById("sliders");
    SLIDERS.forEach(function (s) {
      const label = document.createElement("label");
      label.htmlFor = "t-" + s[0];
      label.textContent = s[1];
      const input = document.createElement("input");
      Object.assign(input, { type: "range", id: "t-" + s[0], min: s[2], max: s[3], step: s[4], value: s[5] });
      input.dataset.field = s[0];
      const out = document.createElement("output");
      out.htmlFor = input.id;
      out.id = "v-" + s[0];
      input.addEventListener("input", function () { showSlider(input, out, s); schedule(); });
      showSlider(input, out, s);
      box.append(label, input, out);
    });
  }

  function showSlider(input, out, s) { out.textContent = Number(input.value) + s[6]; }

  function transform() {
    const t = {};
    document.querySelectorAll("#sliders input").forEach(function (i) {
      const s = SLIDERS.find(function (x) { return x[0] === i.dataset.field; });
      if (Number(i.value) !== s[5]) t[s[0]] = Number(i.value);
    });
    return t;
  }

  document.getElementById("reset").addEventListener("click", function () {
    document.querySelectorAll("#sliders input").forEach(function (i, k) {
      i.value = SLIDERS[k][5];
      showSlider(i, document.getElementById("v-" + SLIDERS[k][0]), SLIDERS[k]);
    });
    schedule();
  });

  // ------------------------------------------------------------------ drawing
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(send, DEBOUNCE_MS);
  }

  // Read while drawing (debounced), and at once when the stroke ends.
  const pen = window.LenetPen.attach(pad, 22, {
    beforeDown: function () { if (source.kind !== "pad") { blank(); source = { kind: "pad" }; } },
    down: schedule,
    move: schedule,
    end: function () { clearTimeout(timer); send(); },
  });

  document.getElementById("clear").addEventListener("click", function () {
    seq++;  // drop answers still on their way
    clearTimeout(timer);
    blank();
    source = { kind: "pad" };
    predEl.textContent = "–";
    confEl.textContent = "";
    statusEl.textContent = "";
    barsEl.querySelectorAll(".bar").forEach(function (row) {
      row.classList.remove("top");
      row.querySelector(".fill").style.width = "0";
      row.querySelector(".value").textContent = "0%";
    });
    seen.getContext("2d").clearRect(0, 0, 28, 28);
    stepsEl.textContent = "";
    window.LenetLayers.clear();
    document.body.dataset.state = "cleared";
  });

  // ------------------------------------------------------------------ images: file, drop, paste, camera
  function useImage(blob) {
    if (!blob || !/^image\//.test(blob.type || "image/")) { statusEl.textContent = "not an image"; return; }
    source = { kind: "file", blob: blob };
    // Show it on the pad, fitted, so the page says what is being read.
    createImageBitmap(blob).then(function (bmp) {
      blank();
      const f = Math.min(pad.width / bmp.width, pad.height / bmp.height);
      const w = bmp.width * f, h = bmp.height * f;
      ctx.drawImage(bmp, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    }).catch(function () { blank(); });
    clearTimeout(timer);
    send();
  }

  document.getElementById("file").addEventListener("change", function (ev) {
    if (ev.target.files.length) useImage(ev.target.files[0]);
    ev.target.value = "";
  });
  pad.addEventListener("dragover", function (ev) { ev.preventDefault(); pad.classList.add("dropping"); });
  pad.addEventListener("dragleave", function () { pad.classList.remove("dropping"); });
  pad.addEventListener("drop", function (ev) {
    ev.preventDefault();
    pad.classList.remove("dropping");
    if (ev.dataTransfer && ev.dataTransfer.files.length) useImage(ev.dataTransfer.files[0]);
  });
  document.addEventListener("paste", function (ev) {
    const items = ev.clipboardData ? Array.from(ev.clipboardData.items) : [];
    const item = items.find(function (i) { return i.kind === "file" && /^image\//.test(i.type); });
    if (item) { ev.preventDefault(); useImage(item.getAsFile()); }
  });

  function setupCamera() {
    const btn = document.getElementById("camera"), box = document.getElementById("camera-box");
    const video = document.getElementById("video");
    if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) return;  // stays hidden
    btn.hidden = false;
    function stop() {
      if (video.srcObject) video.srcObject.getTracks().forEach(function (t) { t.stop(); });
      video.srcObject = null;
      box.hidden = true;
    }
    btn.addEventListener("click", function () {
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
        .then(function (stream) { video.srcObject = stream; box.hidden = false; })
        .catch(function (err) { statusEl.textContent = "no camera: " + (err && err.name || err); });
    });
    document.getElementById("snap").addEventListener("click", function () {
      if (!video.videoWidth) return;
      const c = document.createElement("canvas");
      c.width = video.videoWidth; c.height = video.videoHeight;
      c.getContext("2d").drawImage(video, 0, 0);
      c.toBlob(function (blob) { stop(); useImage(blob); }, "image/png");
    });
    document.getElementById("camera-off").addEventListener("click", stop);
  }

  // ------------------------------------------------------------------ the answer
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

  function showSteps(steps) {
    if (!steps || !steps.length) return;  // a JSON digit: the last image's steps still apply
    stepsEl.textContent = "";
    steps.forEach(function (s) {
      const fig = document.createElement("figure");
      const c = document.createElement("canvas");
      c.width = s.width; c.height = s.height;
      drawGray(c, s.pixels, s.width, s.height);
      if (s.box) {
        const g = c.getContext("2d");
        g.strokeStyle = "#f2c200";
        g.strokeRect(s.box[1] + 0.5, s.box[0] + 0.5, s.box[3] - s.box[1] - 1, s.box[2] - s.box[0] - 1);
      }
      const cap = document.createElement("figcaption");
      cap.textContent = s.name;
      fig.append(c, cap);
      stepsEl.appendChild(fig);
    });
  }

  function show(r) {
    predEl.textContent = r.no_digit ? "–" : r.label;
    confEl.textContent = r.no_digit ? "no digit (no ink left)"
      : (100 * r.confidence).toFixed(1) + "% confident" + (r.unsure ? " · unsure" : "");
    if (classes.length !== r.probabilities.length) makeBars(r.classes);
    barsEl.querySelectorAll(".bar").forEach(function (row, i) {
      const p = r.probabilities[i];
      row.classList.toggle("top", i === r.digit);
      row.querySelector(".fill").style.width = (100 * p).toFixed(1) + "%";
      row.querySelector(".value").textContent = (100 * p).toFixed(1) + "%";
    });
    drawGray(seen, r.preprocessed, 28, 28);
    showSteps(r.steps);
    window.LenetLayers.render(r);
    document.body.dataset.state = "predicted";
  }

  function body() {
    const t = transform();
    if (source.kind === "digit") {
      return Promise.resolve(JSON.stringify({ pixels: source.pixels, preprocess: false, transform: t }));
    }
    const blob = source.kind === "file" ? Promise.resolve(source.blob)
      : new Promise(function (resolve) { pad.toBlob(resolve, "image/png"); });
    return blob.then(function (b) {
      const form = new FormData();
      form.append("file", b, "digit.png");
      form.append("transform", JSON.stringify(t));
      return form;
    });
  }

  function send() {
    if (local) { sendLocal(); return; }
    if (source.kind === "pad" && !pen.dirty) return;
    const mine = ++seq, sent = source;
    body().then(function (payload) {
      const headers = typeof payload === "string" ? { "content-type": "application/json" } : {};
      return fetch("/api/activations", { method: "POST", body: payload, headers: headers });
    }).then(function (resp) {
      return resp.json().then(function (b) { return { ok: resp.ok, body: b }; });
    }).then(function (res) {
      if (mine !== seq) return;
      if (!res.ok) {
        statusEl.textContent = typeof res.body.detail === "string" ? res.body.detail.replace(/^upload: /, "") : "error";
        return;
      }
      statusEl.textContent = "";
      // An image is decoded once: the sliders then move its 28x28 digit.
      if (sent.kind === "file" && source === sent) source = { kind: "digit", pixels: res.body.original };
      show(res.body);
    }).catch(function (err) { if (mine === seq) statusEl.textContent = "server unreachable: " + err; });
  }

  // ------------------------------------------------------------------ without a server
  // The MNIST-style digit of the drawing, an image file (averaged down to about 2 megapixels
  // first, as the server does) or the 28x28 digit an image gave: {digit, steps}.
  function localDigit(sent) {
    if (sent.kind === "digit") return Promise.resolve({ digit: sent.pixels, steps: [] });
    const image = sent.kind === "file" ? createImageBitmap(sent.blob) : Promise.resolve(pad);
    return image.then(function (img) {
      let g = ctx, w = pad.width, h = pad.height;
      if (img !== pad) {
        const f = Math.max(1, Math.ceil(Math.sqrt(img.width * img.height / 2e6)));
        const c = document.createElement("canvas");
        w = c.width = Math.ceil(img.width / f);
        h = c.height = Math.ceil(img.height / f);
        g = c.getContext("2d");
        g.drawImage(img, 0, 0, w, h);
      }
      const gray = window.LenetMnist.grayFromImage(g.getImageData(0, 0, w, h).data, w, h);
      return window.LenetMnist.preprocess(gray, w, h);
    });
  }

  function sendLocal() {
    if (source.kind === "pad" && !pen.dirty) return;
    const mine = ++seq, sent = source, t = transform();
    localDigit(sent).then(function (d) {
      if (mine !== seq) return;
      const r = window.LenetForward.run(local, window.LenetMnist.distort(d.digit, t));
      Object.assign(r, { original: Array.from(d.digit), transform: t, steps: d.steps });
      statusEl.textContent = "";
      if (sent.kind === "file" && source === sent) source = { kind: "digit", pixels: r.original };
      show(r);
    }).catch(function (err) { if (mine === seq) statusEl.textContent = String(err && err.message || err); });
  }

  function ready(m, where) {
    const acc = m.accuracy == null ? "" : ", test accuracy " + (100 * m.accuracy).toFixed(2) + "%";
    document.getElementById("model-info").textContent = m.name + " on " + m.dataset + acc + where;
    makeBars(m.classes);
    document.body.dataset.state = "ready";
  }

  if (local) {
    document.body.dataset.mode = "static";
    document.querySelectorAll("[data-server-only]").forEach(function (e) { e.hidden = true; });
    document.querySelectorAll("[data-static-only]").forEach(function (e) { e.hidden = false; });
    const d = local.doc;
    ready({ name: d.model, dataset: d.dataset, accuracy: d.test_accuracy, classes: d.classes },
          " · runs in this page");
  } else {
    fetch("/api/model").then(function (r) { return r.json(); }).then(function (m) { ready(m, ""); })
      .catch(function () { document.getElementById("model-info").textContent = "model info unavailable"; });
  }

  makeSliders();
  setupCamera();
  blank();
})();
