/* leukotrack's linked viewer: one NiiVue (WebGL) canvas per panel, sessions in rows and sequences in
 * columns, every panel on the same baseline grid, crosshair / slice / zoom broadcast between all of
 * them in the browser (no server round trip). Talks to Streamlit with its component messages
 * (componentReady, render, setFrameHeight, setComponentValue): no framework, no build step.
 */
"use strict";

const Streamlit = {
  send(type, data) {
    window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type }, data || {}), "*");
  },
  ready() { this.send("streamlit:componentReady", { apiVersion: 1 }); },
  height(px) { this.send("streamlit:setFrameHeight", { height: px }); },
  value(value) { this.send("streamlit:setComponentValue", { value, dataType: "json" }); },
};

const NV = window.niivue;
const PLANES = { axial: 0, coronal: 1, sagittal: 2, multiplanar: 3 };
const MODES = {
  "W/L": NV.DRAG_MODE.contrast,
  "Pan/zoom": NV.DRAG_MODE.pan,
  "Ruler": NV.DRAG_MODE.measurement,
  "ROI": NV.DRAG_MODE.roiSelection,
};

const state = { signature: null, viewers: [], panels: [], focus: 0, plane: "axial", mode: "W/L" };
window.leukotrackViewer = state; // for the end-to-end tests and the benchmark

function status(text) { document.getElementById("status").textContent = text; }

function fmt(value, digits) {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

function readout(panel, data) {
  const mm = data.mm || [NaN, NaN, NaN];
  const where = `x ${fmt(mm[0], 1)}, y ${fmt(mm[1], 1)}, z ${fmt(mm[2], 1)} mm`;
  const first = data.values && data.values.length ? data.values[0] : null;
  const value = first && Number.isFinite(first.value) ? first.value : NaN;
  const lesion = (data.values || []).slice(1).some((v) => v && v.value > 0) ? " · lesion" : "";
  return `${panel.title}: ${fmt(value, panel.digits)} ${panel.unit} at ${where}${lesion}`;
}

const MODE_HELP = {
  "W/L": "right-drag: window / level",
  "Pan/zoom": "right-drag: pan; wheel: zoom (every panel follows)",
  "Ruler": "right-drag: distance in mm",
  "ROI": "right-drag a box: mean, SD and voxel count of the image inside it",
};

// One row of toggle buttons: one per name, the chosen one lit, data-<attribute> = its name.
function buttons(groupId, attribute, names, chosen, choose, help) {
  const group = document.getElementById(groupId);
  group.replaceChildren();
  for (const name of names) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = name;
    button.dataset[attribute] = name;
    button.className = name === chosen ? "on" : "";
    if (help && help[name]) button.title = help[name];
    button.onclick = () => choose(name);
    group.appendChild(button);
  }
}

function toolbar(args) {
  buttons("planes", "plane", Object.keys(PLANES), state.plane, setPlane);
  buttons("modes", "mode", Object.keys(MODES), state.mode, setMode, MODE_HELP);
  document.getElementById("match").onclick = matchWindows;
  document.getElementById("reset").onclick = () => reset(args);
}

function mark(groupId, attribute, chosen) {
  for (const button of document.getElementById(groupId).children) {
    button.className = button.dataset[attribute] === chosen ? "on" : "";
  }
}

function setPlane(name) {
  state.plane = name;
  mark("planes", "plane", name);
  for (const nv of state.viewers) {
    gradients(nv, name === "multiplanar");
    nv.setSliceType(PLANES[name]);
  }
}

// NiiVue 0.69 computes a 3-D gradient texture (a blur and two Sobel passes over the whole volume)
// at every load and window change, for its 3-D render alone. Slices never use it, and in software
// WebGL it is most of a panel's first render and of a window/level step (measured: 17.1 -> 9.5 s
// for 12 panels with sliceType set at construction; W/L 430 -> 210 ms). So the passes run a
// trivial program except in the multiplanar view, whose fourth tile is the 3-D render.
const TRIVIAL = new WeakMap();
const GRADIENT_SHADERS = ["blurShader", "sobelFirstOrderShader", "gradientPrePassShader", "sobelSecondOrderShader"];

