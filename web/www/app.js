// The page's controller: loads the wasm module, picks WebGPU or the CPU fallback, offers the shipped
// problems and a text box for one's own, checks the form (the typed problem is read, instantiated
// and planned by the wasm module, and its first mistake marked in the text), and drives training a
// tick at a time (enqueue a few steps, await one loss read-back, evaluate every `eval_every` steps,
// redraw). `window.stdeState` is the page's own record of the run, which the end-to-end test reads.

import init, { Session } from './pkg/stde_web.js';
import { drawLogChart, drawHeatmap, fmt } from './plots.js';

/** The form's fields: the ids of their inputs and the keys of the wasm module's `FormFields`. */
const FIELDS = ['equation', 'problem_text', 'dim', 'seed', 'estimator', 'rand_dims', 'width', 'depth',
  'steps', 'lr', 'batch', 'eval_every', 'test_points'];
/** The `equation` of the problem in the text box. */
const CUSTOM = 'custom';
/** The text box is checked this long (milliseconds) after the last keystroke. */
const TYPING_MS = 150;
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
  editorError: null, // the mistake marked in the text box: { field, message, at: { line, col, start, end } }
  problems: [], // the shipped problems the page offers
  selected: null, // the description of the chosen problem (shipped or typed), when it reads
  config: null,
  problem: null, // the description of the running problem
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
let typingTimer = null;
let defaultText = '';

function elapsedNow() {
  return elapsedBefore + (state.status === 'running' ? (performance.now() - runningSince) / 1000 : 0);
}

function readForm() {
  const f = {};
  for (const id of FIELDS) f[id] = $(id).value;
  return f;
}

const escapeHtml = (t) => t.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));

/** Marks `err.at` (UTF-16 offsets) in the backdrop behind the text box, or clears the mark. */
function markText(err) {
  const text = $('problem_text').value;
  const at = err?.at;
  let html;
  if (at) {
    const start = Math.min(at.start, text.length);
    const end = Math.min(Math.max(at.end, start), text.length);
    const inner = end > start ? `<mark>${escapeHtml(text.slice(start, end))}</mark>` : '<mark class="at-point"></mark>';
    html = escapeHtml(text.slice(0, start)) + inner + escapeHtml(text.slice(end));
  } else {
    html = escapeHtml(text);
  }
  // A final newline needs a character after it to take up its line, as in the textarea.
  $('problem-backdrop').innerHTML = `${html}\n`;
  syncBackdrop();
}

function syncBackdrop() {
  $('problem-backdrop').scrollTop = $('problem_text').scrollTop;
  $('problem-backdrop').scrollLeft = $('problem_text').scrollLeft;
}

/** The line of `at` with a caret under the marked range, as `LINE | text` (columns in characters). */
function caretSnippet(text, at) {
  const line = text.split('\n')[at.line - 1] ?? '';
  const chars = [...line.replace(/\r$/, '')];
  const col = Math.max(1, Math.min(at.col, chars.length + 1));
  const markedChars = Math.max(1, [...text.slice(at.start, at.end)].length);
  const gutter = `${at.line} | `;
  return `${gutter}${chars.join('')}\n${' '.repeat(gutter.length - 2)}| ${' '.repeat(col - 1)}${'^'.repeat(markedChars)}`;
}

/** Shows the mistake of the typed problem (or none) next to the text box. */
function showEditorError(err) {
  state.editorError = err;
  const box = document.querySelector('.err[data-for="problem_text"]');
  $('problem-error').hidden = !err;
  $('problem_text').classList.toggle('invalid', !!err);
  if (err) {
    box.textContent = err.at ? err.message : `${err.message}`;
    $('problem-caret').textContent = err.at ? caretSnippet($('problem_text').value, err.at) : '';
    $('problem-caret').hidden = !err.at;
    $('goto-error').hidden = !err.at;
  } else {
    box.textContent = '';
  }
  markText(err);
}

/** Selects the marked mistake in the text box and scrolls it into view. */
function gotoError() {
  const at = state.editorError?.at;
  if (!at) return;
  const ta = $('problem_text');
  ta.focus();
  ta.setSelectionRange(at.start, Math.max(at.end, at.start));
  // Scroll the line into the middle of the box (the selection alone does not scroll a blurred box).
  const lineHeight = parseFloat(getComputedStyle(ta).lineHeight) || 18;
  ta.scrollTop = Math.max(0, (at.line - 1) * lineHeight - ta.clientHeight / 2);
  syncBackdrop();
}

