// End-to-end test of the stde page in real headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core; no browser download). Serves web/www with `stde web`, then:
//   1. WebGPU (--enable-unsafe-webgpu, SwiftShader): the page says it runs on WebGPU, refuses bad
//      form input, pauses and resumes, trains sine-gordon-two-body at d = 10 until the relative L2
//      error reaches 5e-2 within 3 minutes of page time, and its first losses and final error match
//      `stde train --backend cpu` with the same configuration.
//   2. Without the flag: the page falls back to the CPU backend (wasm) and trains likewise.
//   3. A GPU process crash (chrome://gpucrash) during WebGPU training is reported as a lost
//      device and stops training cleanly.
// Every case fails on any console error (except, in case 3, the ones the crash itself causes),
// saves a screenshot and the page's state under web/e2e/artifacts/, prints one line per check and
// ends with `N passed, N failed`; the exit code is non-zero on any failure.
//
// Environment: STDE_BIN (default <target>/release/stde), CHROMIUM (default /usr/bin/chromium),
// STDE_E2E_CASES (comma-separated subset of webgpu,cpu,device-lost).

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const artifacts = path.join(here, 'artifacts');
const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
const stdeBin = process.env.STDE_BIN || path.join(targetDir, 'release', 'stde');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const cases = (process.env.STDE_E2E_CASES || 'webgpu,cpu,device-lost').split(',');

/** The error the page must reach, and the page time it may take (seconds). */
const TARGET = 5e-2;
const BUDGET_S = 180;
/** Wall-clock limit of one training run in the browser (page time plus start-up). */
const RUN_TIMEOUT_MS = 240_000;
/** Loss parity with the CLI over the first steps, and the final errors' ratio. */
const LOSS_REL_TOL = 1e-3;
const PARITY_STEPS = 10;
const ERROR_RATIO = 1.5;

const BASE_FLAGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
/** What gives headless Chromium a WebGPU adapter here (SwiftShader); nothing else was needed. */
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu'];

/** The run both backends train: the page's defaults, set explicitly. */
const FORM = {
  equation: 'sine-gordon-two-body', dim: '10', seed: '0', rand_dims: '4', width: '32', depth: '3',
  steps: '300', lr: '0.005', batch: '64', eval_every: '25', test_points: '1000',
};

let passed = 0;
let failed = 0;
function check(ok, what, detail = '') {
  if (ok) passed += 1; else failed += 1;
  console.log(`${ok ? 'ok  ' : 'FAIL'} - ${what}${detail ? `: ${detail}` : ''}`);
  return ok;
}

const sci = (x) => (Number.isFinite(x) ? x.toExponential(3) : String(x));

/** Starts `stde web --port 0` and resolves to its address. */
function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(stdeBin, ['web', '--port', '0', '--dir', path.join(root, 'web', 'www')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`stde web printed no address in 20 s: ${out}${err}`)), 20_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/serving (http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m) { clearTimeout(timer); resolve({ child, url: m[1] }); }
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`stde web exited (${code}): ${err.trim()}`)); });
  });
}

/** `stde train --backend cpu` on the page's configuration: the losses by step and the final error. */
function cliReference(cfg) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'stde-e2e-cli-'));
  fs.rmSync(out, { recursive: true });
  const args = ['train', '--backend', 'cpu', '--quiet', '--log-every', '1', '--out', out,
    '--equation', cfg.equation, '--dim', cfg.dim, '--rand-dims', cfg['rand-dims'], '--estimator', cfg.estimator,
    '--width', cfg.width, '--depth', cfg.depth, '--activation', cfg.activation, '--batch', cfg.batch,
    '--lr', cfg.lr, '--schedule', cfg.schedule, '--seed', cfg.seed, '--steps', cfg.steps,
    '--eval-every', cfg['eval-every'], '--test-points', cfg['test-points']].map(String);
  if (!cfg.collapsed) args.push('--no-collapse');
  const r = spawnSync(stdeBin, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`stde ${args.join(' ')} failed: ${r.stderr}`);
  const losses = new Map();
  const lines = fs.readFileSync(path.join(out, 'history.csv'), 'utf8').trim().split('\n').slice(1);
  for (const line of lines) {
    const [step, loss] = line.split(',');
    losses.set(Number(step), Number(loss));
  }
  const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
  fs.rmSync(out, { recursive: true, force: true });
  return { losses, finalRelL2: metrics.final_rel_l2, command: `stde ${args.join(' ')}` };
}

