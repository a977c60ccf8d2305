"use strict";
// A minimal offline renderer of the app's OpenAPI schema: one box per operation.
fetch("/openapi.json").then(function (r) { return r.json(); }).then(function (spec) {
  document.getElementById("title").textContent = spec.info.title + " API " + spec.info.version;
  const ops = document.getElementById("ops");
  ops.textContent = "";
  Object.keys(spec.paths).sort().forEach(function (path) {
    const item = spec.paths[path];
    Object.keys(item).forEach(function (method) {
      const op = item[method];
      const box = document.createElement("div");
      box.className = "op";
      const head = document.createElement("div");
      head.innerHTML = '<span class="method"></span> <code></code> <strong></strong>';
      head.querySelector(".method").textContent = method;
      head.querySelector("code").textContent = path;
      head.querySelector("strong").textContent = op.summary || "";
      box.appendChild(head);
      if (op.description) {
        const p = document.createElement("p");
        p.textContent = op.description;
        box.appendChild(p);
      }
      const pre = document.createElement("pre");
      pre.textContent = "responses: " + JSON.stringify(op.responses, null, 1);
      box.appendChild(pre);
      ops.appendChild(box);
    });
  });
}).catch(function (e) { document.getElementById("ops").textContent = "cannot load /openapi.json: " + e; });
