import type { Finding, Sample } from '../checks/types.js';
import type { Diagnosis } from '../diagnosis/types.js';
import { plural, show } from './style.js';

/** The 30 days of perDay, oldest first, as the sparkline draws them. */
const DAYS = 30;
const BARS = '▁▂▃▄▅▆▇█';

/**
 * One line per finding (contract): `first 2026-11-02 · last 2026-12-06 09:14 · still happening: 3 in
 * 24 h · copies 0.4 s apart (double-submit) · copies differ in status (4 groups)`. Times are UTC.
 */
export function diagnosisLine(d: Diagnosis, recentMs: number): string {
  const parts: string[] = [];
  if (d.first && d.last) parts.push(`first ${d.first.slice(0, 10)}`, `last ${minute(d.last)}`);
  else parts.push('no damaged row has a creation time');
  const window = duration(recentMs / 1000, true);
  parts.push(
    d.stillHappening ? `still happening: ${d.recent.toLocaleString('en-US')} in ${window}` : `none in ${window}`,
  );
  if (d.copyGap) parts.push(`copies ${duration(d.copyGap.p50, false)} apart (${d.signature})`);
  if (d.differingColumns?.length)
    parts.push(
      `copies differ in ${d.differingColumns.map((c) => `${c.column} (${plural(c.groups, 'group')})`).join(', ')}`,
    );
  else if (d.differingColumns) parts.push('copies agree in every other column');
  if (d.parentDeleted) parts.push(`parents deleted ${minute(d.parentDeleted.first)} – ${minute(d.parentDeleted.last)}`);
  if (d.undated) parts.push(`${plural(d.undated, 'row')} without a creation time`);
  return parts.join(' · ');
}

/**
 * Damaged rows per UTC day over the last 30 days, today rightmost: `·` a day without damage, then
 * eight heights up to the busiest day. `today` is the UTC date (YYYY-MM-DD) the scan ran.
 */
export function sparkline(d: Diagnosis, today: string): string {
  const counts = new Map(d.perDay.map((p) => [p.day, p.count]));
  const end = Date.parse(`${today}T00:00:00Z`);
  const days = Array.from({ length: DAYS }, (_, i) =>
    new Date(end - (DAYS - 1 - i) * 86_400_000).toISOString().slice(0, 10),
  );
  const max = Math.max(0, ...days.map((day) => counts.get(day) ?? 0));
  const bars = days
    .map((day) => {
      const n = counts.get(day) ?? 0;
      return n === 0 ? '·' : BARS[Math.max(0, Math.ceil((n / max) * BARS.length) - 1)]!;
    })
    .join('');
  const before = d.before ? ` · ${d.before.toLocaleString('en-US')} before` : '';
  const busiest = max ? `busiest day ${max.toLocaleString('en-US')}` : 'none in these 30 days';
  return `${days[0]} ${bars} ${today} (UTC; ${busiest})${before}`;
}

/** A diagnosis as the lines a text or markdown report prints under its finding (null: not diagnosed). */
export function diagnosisLines(f: Finding, recentMs: number, today: string): string[] | null {
  if (f.diagnosis === undefined) return null;
  if (f.diagnosis === null) return [f.diagnosisHint ?? 'no creation time'];
  return [diagnosisLine(f.diagnosis, recentMs), sparkline(f.diagnosis, today)];
}

/** A sample group's rows (--show-rows), as a plain grid: differing columns marked `*`. */
export function sampleRowLines(sample: Sample): string[] {
  const rows = sample.rows ?? [];
  if (!rows.length) return [];
  const columns = Object.keys(rows[0]!);
  const marked = new Set(sample.differingColumns ?? []);
  const head = columns.map((c) => (marked.has(c) ? `${c}*` : c));
  const cells = rows.map((r) => columns.map((c) => show(r[c] ?? null)));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(head), ...cells.map(line)];
}

/** HH:MM of a rendered time, after its date; a date alone stays a date. */
function minute(t: string): string {
  return t.length > 10 ? `${t.slice(0, 10)} ${t.slice(11, 16)}` : t;
}

/** Seconds as a person reads them: 0.4 s, 12 s, 4 min, 3 h, 12 days (a window: 24 h, 7 days). */
function duration(s: number, window: boolean): string {
  const round = (x: number) => (x >= 10 ? Math.round(x) : Math.round(x * 10) / 10);
  if (s < 60) return `${round(s)} s`;
  if (s < 3600) return `${round(s / 60)} min`;
  if (s < 86400 * (window ? 7 : 2)) return `${round(s / 3600)} h`;
  return `${round(s / 86400)} days`;
}