async function launch(flags) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stde-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [...BASE_FLAGS, ...flags],
    viewport: { width: 1440, height: 900 },
  });
  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(userDir, { recursive: true, force: true });
  };
  return { context, close };
}

/** Opens the page and collects its console errors. */
async function openPage(context, url) {
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  await page.goto(url);
  await page.waitForFunction(() => window.stdeState?.ready || window.stdeState?.status === 'error', null, { timeout: 60_000 });
  return { page, errors };
}

const pageState = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.stdeState)));

async function fillForm(page, fields) {
  for (const [id, value] of Object.entries(fields)) {
    if (id === 'equation') await page.selectOption('#equation', value);
    else await page.fill(`#${id}`, value);
  }
}

/** Bad input is refused in the form, with a message next to the field. */
async function checkFormRefusals(page, label) {
  const cases = [['dim', '1'], ['lr', 'fast'], ['rand_dims', '11']];
  for (const [id, bad] of cases) {
    await page.fill(`#${id}`, bad);
    const msg = (await page.textContent(`.err[data-for="${id}"]`)).trim();
    const disabled = await page.isDisabled('#start');
    const st = await pageState(page);
    check(disabled && msg.length > 0 && st.fieldError?.field === id,
      `${label}: ${id} = ${JSON.stringify(bad)} is refused`, JSON.stringify(msg));
    await page.fill(`#${id}`, FORM[id]);
  }
  check(!(await page.isDisabled('#start')), `${label}: the corrected form can start`);
}

async function waitForEnd(page) {
  await page.waitForFunction(() => ['finished', 'error'].includes(window.stdeState.status), null,
    { timeout: RUN_TIMEOUT_MS, polling: 1000 });
}

/** Trains the form's run and checks the page's own record of it. */
async function trainAndCheck(page, label, { pauseResume }) {
  await fillForm(page, FORM);
  const t0 = Date.now();
  await page.click('#start');
  if (pauseResume) {
    await page.waitForFunction(() => window.stdeState.step >= 12, null, { timeout: 120_000, polling: 200 });
    await page.click('#pause');
    await page.waitForFunction(() => window.stdeState.status === 'paused', null, { timeout: 10_000 });
    await page.waitForTimeout(2500); // let a tick in flight land
    const a = await pageState(page);
    await page.waitForTimeout(1500);
    const b = await pageState(page);
    check(a.step === b.step && b.status === 'paused' && Math.abs(a.elapsed - b.elapsed) < 0.05,
      `${label}: Pause stops the steps and the clock`, `step ${a.step} → ${b.step}`);
    await page.click('#pause'); // Resume
    await page.waitForFunction((s) => window.stdeState.step > s, b.step, { timeout: 60_000, polling: 200 });
    check(true, `${label}: Resume continues`);
  }
  await waitForEnd(page);
  const wall = (Date.now() - t0) / 1000;
  const st = await pageState(page);
  check(st.status === 'finished' && st.step === Number(FORM.steps),
    `${label}: training finished`, `status ${st.status}, step ${st.step}${st.error ? `, error ${st.error}` : ''}`);
  const losses = st.losses.map(([, l]) => l);
  const first = losses[0];
  const tail = losses.slice(-5).sort((x, y) => x - y)[2];
  check(losses.length > 10 && tail < first / 10,
    `${label}: the loss fell`, `first ${sci(first)}, median of the last 5 read ${sci(tail)}`);
  const hit = st.evals.find(([, e]) => e <= TARGET);
  const final = st.evals[st.evals.length - 1];
  check(hit !== undefined && hit[3] <= BUDGET_S,
    `${label}: rel L2 ≤ ${TARGET} within ${BUDGET_S} s of page time`,
    hit ? `${sci(hit[1])} at step ${hit[0]} after ${hit[3].toFixed(1)} s` : `best ${sci(Math.min(...st.evals.map((e) => e[1])))}`);
  check(final && final[1] <= TARGET, `${label}: final rel L2 ≤ ${TARGET}`, final ? sci(final[1]) : 'no evaluation');
  console.log(`     ${label}: ${st.step} steps in ${st.elapsed.toFixed(1)} s of page time (${(st.step / st.elapsed).toFixed(2)} steps/s mean, `
    + `${st.ticks} ticks; ${wall.toFixed(0)} s wall), backend ${st.adapter}`);
  const filled = st.slice && st.slice.step === st.step && st.slice.u.some((v) => v !== null);
  check(filled, `${label}: heatmaps hold the final network`, st.slice ? `slice at step ${st.slice.step}` : 'no slice');
  return st;
}

