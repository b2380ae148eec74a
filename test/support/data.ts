/** Deterministic pseudo-random data, so expected counts can be computed in the test itself. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(r: () => number, items: readonly T[]): T {
  return items[Math.floor(r() * items.length)]!;
}

/** SQL literal for a JS value (tests only; values are generated, not user input). */
export function lit(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const text = typeof v === 'string' ? v : JSON.stringify(v);
  return `'${text.replace(/'/g, "''")}'`;
}

export function insertSql(table: string, columns: string[], rows: unknown[][]): string {
  if (!rows.length) return '';
  return `insert into ${table} (${columns.join(', ')}) values\n${rows.map((r) => `(${r.map(lit).join(', ')})`).join(',\n')};`;
}

/** Groups of size > 1 and Σ(size − 1), by a key function; rows whose key is undefined are left out. */
export function duplicateCounts<T>(rows: T[], key: (row: T) => string | undefined): { groups: number; rows: number } {
  const sizes = new Map<string, number>();
  for (const row of rows) {
    const k = key(row);
    if (k !== undefined) sizes.set(k, (sizes.get(k) ?? 0) + 1);
  }
  let groups = 0;
  let excess = 0;
  for (const n of sizes.values())
    if (n > 1) {
      groups++;
      excess += n - 1;
    }
  return { groups, rows: excess };
}
