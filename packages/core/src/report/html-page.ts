// The page around a report: one self-contained HTML file (inline style, no scripts) and its tables.
import { escapeHtml } from './svg-chart.js';

export function htmlPage(title: string, body: string): string {
  return (
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
    `<style>body{font-family:sans-serif;margin:24px;max-width:1320px}svg{margin:8px 12px 8px 0;vertical-align:top}` +
    `table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:right}` +
    `td:first-child,th:first-child{text-align:left}</style></head><body>${body}</body></html>\n`
  );
}

export function htmlTable(rows: readonly (readonly string[])[]): string {
  const [head, ...rest] = rows;
  return (
    `<table><tr>${head!.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr>` +
    rest.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('') +
    `</table>`
  );
}