function trivialProgram(gl) {
  if (TRIVIAL.has(gl)) return TRIVIAL.get(gl);
  const sources = [
    [gl.VERTEX_SHADER, "#version 300 es\nlayout(location=0) in vec3 pos;\nvoid main(){ gl_Position = vec4(pos.xy*2.0-1.0, 0.0, 1.0); }"],
    [gl.FRAGMENT_SHADER, "#version 300 es\nprecision highp float; out vec4 color; void main(){ color = vec4(0.0); }"],
  ];
  const program = gl.createProgram();
  for (const [type, source] of sources) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    gl.attachShader(program, shader);
  }
  gl.linkProgram(program);
  const trivial = { program, uniforms: {}, use(g) { g.useProgram(program); } };
  TRIVIAL.set(gl, trivial);
  return trivial;
}

function gradients(nv, on) {
  if (!nv.gl || !GRADIENT_SHADERS.every((name) => nv[name])) return; // another NiiVue: leave it
  if (!nv.ownGradientShaders) nv.ownGradientShaders = GRADIENT_SHADERS.map((name) => nv[name]);
  const trivial = trivialProgram(nv.gl);
  GRADIENT_SHADERS.forEach((name, n) => { nv[name] = on ? nv.ownGradientShaders[n] : trivial; });
  state.gradients = on;
  if (on && nv.volumes.length) nv.updateGLVolume();
}

function setMode(name) {
  state.mode = name;
  mark("modes", "mode", name);
  for (const nv of state.viewers) nv.opts.dragMode = MODES[name];
}

function matchWindows() {
  const source = state.panels[state.focus];
  const volume = state.viewers[state.focus].volumes[0];
  state.viewers.forEach((nv, i) => {
    if (state.panels[i].group !== source.group || i === state.focus) return;
    nv.volumes[0].cal_min = volume.cal_min;
    nv.volumes[0].cal_max = volume.cal_max;
    nv.updateGLVolume();
  });
  status(`${source.group}: every session at ${fmt(volume.cal_min, 0)}-${fmt(volume.cal_max, 0)} ${source.unit}`);
}

function reset(args) {
  state.viewers.forEach((nv, i) => {
    const panel = state.panels[i];
    nv.volumes[0].cal_min = panel.window[0];
    nv.volumes[0].cal_max = panel.window[1];
    nv.setPan2Dxyzmm([0, 0, 0, 1]);
    nv.updateGLVolume();
  });
  moveTo(args.position_mm);
}

function moveTo(mm) {
  if (!mm) return;
  for (const nv of state.viewers) {
    if (!nv.volumes.length) continue;
    nv.scene.crosshairPos = nv.mm2frac(mm);
    nv.drawScene();
  }
}

// The clicked point (baseline mm) and its panel, for the correction tools on the page.
function pick(i) {
  const nv = state.viewers[i];
  const panel = state.panels[i];
  if (!nv || !nv.volumes.length) return;
  const mm = Array.from(nv.frac2mm(nv.scene.crosshairPos)).slice(0, 3).map((v) => Math.round(v * 100) / 100);
  state.picked = { mm, panel: panel.id, at: Date.now() };
  Streamlit.value(state.picked);
}

function roiStatistics(i, params) {
  const nv = state.viewers[i];
  const panel = state.panels[i];
  if (state.mode !== "ROI" || !params || !params.voxStart) return;
  const d = nv.getDescriptives({
    layer: 0, masks: [], drawingIsMask: false, roiIsMask: true,
    startVox: params.voxStart, endVox: params.voxEnd,
  });
  const text = `${panel.title} ROI: mean ${fmt(d.mean, panel.digits)} ± ${fmt(d.sd, panel.digits)} ${panel.unit}, ${d.nvox} voxels`;
  state.lastRoi = { panel: panel.id, mean: d.mean, sd: d.sd, nvox: d.nvox };
  status(text);
}

