// n wheel events (or right-button mouse moves) on the viewer's first panel, each timed to the next
// animation frame and the end of every panel's drawing (gl.finish on each WebGL context).
// Evaluated by bench_dashboard.py.
(async ([kind, n]) => {
  const state = window.leukotrackViewer;
  const canvas = state.viewers[0].canvas;
  const box = canvas.getBoundingClientRect();
  const x = box.left + box.width / 2, y = box.top + box.height / 2;
  const finish = () => state.viewers.forEach(nv => nv.gl.finish());
  const times = [];
  if (kind === "drag") {
    canvas.dispatchEvent(new MouseEvent("mousedown", {clientX: x, clientY: y, button: 2, buttons: 2, bubbles: true}));
  }
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    if (kind === "wheel") {
      canvas.dispatchEvent(new WheelEvent("wheel", {clientX: x, clientY: y, deltaY: i % 2 ? -100 : 100, bubbles: true, cancelable: true}));
    } else {
      canvas.dispatchEvent(new MouseEvent("mousemove", {clientX: x + i, clientY: y + i, button: 2, buttons: 2, bubbles: true}));
    }
    // NiiVue may draw in the next animation frame: wait for it, then for the GPU (gl.finish)
    await new Promise(r => requestAnimationFrame(r));
    finish();
    times.push(performance.now() - t0);
  }
  if (kind === "drag") {
    canvas.dispatchEvent(new MouseEvent("mouseup", {clientX: x + n, clientY: y + n, button: 2, buttons: 0, bubbles: true}));
  }
  return times;
})
