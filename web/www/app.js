// The page's controller: loads the wasm module, picks WebGPU or the CPU fallback, checks the form,
// and drives training a tick at a time (enqueue a few steps, await one loss read-back, evaluate
// every `eval_every` steps, redraw). `window.stdeState` is the page's own record of the run, which
// the end-to-end test reads.

import init, { Session } from './pkg/stde_web.js';
import { drawLogChart, drawHeatmap, fmt } from './plots.js';

const FIELDS = ['equation', 'dim', 'seed', 'rand_dims', 'width', 'depth', 'steps', 'lr', 'batch',
  'eval_every', 'test_points'];
/** The error the page aims for (drawn as a reference line). */
const TARGET_ERROR = 5e-2;
/** A tick aims to take about this long (milliseconds), so that the page stays responsive. */
const TICK_MS = 400;
/** The first steps run one per tick, so that their losses are all recorded. */
const SINGLE_STEPS = 10;
/** Loss readings a WebGPU run aims to plot at least (a reading ends a tick). */
const CURVE_POINTS = 100;

const $ = (id) => document.getElementById(id);

const state = {
  ready: false,
  backend: null, // 'webgpu' | 'cpu'
  adapter: null,
  fallbackReason: null,
  status: 'loading', // loading | idle | running | paused | finished | error
  error: null,
  errorKind: null,
  fieldError: null,
  config: null,
  step: 0,
  steps: 0,
  losses: [], // [step, loss]
  evals: [], // [step, rel_l2, rel_l1, elapsed seconds]
  stepsPerSecond: 0,
  recentStepsPerSecond: 0,
  elapsed: 0, // seconds spent running (pauses excluded)
  slice: null,
  sliceStep: null,
  ticks: 0,
  timing: {}, // milliseconds of the latest tick, evaluation and heatmap refresh
};
window.stdeState = state;

let session = null;
let loop = null; // the running loop's promise
let runningSince = 0;
let elapsedBefore = 0;
let stepsPerTick = 1;
let drawPending = false;

function elapsedNow() {
  return elapsedBefore + (state.status === 'running' ? (performance.now() - runningSince) / 1000 : 0);
}

function readForm() {
  const f = {};
  for (const id of FIELDS) f[id] = $(id).value;
  return f;
}

function showFieldError(err) {
  for (const el of document.querySelectorAll('.err')) el.textContent = '';
  for (const id of FIELDS) $(id).classList.remove('invalid');
  state.fieldError = err;
  if (err) {
    const box = document.querySelector(`.err[data-for="${err.field}"]`);
    if (box) box.textContent = err.message;
    $(err.field)?.classList.add('invalid');
  }
}

function checkForm() {
  const err = JSON.parse(Session.check(JSON.stringify(readForm())));
  showFieldError(err);
  updateButtons();
  return err;
}

function updateButtons() {
  const s = state.status;
  const lost = state.errorKind === 'DeviceLost';
  $('start').disabled = !state.ready || lost || s === 'running' || s === 'paused' || !!state.fieldError;
  $('pause').disabled = !(s === 'running' || s === 'paused');
  $('pause').textContent = s === 'paused' ? 'Resume' : 'Pause';
  $('reset').disabled = !state.ready || s === 'loading';
  for (const id of FIELDS) $(id).disabled = s === 'running' || s === 'paused';
}

function setStatus(s) {
  state.status = s;
  updateButtons();
  scheduleDraw();
}

function banner(text) {
  $('banner').hidden = !text;
  $('banner').textContent = text || '';
}

function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    draw();
  });
}

function draw() {
  const s = state;
  s.elapsed = elapsedNow();
  $('s-status').textContent = s.status;
  $('s-step').textContent = s.config ? `${s.step} / ${s.steps}` : '–';
  $('s-speed').textContent = s.step > 0
    ? `${s.recentStepsPerSecond.toFixed(1)} steps/s (mean ${s.stepsPerSecond.toFixed(1)})` : '–';
  $('s-elapsed').textContent = s.config ? `${s.elapsed.toFixed(1)} s` : '–';
  const last = s.losses[s.losses.length - 1];
  $('s-loss').textContent = last ? fmt(last[1], 3) : '–';
  const ev = s.evals[s.evals.length - 1];
  const best = s.evals.reduce((b, e) => (b === null || e[1] < b ? e[1] : b), null);
  $('s-err').textContent = ev ? `${fmt(ev[1], 3)} (best ${fmt(best, 3)})` : '–';

  const xMax = s.steps || 1;
  drawLogChart($('loss-chart'), {
    title: 'Training loss',
    xLabel: 'training step',
    yLabel: 'loss: mean squared residual',
    xMax,
    series: [{
      name: s.backend === 'cpu' ? 'loss of every step' : 'loss of the step (read once per tick)',
      color: '#1f6feb',
      points: s.losses,
      width: s.losses.length > 400 ? 1 : 1.6,
    }],
    empty: s.losses.length ? null : 'press Start',
  });
  drawLogChart($('err-chart'), {
    title: 'Test error on fixed points in the ball',
    xLabel: 'training step',
    yLabel: 'relative error (dimensionless)',
    xMax,
    series: [
      { name: 'rel. L2  ‖u_θ − u*‖₂ / ‖u*‖₂', color: '#d1495b', points: s.evals.map((e) => [e[0], e[1]]), marker: true, width: 2 },
      { name: 'rel. L1  ‖u_θ − u*‖₁ / ‖u*‖₁', color: '#8f6bbf', dash: [3, 3], points: s.evals.map((e) => [e[0], e[2]]) },
    ],
    hlines: [{ y: TARGET_ERROR, label: 'target 5·10⁻²', color: '#2e7d32' }],
    empty: s.evals.length ? null : 'evaluated every "eval every" steps',
  });
  drawHeatmaps();
  const d = s.config ? `${s.config.dim}-dimensional ` : '';
  $('caption').textContent = `Heatmaps: the slice (x₁, x₂, 0, …, 0) through the ${d}unit ball on a `
    + `48 × 48 grid, refreshed at every evaluation; the network and the exact solution share one `
    + `colour scale. Loss and errors are dimensionless; time is page time with pauses excluded.`;
}

