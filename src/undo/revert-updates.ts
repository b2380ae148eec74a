import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import type { Tx } from '../db.js';
import { BACKUP_SCHEMA } from '../journal/backup-tables.js';
import { tableRef } from '../sql/build.js';
import { inSlice, pkEquals, type Slice } from './conflicts.js';
import type { BackupInfo } from './types.js';

/**
 * How a live row is matched to its backup when reverting an update: by primary key; in a table
 * without one, by every column the run did not change (rows equal in all of those are
 * interchangeable, so the table comes back as the same multiset of rows).
 */
function sameRow(table: Table, changed: string[], a: string, b: string) {
  if (table.primaryKey) return pkEquals(table, a, b);
  const others = table.columns.filter((c) => !changed.includes(c.name) && !c.generated);
  return sql.join(
    others.map((c) => sql`${sql.id(a, c.name)} is not distinct from ${sql.id(b, c.name)}`),
    sql` and `,
  );
}

/** Each updated row gets back its changed columns from its earliest backup in the run. */
export async function revertUpdated(tx: Tx, info: BackupInfo, slice: Slice): Promise<void> {
  if (!info.revert) return;
  const sets = await sql<{
    cols: string[];
  }>`select distinct _rd_columns as cols from ${sql.id(BACKUP_SCHEMA, info.backup)}
     where ${inSlice(info, slice)} and _rd_op = 'update'`.execute(tx);
  const id = info.table.primaryKey ? sql.join(info.table.primaryKey.map((c) => sql.id(c))) : sql`_rd_seq`;
  for (const { cols } of sets.rows) {
    await sql`update ${tableRef(info.table)} t set ${sql.join(cols.map((c) => sql`${sql.id(c)} = b.${sql.id(c)}`))}
      from (select distinct on (${id}) * from ${info.source} s
             where ${inSlice(info, slice)} and _rd_op = 'update' and _rd_columns = ${cols}::text[]
             order by ${id}, _rd_seq) b
     where ${sameRow(info.table, cols, 't', 'b')}`.execute(tx);
  }
}