function checkParity(label, st, ref) {
  let worst = 0;
  let compared = 0;
  let worstAll = 0;
  let shared = 0;
  for (const [step, loss] of st.losses) {
    if (!ref.losses.has(step)) continue;
    const rel = Math.abs(loss - ref.losses.get(step)) / Math.abs(ref.losses.get(step));
    worstAll = Math.max(worstAll, rel);
    shared += 1;
    if (step > PARITY_STEPS) continue;
    worst = Math.max(worst, rel);
    compared += 1;
  }
  console.log(`     ${label}: losses at all ${shared} steps the page read differ from the CLI's by at most ${sci(worstAll)} (relative)`);
  check(compared >= PARITY_STEPS && worst <= LOSS_REL_TOL,
    `${label}: losses of steps 1..${PARITY_STEPS} equal stde train --backend cpu's`,
    `${compared} steps, worst relative difference ${sci(worst)} (tolerance ${LOSS_REL_TOL})`);
  const final = st.evals[st.evals.length - 1][1];
  const ratio = Math.max(final, ref.finalRelL2) / Math.min(final, ref.finalRelL2);
  check(ratio <= ERROR_RATIO, `${label}: final rel L2 within ${ERROR_RATIO}× of the CLI's`,
    `page ${sci(final)}, CLI ${sci(ref.finalRelL2)}, ratio ${ratio.toFixed(3)}`);
}

function save(label, st) {
  fs.writeFileSync(path.join(artifacts, `${label}-state.json`), JSON.stringify(st, null, 1));
}

async function caseWebgpu(url) {
  const { context, close } = await launch(WEBGPU_FLAGS);
  try {
    const { page, errors } = await openPage(context, url);
    const st0 = await pageState(page);
    check(st0.backend === 'webgpu' && /^WebGPU/.test(st0.adapter),
      'webgpu: the page runs on WebGPU', `${st0.backend}: ${st0.adapter}${st0.fallbackReason ? `; fallback: ${st0.fallbackReason}` : ''}`);
    if (st0.backend !== 'webgpu') return;
    await checkFormRefusals(page, 'webgpu');
    const st = await trainAndCheck(page, 'webgpu', { pauseResume: true });
    await page.screenshot({ path: path.join(artifacts, 'webgpu.png') });
    save('webgpu', st);
    checkParity('webgpu', st, cliReference(st.config));
    check(errors.length === 0, 'webgpu: no console errors', errors.join(' | '));
  } finally {
    await close();
  }
}