function range(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return [lo, hi];
}

function drawHeatmaps() {
  const sl = state.slice;
  const at = sl ? ` (step ${sl.step})` : '';
  if (!sl) {
    const note = state.config ? 'computing…' : 'press Start';
    drawHeatmap($('heat-u'), { title: 'network u_θ', barLabel: 'u (dimensionless)', note });
    drawHeatmap($('heat-exact'), { title: 'exact u*', barLabel: 'u (dimensionless)', note });
    drawHeatmap($('heat-diff'), { title: 'error u_θ − u*', barLabel: 'u_θ − u*', note });
    return;
  }
  const [a0, a1] = range(sl.u);
  const [b0, b1] = range(sl.exact);
  const lo = Math.min(a0, b0);
  const hi = Math.max(a1, b1);
  const [d0, d1] = range(sl.diff);
  const dm = Math.max(Math.abs(d0), Math.abs(d1)) || 1e-12;
  drawHeatmap($('heat-u'), { title: `network u_θ${at}`, n: sl.n, values: sl.u, vmin: lo, vmax: hi, map: 'viridis', barLabel: 'u (dimensionless)' });
  drawHeatmap($('heat-exact'), { title: 'exact u*', n: sl.n, values: sl.exact, vmin: lo, vmax: hi, map: 'viridis', barLabel: 'u (dimensionless)' });
  drawHeatmap($('heat-diff'), { title: `error u_θ − u*${at}`, n: sl.n, values: sl.diff, vmin: -dm, vmax: dm, map: 'diverging', barLabel: 'u_θ − u* (dimensionless)' });
}

async function refreshSlice() {
  state.slice = JSON.parse(await session.slice());
  state.sliceStep = state.slice.step;
}

function fail(e) {
  state.error = e?.message ?? String(e);
  state.errorKind = e?.name ?? 'Error';
  const at = `Training stopped at step ${state.step}.`;
  if (state.errorKind === 'DeviceLost') {
    banner(`The GPU device was lost (${state.error}). ${at} Reload the page to start again.`);
  } else if (state.errorKind === 'Diverged') {
    banner(`${state.error}. ${at} Lower the learning rate and press Start.`);
  } else {
    banner(`${state.errorKind}: ${state.error}. ${at}`);
  }
  elapsedBefore = elapsedNow();
  setStatus('error');
}

/** The training loop: one tick per iteration while the status is `running`. */
async function runLoop() {
  let windowStart = performance.now();
  let windowSteps = 0;
  try {
    while (state.status === 'running') {
      const t0 = performance.now();
      // On WebGPU each tick reads one loss: keep at least ~CURVE_POINTS of them for the chart.
      const cap = state.backend === 'cpu' ? 256 : Math.max(1, Math.floor(state.steps / CURVE_POINTS));
      const n = state.step < SINGLE_STEPS ? 1 : Math.min(stepsPerTick, cap);
      const tick = JSON.parse(await session.advance(n));
      const dt = performance.now() - t0;
      if (state.status !== 'running' && state.status !== 'paused') return; // reset meanwhile
      state.ticks += 1;
      state.step = tick.step;
      for (const l of tick.losses) state.losses.push(l);
      // Aim each tick at TICK_MS to 2·TICK_MS. The read-back that ends a tick has a latency of its
      // own (on a software adapter about as long as a step), so more steps per tick is faster;
      // fewer keeps the page responsive.
      if (tick.ran === stepsPerTick && dt < TICK_MS) stepsPerTick = Math.min(256, 2 * stepsPerTick);
      else if (dt > 2 * TICK_MS) stepsPerTick = Math.max(1, Math.floor(stepsPerTick / 2));
      if (tick.evaluate) {
        const e0 = performance.now();
        const ev = JSON.parse(await session.evaluate());
        state.evals.push([ev.step, ev.rel_l2, ev.rel_l1, elapsedNow()]);
        const e1 = performance.now();
        await refreshSlice();
        state.timing.evaluateMs = e1 - e0;
        state.timing.sliceMs = performance.now() - e1;
      }
      state.timing.tickMs = dt;
      state.timing.stepsPerTick = tick.ran;
      windowSteps += tick.ran;
      const now = performance.now();
      state.elapsed = elapsedNow();
      state.stepsPerSecond = state.step / Math.max(state.elapsed, 1e-9);
      if (now - windowStart > 1000 || state.recentStepsPerSecond === 0) {
        state.recentStepsPerSecond = (1000 * windowSteps) / Math.max(now - windowStart, 1e-9);
        windowStart = now;
        windowSteps = 0;
      }
      if (tick.finished) {
        elapsedBefore = elapsedNow();
        setStatus('finished');
        break;
      }
      scheduleDraw();
      // Yield to the event loop (clicks, painting) between ticks.
      await new Promise((r) => setTimeout(r, 0));
    }
  } catch (e) {
    fail(e);
  } finally {
    loop = null;
    scheduleDraw();
  }
}

