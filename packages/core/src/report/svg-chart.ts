// Small self-contained SVG charts for the HTML reports: line charts (one polyline per series, a dot per
// point when a series is sparse) and horizontal stacked bars. No scripts, no external files, so a report
// opens anywhere and can be attached to an issue.
import { maxOf, minOf } from '../util/stats.js';

export interface Series {
  name: string;
  /** [x, y] pairs; non-finite y values are left out. */
  points: readonly (readonly [number, number])[];
  /** Draw a dot at each point (for sparse series such as evaluations). */
  dots?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Start the y axis at 0 (quantities such as times and bytes). */
  yFromZero?: boolean;
  /** Only whole-number ticks on the x axis (steps). */
  xIntegers?: boolean;
}

// the top margin leaves room for the title and, below it, the legend
export const CHART_MARGIN = { left: 64, right: 16, top: 44, bottom: 40 };
export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf'];

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function formatTick(v: number, digits = 4): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(digits - 3);
  return String(+v.toPrecision(digits));
}

/**
 * Labels of axis ticks with as few digits as tell them apart (a loss varying in its fourth digit gets
 * more than "10.8, 10.8, 10.8").
 */
export function tickLabels(ticks: readonly number[]): string[] {
  for (let digits = 4; digits < 15; digits++) {
    const labels = ticks.map((t) => formatTick(t, digits));
    if (new Set(labels).size === labels.length) return labels;
  }
  return ticks.map((t) => String(t));
}

/** The linear map of [d0, d1] onto [r0, r1] (a constant domain maps to the middle). */
export function scale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  if (!(d1 > d0)) return () => (r0 + r1) / 2;
  return (v) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
}

function frame(o: ChartOptions, w: number, h: number, body: string, legend: string[]): string {
  const items = legend
    .map(
      (name, i) =>
        `<tspan fill="${PALETTE[i % PALETTE.length]}">&#9632;</tspan><tspan dx="3" dy="0">${escapeHtml(name)}</tspan><tspan dx="10"> </tspan>`,
    )
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" ` +
    `font-family="sans-serif" font-size="11" role="img" aria-label="${escapeHtml(o.title)}">` +
    `<text x="${CHART_MARGIN.left}" y="16" font-size="13" font-weight="bold">${escapeHtml(o.title)}</text>` +
    (items ? `<text x="${CHART_MARGIN.left}" y="32">${items}</text>` : '') +
    body +
    `<text x="${(CHART_MARGIN.left + w - CHART_MARGIN.right) / 2}" y="${h - 6}" text-anchor="middle">${escapeHtml(o.xLabel)}</text>` +
    `<text transform="translate(12 ${(CHART_MARGIN.top + h - CHART_MARGIN.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(o.yLabel)}</text>` +
    `</svg>`
  );
}

/** One polyline per series over shared axes. */
export function lineChart(series: readonly Series[], o: ChartOptions): string {
  const w = o.width ?? 640;
  const h = o.height ?? 260;
  const pts = series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  if (!pts.length) return frame(o, w, h, `<text x="${w / 2}" y="${h / 2}">no data</text>`, []);
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const [x0, x1] = [minOf(xs), maxOf(xs)];
  const [y0, y1] = [o.yFromZero ? Math.min(0, minOf(ys)) : minOf(ys), maxOf(ys)];
  const sx = scale(x0, x1, CHART_MARGIN.left, w - CHART_MARGIN.right);
  const sy = scale(y0, y1, h - CHART_MARGIN.bottom, CHART_MARGIN.top);
  let body = '';
  const yTicks = niceTicks(y0, y1);
  const yLabels = tickLabels(yTicks);
  yTicks.forEach((t, i) => {
    const y = sy(t).toFixed(1);
    body +=
      `<line x1="${CHART_MARGIN.left}" x2="${w - CHART_MARGIN.right}" y1="${y}" y2="${y}" stroke="#ddd"/>` +
      `<text x="${CHART_MARGIN.left - 4}" y="${y}" dy="3" text-anchor="end">${yLabels[i]}</text>`;
  });
  const xTicks = niceTicks(x0, x1).filter((v) => !o.xIntegers || Number.isInteger(v));
  const xLabels = tickLabels(xTicks);
  xTicks.forEach((t, i) => {
    const x = sx(t).toFixed(1);
    body += `<text x="${x}" y="${h - CHART_MARGIN.bottom + 14}" text-anchor="middle">${xLabels[i]}</text>`;
  });
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    const coords = p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
    body += `<polyline data-series="${escapeHtml(s.name)}" points="${coords.join(' ')}" fill="none" stroke="${color}" stroke-width="1.5"/>`;
    if (s.dots || p.length === 1)
      for (const c of coords) {
        const [cx, cy] = c.split(',');
        body += `<circle cx="${cx}" cy="${cy}" r="2.5" fill="${color}"/>`;
      }
  });
  return frame(
    o,
    w,
    h,
    body,
    series.map((s) => s.name),
  );
}

export interface Bar {
  label: string;
  /** Stacked left to right; each segment's name is a legend entry. */
  segments: readonly { name: string; value: number }[];
}

/** Horizontal bars, stacked by segment, on one shared value axis from 0. */
export function barChart(bars: readonly Bar[], o: ChartOptions): string {
  const w = o.width ?? 640;
  const rowH = 22;
  const left = 150;
  const h = CHART_MARGIN.top + CHART_MARGIN.bottom + rowH * bars.length;
  const names = [...new Set(bars.flatMap((b) => b.segments.map((s) => s.name)))];
  const total = (b: Bar) => b.segments.reduce((a, s) => a + Math.max(0, s.value), 0);
  const max = maxOf(bars.map(total), 0);
  const sx = scale(0, max, left, w - CHART_MARGIN.right);
  let body = '';
  const ticks = niceTicks(0, max);
  const labels = tickLabels(ticks);
  ticks.forEach((t, i) => {
    const x = sx(t).toFixed(1);
    body +=
      `<line x1="${x}" x2="${x}" y1="${CHART_MARGIN.top}" y2="${h - CHART_MARGIN.bottom}" stroke="#ddd"/>` +
      `<text x="${x}" y="${h - CHART_MARGIN.bottom + 14}" text-anchor="middle">${labels[i]}</text>`;
  });
  bars.forEach((b, row) => {
    const y = CHART_MARGIN.top + row * rowH;
    body += `<text x="${left - 6}" y="${y + rowH / 2 + 4}" text-anchor="end">${escapeHtml(b.label)}</text>`;
    let at = 0;
    for (const s of b.segments) {
      const v = Math.max(0, s.value);
      const color = PALETTE[names.indexOf(s.name) % PALETTE.length];
      body +=
        `<rect data-bar="${escapeHtml(b.label)}" data-segment="${escapeHtml(s.name)}" x="${sx(at).toFixed(1)}" y="${y + 3}" ` +
        `width="${(sx(at + v) - sx(at)).toFixed(1)}" height="${rowH - 6}" fill="${color}"><title>${escapeHtml(`${s.name}: ${formatTick(s.value)}`)}</title></rect>`;
      at += v;
    }
  });
  return frame(o, w, h, body, names.length > 1 ? names : []);
}