async function caseCpu(url) {
  const { context, close } = await launch([]);
  try {
    const { page, errors } = await openPage(context, url);
    const st0 = await pageState(page);
    check(st0.backend === 'cpu' && !!st0.fallbackReason && /^CPU/.test(st0.adapter),
      'cpu: without WebGPU the page falls back to the CPU backend', `${st0.adapter}; reason: ${st0.fallbackReason}`);
    const note = await page.isVisible('#fallback');
    check(note, 'cpu: the page says why it runs on the CPU');
    const st = await trainAndCheck(page, 'cpu', { pauseResume: false });
    await page.screenshot({ path: path.join(artifacts, 'cpu.png') });
    save('cpu', st);
    checkParity('cpu', st, cliReference(st.config));
    await page.click('#reset');
    await page.waitForFunction(() => window.stdeState.status === 'idle', null, { timeout: 10_000 });
    const r = await pageState(page);
    check(r.losses.length === 0 && r.evals.length === 0 && r.config === null && !(await page.isDisabled('#start')),
      'cpu: Reset clears the run and can start again');
    check(errors.length === 0, 'cpu: no console errors', errors.join(' | '));
  } finally {
    await close();
  }
}

async function caseDeviceLost(url) {
  const { context, close } = await launch(WEBGPU_FLAGS);
  try {
    const { page, errors } = await openPage(context, url);
    if ((await pageState(page)).backend !== 'webgpu') {
      check(false, 'device-lost: the page runs on WebGPU');
      return;
    }
    await fillForm(page, { ...FORM, steps: '100000', eval_every: '1000' });
    await page.click('#start');
    await page.waitForFunction(() => window.stdeState.step >= 3, null, { timeout: 120_000, polling: 200 });
    // Chromium's DevTools protocol crashes the GPU process on request (chrome://gpucrash is not
    // reachable from an automated headless tab).
    const cdp = await context.newCDPSession(page);
    await cdp.send('Browser.crashGpuProcess');
    await page.waitForFunction(() => window.stdeState.status === 'error', null, { timeout: 60_000, polling: 250 })
      .catch(() => {});
    const st = await pageState(page);
    const banner = (await page.textContent('#banner')).trim();
    check(st.status === 'error' && st.errorKind === 'DeviceLost' && /lost/i.test(banner),
      'device-lost: a GPU crash is reported as a lost device', `status ${st.status}, ${st.errorKind}: ${banner}`);
    const step = st.step;
    await page.waitForTimeout(1500);
    const after = await pageState(page);
    check(after.step === step && (await page.isDisabled('#start')) && (await page.isDisabled('#pause')),
      'device-lost: training stops cleanly (no more steps, Start and Pause disabled)');
    await page.screenshot({ path: path.join(artifacts, 'device-lost.png') });
    save('device-lost', after);
    // The crash makes Chromium log its own errors; anything from the page itself still fails.
    const own = errors.filter((e) => !/GPU|WebGPU|device|context lost|Dawn/i.test(e));
    if (errors.length > own.length) console.log(`     device-lost: Chromium logged ${errors.length - own.length} error(s) about the crash`);
    check(own.length === 0, 'device-lost: no other console errors', own.join(' | '));
  } finally {
    await close();
  }
}

async function main() {
  fs.mkdirSync(artifacts, { recursive: true });
  for (const [what, p] of [['stde binary (cargo build --release -p stde-cli)', stdeBin],
    ['built page (bash web/build.sh)', path.join(root, 'web/www/pkg/stde_web.js')],
    ['Chromium (apt-get install chromium)', chromiumPath]]) {
    if (!fs.existsSync(p)) {
      check(false, `${what} present`, p);
      return;
    }
  }
  const { child, url } = await startServer();
  console.log(`     serving ${url} with ${stdeBin}`);
  try {
    const run = { webgpu: caseWebgpu, cpu: caseCpu, 'device-lost': caseDeviceLost };
    for (const c of cases) {
      try {
        await run[c](url);
      } catch (e) {
        check(false, `${c}: ran to the end`, e.stack || String(e));
      }
    }
  } finally {
    child.kill();
  }
}

await main().catch((e) => check(false, 'e2e harness', e.stack || String(e)));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