function layout(args) {
  const grid = document.getElementById("grid");
  grid.replaceChildren();
  grid.style.gridTemplateColumns = `minmax(7em, max-content) repeat(${args.columns.length}, 1fr)`;
  const canvases = [];
  grid.appendChild(document.createElement("div"));
  for (const column of args.columns) {
    const head = document.createElement("div");
    head.className = "colhead";
    head.textContent = column;
    grid.appendChild(head);
  }
  for (const row of args.rows) {
    const label = document.createElement("div");
    label.className = "rowlabel";
    label.innerText = row.label;
    grid.appendChild(label);
    for (const column of args.columns) {
      const cell = document.createElement("div");
      cell.className = "cell";
      cell.style.height = `${args.panel_px}px`;
      const panel = args.panels.find((p) => p.row === row.id && p.column === column);
      if (!panel) {
        cell.classList.add("empty");
        cell.textContent = `no ${column}`;
        grid.appendChild(cell);
        continue;
      }
      const title = document.createElement("div");
      title.className = "paneltitle";
      title.textContent = panel.caption;
      const canvas = document.createElement("canvas");
      canvas.dataset.panel = panel.id;
      cell.append(canvas, title);
      grid.appendChild(cell);
      canvases.push([panel, canvas]);
    }
  }
  return canvases;
}

async function build(args) {
  for (const nv of state.viewers) {
    try { nv.gl && nv.gl.getExtension("WEBGL_lose_context")?.loseContext(); } catch (e) { /* gone */ }
  }
  state.viewers = [];
  state.panels = [];
  state.plane = args.plane || "axial";
  toolbar(args);
  const canvases = layout(args);
  Streamlit.height(document.body.scrollHeight + 8);
  const started = performance.now();
  await Promise.all(canvases.map(async ([panel, canvas], i) => {
    const nv = new NV.Niivue({
      isOrientationTextVisible: true,
      isRadiologicalConvention: args.radiological,
      isColorbar: true,
      show3Dcrosshair: false,
      crosshairWidth: 1,
      crosshairGap: 6,
      crosshairColor: [1, 0.85, 0, 0.8],
      backColor: [0, 0, 0, 1],
      textHeight: 0.05,
      dragMode: MODES[state.mode],
      isResizeCanvas: true,
      sliceType: PLANES[state.plane], // drawn in its plane from the first frame (no 3-D tile)
      multiplanarForceRender: false,
      logLevel: "error",
    });
    state.viewers[i] = nv;
    state.panels[i] = panel;
    await nv.attachToCanvas(canvas);
    gradients(nv, state.plane === "multiplanar");
    const volumes = [{
      url: panel.url, name: panel.name, colormap: "gray",
      cal_min: panel.window[0], cal_max: panel.window[1],
    }];
    for (const overlay of panel.overlays) volumes.push(overlayVolume(overlay));
    await nv.loadVolumes(volumes);
    nv.setSliceType(PLANES[state.plane]);
    nv.setInterpolation(true); // nearest neighbour: voxels as acquired (resampled once, linearly)
    // every linked panel reports the new location: read out the one under the reader's hand
    nv.onLocationChange = (data) => { if (i === state.focus) status(readout(panel, data)); };
    nv.onDragRelease = (params) => roiStatistics(i, params);
    for (const type of ["pointerdown", "wheel"]) {
      canvas.addEventListener(type, () => { state.focus = i; }, { capture: true, passive: true });
    }
    // a left click picks a point for the correction tools (sent to Python; slices never are)
    canvas.addEventListener("pointerup", (event) => {
      if (event.button !== 0) return;
      setTimeout(() => pick(i), 30);
    }, { passive: true });
  }));
  const viewers = state.viewers.filter(Boolean);
  viewers.forEach((nv) => nv.broadcastTo(viewers.filter((other) => other !== nv), { "2d": true, "3d": true }));
  moveTo(args.position_mm);
  for (const nv of viewers) { // wait for the GPU (software) to have drawn: read one pixel back
    nv.drawScene();
    nv.gl.readPixels(0, 0, 1, 1, nv.gl.RGBA, nv.gl.UNSIGNED_BYTE, new Uint8Array(4));
  }
  state.firstRenderMs = performance.now() - started;
  document.body.dataset.ready = "1";
  Streamlit.height(document.body.scrollHeight + 8);
}

