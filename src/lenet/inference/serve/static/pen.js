"use strict";
// A pad to write on with pointer events (mouse, pen, touch), shared by the digit pad (app.js)
// and the number pad (number.js): round black strokes, a pen's pressure widening or thinning
// them, coalesced moves drawn in full. Each page says what happens on each event through the
// hooks (down, move, end), and asks `pad.dirty` whether ink went down since it last cleared it.
window.LenetPen = {
  attach: function (canvas, width, hooks) {
    const ctx = canvas.getContext("2d");
    const state = { dirty: false };
    let drawing = false, last = null;

    function pos(ev) {
      const r = canvas.getBoundingClientRect();
      return { x: (ev.clientX - r.left) * canvas.width / r.width,
               y: (ev.clientY - r.top) * canvas.height / r.height };
    }

    function stroke(a, b, pressure) {
      ctx.strokeStyle = "#000";
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.lineWidth = width * (pressure > 0 && pressure !== 0.5 ? 0.6 + pressure * 0.8 : 1);
      ctx.beginPath();
      ctx.moveTo(a.x, a.y);
      ctx.lineTo(b.x, b.y);
      ctx.stroke();
      state.dirty = true;
    }

    canvas.addEventListener("pointerdown", function (ev) {
      ev.preventDefault();
      canvas.setPointerCapture(ev.pointerId);
      if (hooks.beforeDown) hooks.beforeDown();
      drawing = true;
      last = pos(ev);
      stroke(last, last, ev.pressure);
      if (hooks.down) hooks.down();
    });
    canvas.addEventListener("pointermove", function (ev) {
      if (!drawing) return;
      const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
      for (const e of (events.length ? events : [ev])) {
        const p = pos(e);
        stroke(last, p, e.pressure);
        last = p;
      }
      if (hooks.move) hooks.move();
    });
    function end(ev) {
      if (!drawing) return;
      drawing = false;
      if (canvas.hasPointerCapture(ev.pointerId)) canvas.releasePointerCapture(ev.pointerId);
      if (hooks.end) hooks.end();
    }
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    return state;
  },
};