function describeProblem(p) {
  if (!p) return '';
  const dims = p.max_dim >= 10000 && p.min_dim <= 2 ? `d ≥ ${p.min_dim}` : `d = ${p.min_dim} … ${p.max_dim}`;
  const parts = [dims];
  if (p.time_end !== null && p.time_end !== undefined) parts.push(`t ∈ [0, ${p.time_end}]`);
  if (p.exact) parts.push('exact solution known');
  if (p.reference) {
    const known = p.reference.known_dims ? ` (reference values at d = ${p.reference.known_dims.join(', ')})` : '';
    parts.push(`judged by u at x = ${p.reference.x}, t = ${p.reference.t}${known}`);
  }
  if (p.suggested_estimator) {
    parts.push(`suggests the ${p.suggested_estimator} estimator${p.suggested_rand_dims ? `, V = ${p.suggested_rand_dims}` : ''}`);
  }
  return `${p.description.replace(/\.$/, '')}. ${parts.join('; ')}.`;
}

/** Updates the hints that depend on the chosen problem (its sizes, its estimator's V). */
function showProblem(p) {
  state.selected = p;
  $('problem-info').textContent = describeProblem(p);
  $('dim-range').textContent = p ? `${p.min_dim} … ${p.max_dim.toLocaleString('en').replace(/,/g, ' ')}` : '';
  const est = $('estimator').value;
  $('rand-dims-hint').textContent = est === 'dense' ? 'random probe vectors per step'
    : est === 'exact' ? 'not used: every coordinate' : 'dimensions sampled per step';
  $('estimator-hint').textContent = p?.suggested_estimator ? `the problem suggests ${p.suggested_estimator}` : '';
}

function showFieldError(err) {
  for (const el of document.querySelectorAll('.err:not([data-for="problem_text"])')) el.textContent = '';
  for (const id of FIELDS) if (id !== 'problem_text') $(id).classList.remove('invalid');
  state.fieldError = err;
  if (err && err.field !== 'problem_text') {
    const box = document.querySelector(`.err[data-for="${err.field}"]`);
    if (box) box.textContent = err.message;
    $(err.field)?.classList.add('invalid');
  }
}

function checkForm() {
  const form = readForm();
  const r = JSON.parse(Session.check(JSON.stringify(form)));
  showFieldError(r.error);
  showProblem(r.problem);
  if (form.equation === CUSTOM) {
    // The typed problem's mistakes: in the text (`problem_text`), or an estimator it cannot use,
    // marked at the term it names.
    showEditorError(r.error && (r.error.field === 'problem_text' || r.error.at) ? r.error : null);
    showTextStatus(r.problem);
  } else {
    checkText();
  }
  updateButtons();
  return r.error;
}

/** Reads the text box alone (while a shipped problem is chosen) and shows its first mistake. */
function checkText() {
  const r = JSON.parse(Session.inspect($('problem_text').value));
  showEditorError(r.error);
  showTextStatus(r.problem);
  return r;
}

/** Whether the text box's problem reads, and what it is. */
function showTextStatus(p) {
  $('problem-status').className = `problem-status${p ? ' ok' : ''}`;
  $('problem-status').textContent = p ? `Reads: “${p.name}”. ${describeProblem(p)}` : 'Does not read:';
}

function onTextInput() {
  markText(null); // the old mark points into the old text
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => {
    typingTimer = null;
    if ($('equation').value === CUSTOM) checkForm();
    else checkText();
  }, TYPING_MS);
}

/** The form's fields for a problem (the text box keeps what it holds). */
function applyDefaults(defaults) {
  for (const id of FIELDS) if (id !== 'problem_text' && id !== 'equation') $(id).value = defaults[id];
}

function onProblemChange() {
  const name = $('equation').value;
  if (name === CUSTOM) {
    const r = checkText();
    if (r.problem) applyDefaults(r.problem.defaults);
  } else {
    const p = state.problems.find((q) => q.name === name);
    if (p) applyDefaults(p.defaults);
  }
  checkForm();
}