// What needs a rebuild: the panels, their images and the grid. Lesion overlays, captions and row
// labels (a reader's correction) are changed in place, without reloading any image.
function shape(args) {
  return JSON.stringify([
    args.panels.map((p) => [p.id, p.row, p.column, p.url, p.window, p.unit, p.group]),
    args.rows.map((r) => r.id), args.columns, args.panel_px, args.outline,
  ]);
}

// One colour per overlay (the report's and the static images' colours, sent from Python): a two-entry
// colour map from transparent black to that colour, registered once (NiiVue's registry is global).
function colormap(rgb) {
  const name = `leukotrack_${rgb.join("_")}`;
  if (!NV.cmapper || !NV.cmapper.colormaps().includes(name)) {
    const map = { R: [0, rgb[0]], G: [0, rgb[1]], B: [0, rgb[2]], A: [0, 255], I: [0, 255] };
    if (NV.cmapper) NV.cmapper.addColormap(name, map);
    else if (state.viewers[0]) state.viewers[0].addColormap(name, map);
  }
  return name;
}

function overlayVolume(overlay) {
  return {
    url: overlay.url, name: overlay.name, colormap: overlay.rgb ? colormap(overlay.rgb) : overlay.colormap,
    opacity: overlay.opacity, cal_min: overlay.cal_min, cal_max: overlay.cal_max,
    colorbarVisible: false,
  };
}

async function refresh(args) {
  const started = performance.now();
  const labels = document.querySelectorAll(".rowlabel");
  args.rows.forEach((row, n) => { if (labels[n]) labels[n].innerText = row.label; });
  await Promise.all(args.panels.map(async (panel) => {
    const i = state.panels.findIndex((p) => p && p.id === panel.id);
    const nv = state.viewers[i];
    if (i < 0 || !nv) return;
    const canvas = document.querySelector(`canvas[data-panel="${CSS.escape(panel.id)}"]`);
    const title = canvas && canvas.parentElement.querySelector(".paneltitle");
    if (title) title.textContent = panel.caption;
    const before = JSON.stringify(state.panels[i].overlays);
    state.panels[i] = panel;
    if (before === JSON.stringify(panel.overlays)) return;
    // fetch and decode first, then swap the overlay layers and upload once (NiiVue's remove and
    // add would each redo the whole volume's GPU passes)
    const images = await Promise.all(
      panel.overlays.map((overlay) => NV.NVImage.loadFromUrl(overlayVolume(overlay))),
    );
    nv.volumes = [nv.volumes[0], ...images];
    nv.back = nv.volumes[0];
    nv.overlays = nv.volumes.slice(1);
    nv.updateGLVolume();
    nv.drawScene();
  }));
  state.lastRefreshMs = performance.now() - started;
  state.refreshes = (state.refreshes || 0) + 1;
  document.body.dataset.refreshes = String(state.refreshes);
}

let pending = Promise.resolve();
window.addEventListener("message", (event) => {
  if (!event.data || event.data.type !== "streamlit:render") return;
  const args = event.data.args;
  const signature = JSON.stringify([args.panels, args.rows, args.columns, args.panel_px, args.outline]);
  if (signature === state.signature) {
    if (args.plane && args.plane !== state.plane) setPlane(args.plane);
    return;
  }
  state.signature = signature;
  if (state.shape === shape(args) && state.viewers.length) {
    pending = pending.then(() => refresh(args)).catch((error) => status(`${error}`));
    return;
  }
  state.shape = shape(args);
  document.body.dataset.ready = "0";
  pending = pending.then(() => build(args)).catch((error) => {
    status(`The viewer could not start: ${error}. It needs WebGL 2 in the browser.`);
    document.body.dataset.ready = "error";
  });
});
window.addEventListener("resize", () => Streamlit.height(document.body.scrollHeight + 8));
Streamlit.ready();
