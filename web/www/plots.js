// Canvas plots of the page: line charts with a log-scale y axis, and heatmaps with a colour bar.
// Plain 2-D canvas, no library; every drawing starts from a clear canvas, so a redraw is idempotent.

const FONT = '"DejaVu Sans", system-ui, sans-serif';
const SUP = { '-': '⁻', 0: '⁰', 1: '¹', 2: '²', 3: '³', 4: '⁴', 5: '⁵', 6: '⁶', 7: '⁷', 8: '⁸', 9: '⁹' };

/** `10⁻³`-style label of a power of ten. */
function pow10Label(e) {
  if (e === 0) return '1';
  if (e === 1) return '10';
  return '10' + String(e).split('').map((c) => SUP[c]).join('');
}

/** A short number for axes and colour bars. */
export function fmt(v, digits = 2) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  let s;
  if (a !== 0 && (a < 1e-2 || a >= 1e4)) {
    const [mant, exp] = v.toExponential(digits - 1).split('e');
    s = `${mant}·10${pow10Label(Number(exp)).slice(2)}`;
  } else if (a >= 100) s = v.toFixed(0);
  else s = Number(v.toPrecision(digits)).toString();
  return s.replace('-', '−');
}

/** Prepares a canvas for drawing in CSS pixels on a high-DPI screen. */
function setup(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, w, h);
  return { ctx, w, h };
}