function copyProblem() {
  const p = state.problems.find((q) => q.name === $('equation').value);
  if (!p) return;
  const text = $('problem_text').value;
  const pristine = text === defaultText || state.problems.some((q) => q.text === text);
  if (!pristine && !window.confirm(`Replace the text with the file of ${p.name}?`)) return;
  $('problem_text').value = p.text;
  $('problem_text').scrollTop = 0;
  checkForm();
}

/** "Train this problem": the text box's problem, with its suggested settings when newly chosen. */
async function trainCustom() {
  if ($('equation').value !== CUSTOM) {
    $('equation').value = CUSTOM;
    onProblemChange();
  }
  if (checkForm()) {
    if (state.editorError?.at) gotoError();
    return;
  }
  await start();
}

function updateButtons() {
  const s = state.status;
  const lost = state.errorKind === 'DeviceLost' || state.errorKind === 'Panic';
  $('start').disabled = !state.ready || lost || s === 'running' || s === 'paused' || !!state.fieldError;
  // Enabled with a mistake in the text too: pressing it then selects the mistake.
  $('train-custom').disabled = !state.ready || lost || s === 'running' || s === 'paused';
  $('pause').disabled = !(s === 'running' || s === 'paused');
  $('pause').textContent = s === 'paused' ? 'Resume' : 'Pause';
  $('reset').disabled = !state.ready || s === 'loading';
  // The text box stays editable during a run (the run has its own copy).
  for (const id of FIELDS) if (id !== 'problem_text') $(id).disabled = s === 'running' || s === 'paused';
  $('copy-problem').disabled = $('equation').value === CUSTOM;
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
  const best = s.evals.reduce((b, e) => (e[1] !== null && (b === null || e[1] < b) ? e[1] : b), null);
  const ref = s.problem?.reference;
  $('s-err-label').textContent = ref ? 'rel. error of u(ref)' : 'rel. L2 error';
  if (!ev) $('s-err').textContent = '–';
  else if (ref && ev[1] === null) $('s-err').textContent = `u = ${fmt(ev[4], 4)} (no reference value at d = ${s.config.dim})`;
  else if (ref) $('s-err').textContent = `${fmt(ev[1], 3)} (u = ${fmt(ev[4], 4)}; best ${fmt(best, 3)})`;
  else $('s-err').textContent = `${fmt(ev[1], 3)} (best ${fmt(best, 3)})`;

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
  const known = s.evals.filter((e) => e[1] !== null);
  const noReference = ref && s.evals.length > 0 && known.length === 0;
  drawLogChart($('err-chart'), {
    title: ref ? `Error of u at the reference point (x = ${ref.x}, t = ${ref.t})` : 'Test error on fixed points in the ball',
    xLabel: 'training step',
    yLabel: 'relative error (dimensionless)',
    xMax,
    series: ref ? [
      { name: '|u_θ − u_ref| / |u_ref|', color: '#d1495b', points: known.map((e) => [e[0], e[1]]), marker: true, width: 2 },
    ] : [
      { name: 'rel. L2  ‖u_θ − u*‖₂ / ‖u*‖₂', color: '#d1495b', points: known.map((e) => [e[0], e[1]]), marker: true, width: 2 },
      { name: 'rel. L1  ‖u_θ − u*‖₁ / ‖u*‖₁', color: '#8f6bbf', dash: [3, 3], points: known.map((e) => [e[0], e[2]]) },
    ],
    hlines: [{ y: TARGET_ERROR, label: 'target 5·10⁻²', color: '#2e7d32' }],
    empty: noReference ? `no reference value at d = ${s.config.dim}: see u in the stats`
      : s.evals.length ? null : 'evaluated every "eval every" steps',
  });
  drawHeatmaps();
  const d = s.config ? `${s.config.dim}-dimensional ` : '';
  const at = s.problem?.time_end != null ? ' at t = 0' : '';
  const name = s.config ? `${s.config.equation}: ` : '';
  const shared = s.slice && !s.slice.has_exact ? 'the problem has no exact solution to draw'
    : 'the network and the exact solution share one colour scale';
  $('caption').textContent = `${name}heatmaps of the slice (x₁, x₂, 0, …, 0)${at} through the ${d}unit ball on a `
    + `48 × 48 grid, refreshed at every evaluation; ${shared}. Loss and errors are dimensionless; `
    + `time is page time with pauses excluded.`;
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
  if (!sl.has_exact) {
    const note = 'no exact solution';
    drawHeatmap($('heat-u'), { title: `network u_θ${at}`, n: sl.n, values: sl.u, vmin: a0, vmax: a1, map: 'viridis', barLabel: 'u (dimensionless)' });
    drawHeatmap($('heat-exact'), { title: 'exact u*', barLabel: 'u (dimensionless)', note });
    drawHeatmap($('heat-diff'), { title: 'error u_θ − u*', barLabel: 'u_θ − u*', note });
    return;
  }
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
        // [step, rel L2, rel L1, seconds, u at the reference point (problems judged there)];
        // the errors are null at a dimension without a reference value.
        state.evals.push([ev.step, ev.rel_l2, ev.rel_l1, elapsedNow(), ev.point_value ?? null]);
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
    const run = JSON.parse(session.configure(JSON.stringify(readForm())));
    state.config = run.config;
    state.problem = run.problem;
  } catch (e) {
    if (e?.field) {
      const at = e.line ? { line: e.line, col: e.col, start: e.start, end: e.end } : undefined;
      const err = { field: e.field, message: e.message, at };
      showFieldError(err);
      if (e.field === 'problem_text' || at) showEditorError(err);
      updateButtons();
    } else fail(e);
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
  const wasLost = state.errorKind === 'DeviceLost' || state.errorKind === 'Panic';
  state.status = 'idle';
  if (loop) await loop;
  session.clear();
  Object.assign(state, {
    config: null, problem: null, step: 0, steps: 0, losses: [], evals: [], slice: null, sliceStep: null,
    stepsPerSecond: 0, recentStepsPerSecond: 0, elapsed: 0, ticks: 0,
  });
  if (!wasLost) {
    state.error = null;
    state.errorKind = null;
    banner(null);
  }
  elapsedBefore = 0;
  // The form's defaults; the text box keeps the typed problem.
  const defaults = JSON.parse(Session.defaults());
  $('equation').value = defaults.equation;
  applyDefaults(defaults);
  checkForm();
  setStatus(wasLost ? 'error' : 'idle');
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
  state.problems = JSON.parse(Session.problems());
  const shipped = document.createElement('optgroup');
  shipped.label = 'Shipped problems';
  shipped.append(...state.problems.map((p) => {
    const dims = p.max_dim >= 10000 ? `d ≥ ${p.min_dim}` : `d ${p.min_dim}–${p.max_dim}`;
    return new Option(`${p.name} (${dims})`, p.name);
  }));
  const yours = document.createElement('optgroup');
  yours.label = 'Your problem';
  yours.append(new Option('yours (the text box below)', CUSTOM));
  $('equation').replaceChildren(shipped, yours);
  const defaults = JSON.parse(Session.defaults());
  defaultText = defaults.problem_text;
  for (const id of FIELDS) $(id).value = defaults[id];
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
  for (const id of FIELDS) {
    if (id === 'problem_text' || id === 'equation') continue;
    $(id).addEventListener('input', checkForm);
  }
  $('equation').addEventListener('change', onProblemChange);
  $('problem_text').addEventListener('input', onTextInput);
  $('problem_text').addEventListener('scroll', syncBackdrop);
  $('copy-problem').addEventListener('click', copyProblem);
  $('train-custom').addEventListener('click', trainCustom);
  $('goto-error').addEventListener('click', gotoError);
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

// A Rust panic inside the wasm module surfaces as an uncaught `RuntimeError` (its message is in
// the console), and the call it interrupted never settles: stop the run and say so.
window.addEventListener('error', (ev) => {
  if (!(ev.error instanceof WebAssembly.RuntimeError)) return;
  if (state.status === 'running' || state.status === 'paused' || state.status === 'loading') {
    state.error = `the page's WebAssembly module stopped (${ev.error.message}); the console has the panic message`;
    state.errorKind = 'Panic';
    banner(`Internal error: ${state.error}. Training stopped at step ${state.step}; reload the page to start again.`);
    elapsedBefore = elapsedNow();
    loop = null;
    setStatus('error');
  }
});

main().catch((e) => {
  state.status = 'error';
  state.error = e?.message ?? String(e);
  state.errorKind = e?.name ?? 'Error';
  banner(`The page could not start: ${state.error}`);
  throw e;
});
