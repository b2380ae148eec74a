import type { TestDb } from './db.js';

/** Per user table: its row count and the sum of each numeric column (conservation checks). */
export type TableStats = Record<string, { rows: number; sums: Record<string, string> }>;

export async function tableStats(db: TestDb): Promise<TableStats> {
  const cols = await db.query<{ t: string; c: string }>(`
    select format('%I.%I', n.nspname, c.relname) as t, a.attname as c
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                               and a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype)
     where c.relkind in ('r', 'p') and not c.relispartition
       and n.nspname not in ('pg_catalog', 'information_schema', 'rowdoctor_backup') and n.nspname not like 'pg\\_%'
     order by 1, a.attnum`);
  const out: TableStats = {};
  for (const t of [...new Set(cols.map((r) => r.t))]) {
    const names = cols.filter((r) => r.t === t && r.c).map((r) => r.c);
    const sums = names.map((c, i) => `coalesce(sum("${c.replace(/"/g, '""')}"), 0)::text as s${i}`);
    const [row] = await db.query<Record<string, string>>(
      `select count(*)::int as rows${sums.length ? ', ' + sums.join(', ') : ''} from ${t}`,
    );
    out[t] = { rows: Number(row!.rows), sums: Object.fromEntries(names.map((c, i) => [c, row![`s${i}`]!])) };
  }
  return out;
}