/** Round tick values over [0, max] (1, 2 or 5 times a power of ten apart). */
function linearTicks(max, count) {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
  const ticks = [];
  // Multiples of the step, rounded: summing steps would label 0.6000000000000001.
  for (let k = 0; k * step <= max + 1e-9; k += 1) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

/**
 * A line chart with a logarithmic y axis.
 * spec: { title, xLabel, yLabel, xMax, series: [{ name, color, dash, points: [[x, y]], marker }],
 *         hlines: [{ y, label, color }], empty }
 */
export function drawLogChart(canvas, spec) {
  const { ctx, w, h } = setup(canvas);
  const m = { l: 62, r: 14, t: 28, b: 42 };
  const pw = w - m.l - m.r;
  const ph = h - m.t - m.b;
  ctx.fillStyle = '#1d2430';
  ctx.font = `600 14px ${FONT}`;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  ctx.fillText(spec.title, m.l, 18);

  const ys = [];
  for (const s of spec.series) for (const [, y] of s.points) if (y > 0 && Number.isFinite(y)) ys.push(y);
  for (const l of spec.hlines || []) ys.push(l.y);
  let lo = ys.length ? Math.min(...ys) : 1e-3;
  let hi = ys.length ? Math.max(...ys) : 1;
  let e0 = Math.floor(Math.log10(lo));
  let e1 = Math.ceil(Math.log10(hi));
  if (e1 === e0) e1 += 1;
  const xMax = Math.max(1, spec.xMax);
  const X = (x) => m.l + (x / xMax) * pw;
  const Y = (y) => m.t + ph - ((Math.log10(y) - e0) / (e1 - e0)) * ph;

  // Grid and y ticks at powers of ten (minor grid at 2…9 when the range is short).
  ctx.lineWidth = 1;
  ctx.font = `12px ${FONT}`;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  const every = Math.max(1, Math.ceil((e1 - e0) / 6));
  for (let e = e0; e <= e1; e++) {
    if (e1 - e0 <= 4 && e < e1) {
      ctx.strokeStyle = '#f0f2f5';
      for (let k = 2; k <= 9; k++) {
        const y = Y(k * 10 ** e);
        ctx.beginPath(); ctx.moveTo(m.l, y); ctx.lineTo(m.l + pw, y); ctx.stroke();
      }
    }
    const y = Y(10 ** e);
    ctx.strokeStyle = '#dde2e8';
    ctx.beginPath(); ctx.moveTo(m.l, y); ctx.lineTo(m.l + pw, y); ctx.stroke();
    if ((e - e0) % every === 0) {
      ctx.fillStyle = '#3b4453';
      ctx.fillText(pow10Label(e), m.l - 6, y);
    }
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (const t of linearTicks(xMax, 6)) {
    const x = X(t);
    ctx.strokeStyle = '#eef1f4';
    ctx.beginPath(); ctx.moveTo(x, m.t); ctx.lineTo(x, m.t + ph); ctx.stroke();
    ctx.fillStyle = '#3b4453';
    ctx.fillText(t >= 10000 ? `${t / 1000}k` : String(t), x, m.t + ph + 5);
  }
  ctx.strokeStyle = '#8b95a3';
  ctx.strokeRect(m.l, m.t, pw, ph);

  // Axis labels.
  ctx.fillStyle = '#1d2430';
  ctx.font = `12.5px ${FONT}`;
  ctx.fillText(spec.xLabel, m.l + pw / 2, h - 17);
  ctx.save();
  ctx.translate(14, m.t + ph / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = 'middle';
  ctx.fillText(spec.yLabel, 0, 0);
  ctx.restore();

  // Reference lines, then the series, clipped to the plot.
  ctx.save();
  ctx.beginPath(); ctx.rect(m.l, m.t, pw, ph); ctx.clip();
  for (const l of spec.hlines || []) {
    const y = Y(l.y);
    ctx.strokeStyle = l.color; ctx.setLineDash([6, 4]); ctx.lineWidth = 1.3;
    ctx.beginPath(); ctx.moveTo(m.l, y); ctx.lineTo(m.l + pw, y); ctx.stroke();
    ctx.setLineDash([]);
  }
  for (const s of spec.series) {
    const pts = s.points.filter(([, y]) => y > 0 && Number.isFinite(y));
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = s.width || 1.6;
    ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
    ctx.stroke();
    ctx.setLineDash([]);
    if (s.marker) for (const [x, y] of pts) { ctx.beginPath(); ctx.arc(X(x), Y(y), 2.6, 0, 2 * Math.PI); ctx.fill(); }
  }
  ctx.restore();

  // Legend (top right, inside the plot).
  const items = [...spec.series.map((s) => ({ ...s, kind: 'line' })),
    ...(spec.hlines || []).map((l) => ({ name: l.label, color: l.color, dash: [6, 4], kind: 'line' }))];
  ctx.font = `12px ${FONT}`;
  const lw = Math.max(...items.map((it) => ctx.measureText(it.name).width)) + 40;
  const lh = 17 * items.length + 8;
  const lx = m.l + pw - lw - 6;
  const ly = m.t + 6;
  ctx.fillStyle = 'rgba(255,255,255,0.9)'; ctx.strokeStyle = '#c9d0d9';
  ctx.fillRect(lx, ly, lw, lh); ctx.strokeRect(lx, ly, lw, lh);
  ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
  items.forEach((it, i) => {
    const y = ly + 12 + 17 * i;
    ctx.strokeStyle = it.color; ctx.lineWidth = 2; ctx.setLineDash(it.dash || []);
    ctx.beginPath(); ctx.moveTo(lx + 8, y); ctx.lineTo(lx + 30, y); ctx.stroke(); ctx.setLineDash([]);
    ctx.fillStyle = '#1d2430'; ctx.fillText(it.name, lx + 36, y);
  });

  if (spec.empty) {
    ctx.fillStyle = '#8b95a3'; ctx.textAlign = 'center'; ctx.font = `13px ${FONT}`;
    ctx.fillText(spec.empty, m.l + pw / 2, m.t + ph / 2);
  }
}

// Colour maps: viridis (sequential) and a blue–white–red diverging map, as anchor lists.
const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]];
const DIVERGING = [[33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247],
  [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43]];

function colour(map, t) {
  const x = Math.min(1, Math.max(0, t)) * (map.length - 1);
  const i = Math.min(map.length - 2, Math.floor(x));
  const f = x - i;
  return map[i].map((c, k) => Math.round(c + f * (map[i + 1][k] - c)));
}

export const COLOUR_MAPS = { viridis: VIRIDIS, diverging: DIVERGING };

/**
 * A heatmap of an n×n grid over [−1, 1]² (row 0 at the top, null = outside the disk).
 * spec: { title, n, values, vmin, vmax, map, barLabel, note }
 */
export function drawHeatmap(canvas, spec) {
  const { ctx, w, h } = setup(canvas);
  const m = { l: 46, t: 30, b: 40 };
  const size = Math.min(h - m.t - m.b, w - m.l - 96);
  const x0 = m.l;
  const y0 = m.t;
  ctx.fillStyle = '#1d2430';
  ctx.font = `600 14px ${FONT}`;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  ctx.fillText(spec.title, 10, 19);

  ctx.fillStyle = '#eceff3';
  ctx.fillRect(x0, y0, size, size);
  if (spec.values) {
    const n = spec.n;
    const img = new ImageData(n, n);
    const span = spec.vmax - spec.vmin || 1;
    spec.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const [r, g, b] = colour(COLOUR_MAPS[spec.map], (v - spec.vmin) / span);
      img.data.set([r, g, b, 255], 4 * i);
    });
    const off = document.createElement('canvas');
    off.width = n; off.height = n;
    off.getContext('2d').putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, x0, y0, size, size);
  } else {
    ctx.fillStyle = '#8b95a3'; ctx.font = `13px ${FONT}`; ctx.textAlign = 'center';
    ctx.fillText(spec.note || 'no data yet', x0 + size / 2, y0 + size / 2);
  }
  // The unit circle, frame, ticks and axis labels.
  ctx.strokeStyle = '#4b5563'; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.arc(x0 + size / 2, y0 + size / 2, size / 2, 0, 2 * Math.PI); ctx.stroke();
  ctx.strokeStyle = '#8b95a3'; ctx.strokeRect(x0, y0, size, size);
  ctx.fillStyle = '#3b4453'; ctx.font = `12px ${FONT}`;
  for (const t of [-1, -0.5, 0, 0.5, 1]) {
    const px = x0 + ((t + 1) / 2) * size;
    const py = y0 + ((1 - t) / 2) * size;
    ctx.beginPath(); ctx.moveTo(px, y0 + size); ctx.lineTo(px, y0 + size + 4); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(x0 - 4, py); ctx.lineTo(x0, py); ctx.stroke();
    if (t === -1 || t === 0 || t === 1) {
      ctx.textAlign = 'center'; ctx.textBaseline = 'top';
      ctx.fillText(String(t), px, y0 + size + 5);
      ctx.textAlign = 'right'; ctx.textBaseline = 'middle';
      ctx.fillText(String(t), x0 - 6, py);
    }
  }
  ctx.fillStyle = '#1d2430'; ctx.font = `italic 13px ${FONT}`;
  ctx.textAlign = 'center'; ctx.textBaseline = 'alphabetic';
  ctx.fillText('x₁', x0 + size / 2, y0 + size + 32);
  ctx.save(); ctx.translate(13, y0 + size / 2); ctx.rotate(-Math.PI / 2);
  ctx.fillText('x₂', 0, 0); ctx.restore();

  // Colour bar with five labelled ticks.
  const bx = x0 + size + 16;
  const bw = 14;
  if (spec.values) {
    for (let i = 0; i < size; i++) {
      const [r, g, b] = colour(COLOUR_MAPS[spec.map], 1 - i / (size - 1));
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.fillRect(bx, y0 + i, bw, 1.5);
    }
    ctx.strokeStyle = '#8b95a3'; ctx.strokeRect(bx, y0, bw, size);
    ctx.fillStyle = '#3b4453'; ctx.font = `11.5px ${FONT}`; ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
    for (let k = 0; k <= 4; k++) {
      const v = spec.vmin + (k / 4) * (spec.vmax - spec.vmin);
      const y = y0 + size - (k / 4) * size;
      ctx.beginPath(); ctx.moveTo(bx + bw, y); ctx.lineTo(bx + bw + 3, y); ctx.stroke();
      ctx.fillText(fmt(v), bx + bw + 5, y);
    }
  }
  ctx.save();
  ctx.translate(w - 8, y0 + size / 2); ctx.rotate(Math.PI / 2);
  ctx.fillStyle = '#1d2430'; ctx.font = `12px ${FONT}`; ctx.textAlign = 'center'; ctx.textBaseline = 'middle';
  ctx.fillText(spec.barLabel, 0, 0);
  ctx.restore();
}
