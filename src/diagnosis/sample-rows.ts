import { sql } from 'kysely';
import type { Finding } from '../checks/types.js';
import type { Tx } from '../db.js';
import type { Table } from '../catalog/types.js';
import { and, col, equalityOperator, rowId, rowIdOrder, tableRef, type Sql } from '../sql/build.js';
import type { CreationColumn } from './created-at.js';
import { comparedColumns, differs } from './differs.js';
import { instant } from './time.js';

/**
 * --show-rows: every row of the finding's first `n` sample groups, each value as PostgreSQL
 * prints it, in the diagnosis's order (creation time, undated last, then primary key). For
 * duplicates, each sample also lists the columns where a copy differs from the group's first row
 * (the same comparison as differingColumns). One statement, rows found by their ids.
 */
export async function sampleRows(tx: Tx, finding: Finding, created: CreationColumn | null, n: number): Promise<void> {
  const samples = finding.samples.slice(0, n);
  if (!samples.length) return;
  const table = finding.rule.table;
  const t = created ? instant(col('r', created.column), created.kind) : sql`null::timestamptz`;
  const marked = finding.check === 'duplicate-rows' ? comparedColumns(table, created?.column ?? '') : [];
  const names = table.columns.map((c) => c.name);
  const printed = sql.join(table.columns.map((c) => sql`${col('r', c.name)}::text`));
  const firsts = marked.map((c) => differs(c, col('r', c.name), sql`first_value(${col('r', c.name)}) over w`));
  const flags = firsts.length ? sql`array[${sql.join(firsts)}]` : sql`array[]::boolean[]`;
  const ids = JSON.stringify(samples.map((s) => s.ids));
  // The sample groups' ids (gi: the group's place among the samples), their rows, and per row
  // which compared columns differ from the group's first row.
  const { rows } = await sql<{ gi: string; row: Record<string, string | null>; flags: boolean[] }>`
    with ids as (
      select s.ord as gi, e.v
        from pg_catalog.json_array_elements(${ids}::json) with ordinality s(ids, ord)
       cross join lateral pg_catalog.json_array_elements(s.ids) e(v)
    )
    select ids.gi,
           pg_catalog.json_object(${names}::text[], array[${printed}]::text[]) as row,
           ${flags} as flags
      from ids
      join ${tableRef(table)} r on ${matchesId(table)}
    window w as (partition by ids.gi order by ${t} nulls last, ${rowIdOrder(table, 'r')})
     order by ids.gi, ${t} nulls last, ${rowIdOrder(table, 'r')}`.execute(tx);
  samples.forEach((sample, i) => {
    const mine = rows.filter((r) => Number(r.gi) === i + 1);
    sample.rows = mine.map((r) => r.row);
    if (finding.check === 'duplicate-rows')
      sample.differingColumns = marked.filter((_, c) => mine.some((r) => r.flags[c])).map((c) => c.name);
  });
}

/** Row `r` is the one sample id `ids.v` (a json value: the key, an array of a composite key's parts, a ctid). */
function matchesId(table: Table): Sql {
  const pk = table.primaryKey;
  const typed = (value: Sql, type: string) => sql`(${value})::${sql.raw(type)}`;
  if (!pk) {
    if (table.partitioned) return sql`${rowId(table, 'r')} = (ids.v #>> '{}')`;
    return sql`r.ctid = (ids.v #>> '{}')::tid`;
  }
  return and(
    pk.map((name, i) => {
      const c = table.columns.find((x) => x.name === name)!;
      const part = pk.length === 1 ? sql`ids.v #>> '{}'` : sql`ids.v ->> ${sql.lit(i)}`;
      return sql`${col('r', name)} ${equalityOperator(c.equality)} ${typed(part, c.type)}`;
    }),
  );
}
