// Plots on a canvas with uPlot (one path per series, not one node per point: 100,000 points draw in
// milliseconds). Several series with their own times are merged on one time axis; thresholds are flat
// lines, an uncertainty band fills between two series, a cursor marks the time the page travelled to.

import { uPlotReady } from "./api.js";
import { h } from "./dom.js";

const COLORS = ["#1f5f99", "#2e8b57", "#6a3d9a", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#b8860b"];

/** ISO 8601 timestamps → seconds since the epoch (what uPlot's time axis takes). */
export function seconds(items, key = "timestamp") {
  const out = new Float64Array(items.length);
  for (let i = 0; i < items.length; i += 1) out[i] = Date.parse(items[i][key]) / 1000;
  return out;
}

function merge(series) {
  if (series.length === 1) return [series[0].x, [series[0].y]];
  const all = new Set();
  for (const s of series) for (const x of s.x) all.add(x);
  const xs = Float64Array.from([...all].sort((a, b) => a - b));
  const ys = series.map((s) => {
    const at = new Map();
    for (let i = 0; i < s.x.length; i += 1) at.set(s.x[i], s.y[i]);
    return Array.from(xs, (x) => (at.has(x) ? at.get(x) : null));
  });
  return [xs, ys];
}

/** Draw ``series`` [{label, x, y, dash}] into ``el``; returns {plot, points, ms}. */
export async function timeSeries(el, { series, thresholds = [], band = null, yLabel = "", cursorAt = null,
  height = 300, time = true, title = "" }) {
  const uPlot = await uPlotReady();
  const started = performance.now();
  const parts = [...series];
  if (band) parts.push({ ...band.upper, label: `${band.label || "band"} (upper)`, band: true },
    { ...band.lower, label: `${band.label || "band"} (lower)`, band: true });
  const [xs, ys] = merge(parts.filter((s) => s.x.length));
  const points = series.reduce((n, s) => n + s.x.length, 0);
  const data = [xs, ...ys];
  const opts = [];
  let k = 0;
  for (const s of parts.filter((p) => p.x.length)) {
    const color = s.band ? "#7fa7cf" : COLORS[k % COLORS.length];
    if (!s.band) k += 1;
    opts.push({ label: s.label, stroke: color, width: s.band ? 1 : 1.6, dash: s.dash, spanGaps: true,
      points: { show: s.x.length < 60 && !s.band } });
  }
  for (const [i, t] of thresholds.entries()) {
    data.push(new Float64Array(xs.length).fill(t.value));
    opts.push({ label: `${t.label || "threshold"} = ${t.value}`, stroke: "#a4161a", dash: [6, 4], width: 1.5,
      points: { show: false }, value: () => String(t.value) });
    void i;
  }
  const bands = [];
  if (band) {
    const upper = parts.findIndex((p) => p.band) + 1;
    if (upper > 0 && parts[upper]) bands.push({ series: [upper, upper + 1], fill: "rgba(31,95,153,0.15)" });
  }
  const width = Math.max(280, el.clientWidth || el.parentElement?.clientWidth || 600);
  const plot = new uPlot({
    width, height, title, scales: { x: { time } }, series: [{ label: time ? "time (UTC)" : "x" }, ...opts], bands,
    axes: [{}, { label: yLabel, size: 60 }], legend: { live: true }, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    hooks: cursorAt === null ? {} : { draw: [(u) => {
      const x = u.valToPos(cursorAt, "x", true);
      if (!Number.isFinite(x)) return;
      const { ctx, bbox } = u;
      ctx.save(); ctx.strokeStyle = "#f0a202"; ctx.lineWidth = 2; ctx.beginPath();
      ctx.moveTo(x, bbox.top); ctx.lineTo(x, bbox.top + bbox.height); ctx.stroke(); ctx.restore();
    }] },
  }, data, el);
  const ms = performance.now() - started;
  el.dataset.points = String(points);
  el.dataset.drawMs = ms.toFixed(1);
  const observer = new ResizeObserver(() => {
    const w = Math.max(280, el.clientWidth);
    if (Math.abs(w - plot.width) > 4) plot.setSize({ width: w, height });
  });
  observer.observe(el);
  plot.root.setAttribute("role", "img");
  plot.root.setAttribute("aria-label", `${title || "plot"}: ${series.map((s) => `${s.label} (${s.x.length} points)`).join(", ")}`);
  return { plot, points, ms, destroy: () => { observer.disconnect(); plot.destroy(); } };
}

/** A figure with a slot for a plot and a line of text about it. */
export function figure(label) {
  const slot = h("div", { class: "plot", "data-label": label });
  const info = h("p", { class: "plot-info" });
  return { el: h("figure", { class: "plot-figure" }, slot, info), slot, info };
}

export function summary(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) if (typeof v === "number" && Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return Number.isFinite(lo) ? { lo, hi } : null;
}