function startLoop() {
  runningSince = performance.now();
  setStatus('running');
  if (!loop) loop = runLoop();
}

async function start() {
  if (checkForm()) return;
  if (loop) await loop;
  banner(null);
  Object.assign(state, {
    error: null, errorKind: null, step: 0, losses: [], evals: [], slice: null, sliceStep: null,
    stepsPerSecond: 0, recentStepsPerSecond: 0, elapsed: 0, ticks: 0,
  });
  elapsedBefore = 0;
  stepsPerTick = 1;
  try {
    state.config = JSON.parse(session.configure(JSON.stringify(readForm())));
  } catch (e) {
    if (e?.field) showFieldError({ field: e.field, message: e.message });
    else fail(e);
    return;
  }
  state.steps = state.config.steps;
  setStatus('running');
  runningSince = performance.now();
  try {
    await refreshSlice(); // the exact solution and the untrained network, before step 1
  } catch (e) {
    fail(e);
    return;
  }
  if (state.status === 'running' && !loop) loop = runLoop();
}

function pauseResume() {
  if (state.status === 'running') {
    elapsedBefore = elapsedNow();
    setStatus('paused');
  } else if (state.status === 'paused') {
    startLoop();
  }
}

async function reset() {
  const wasLost = state.errorKind === 'DeviceLost';
  state.status = 'idle';
  if (loop) await loop;
  session.clear();
  Object.assign(state, {
    config: null, step: 0, steps: 0, losses: [], evals: [], slice: null, sliceStep: null,
    stepsPerSecond: 0, recentStepsPerSecond: 0, elapsed: 0, ticks: 0,
  });
  if (!wasLost) {
    state.error = null;
    state.errorKind = null;
    banner(null);
  }
  elapsedBefore = 0;
  fillForm(JSON.parse(Session.defaults()));
  checkForm();
  setStatus(wasLost ? 'error' : 'idle');
}

function fillForm(fields) {
  for (const id of FIELDS) $(id).value = fields[id];
}

/** The adapter as the browser describes it (wgpu only sees `description`, often empty). */
async function adapterLabel() {
  try {
    const a = await navigator.gpu?.requestAdapter();
    if (!a) return '';
    const i = a.info ?? {};
    const parts = [i.vendor, i.architecture, i.device, i.description].filter((p) => p);
    return [...new Set(parts)].join(' ');
  } catch {
    return '';
  }
}

async function main() {
  await init();
  const equations = JSON.parse(Session.equations());
  $('equation').replaceChildren(...equations.map((e) => new Option(e, e)));
  fillForm(JSON.parse(Session.defaults()));
  const params = new URLSearchParams(location.search);
  const preferGpu = params.get('backend') !== 'cpu';
  const label = preferGpu ? await adapterLabel() : '';
  session = await Session.create(preferGpu, label);
  state.backend = session.backend;
  state.adapter = session.description;
  state.fallbackReason = session.fallbackReason ?? null;
  const badge = $('backend');
  badge.textContent = state.adapter;
  badge.title = state.adapter;
  badge.className = `badge ${state.backend}`;
  if (state.fallbackReason) {
    $('fallback').hidden = false;
    $('fallback').textContent = `Running on the CPU fallback: ${state.fallbackReason}`;
  }
  for (const id of FIELDS) $(id).addEventListener('input', checkForm);
  // A GPU process crash also loses the 2-D canvases; redraw them once Chromium restores them.
  for (const c of document.querySelectorAll('canvas')) c.addEventListener('contextrestored', scheduleDraw);
  $('form').addEventListener('submit', (ev) => { ev.preventDefault(); start(); });
  $('pause').addEventListener('click', pauseResume);
  $('reset').addEventListener('click', reset);
  state.ready = true;
  state.status = 'idle';
  checkForm();
  setStatus('idle');
}

main().catch((e) => {
  state.status = 'error';
  state.error = e?.message ?? String(e);
  state.errorKind = e?.name ?? 'Error';
  banner(`The page could not start: ${state.error}`);
  throw e;
});
