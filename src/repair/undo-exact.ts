import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';

/** A table undo could not restore bit for bit, and why. */
export interface Inexact {
  table: string;
  reason: string;
}

/**
 * Undo restores bit for bit by running with session_replication_role = replica: ordinary triggers
 * (a BEFORE UPDATE that stamps updated_at) and foreign-key checks (a NOT VALID key that rejects the
 * rows it was added after) then stay quiet, as for a logical replication apply. A superuser may set
 * it; from PostgreSQL 15 a role granted SET ON PARAMETER session_replication_role may too.
 */
export async function mayReplicate(db: Db | Tx, serverVersion: number): Promise<boolean> {
  const grant = serverVersion >= 150000 ? sql`has_parameter_privilege('session_replication_role', 'SET')` : sql`false`;
  const { rows } = await sql<{ ok: boolean }>`
    select coalesce((select rolsuper from pg_roles where rolname = current_user), false) or ${grant} as ok`.execute(db);
  return rows[0]?.ok === true;
}

export async function useReplicaRole(tx: Tx): Promise<void> {
  await sql`set local session_replication_role = replica`.execute(tx);
}

/**
 * What would keep the restore from being exact: triggers that would fire on the restored rows
 * (in replica mode only ENABLE ALWAYS / ENABLE REPLICA ones), and, without replica mode, NOT VALID
 * foreign keys of tables that get rows back.
 */
export async function inexactTables(
  db: Db | Tx,
  targets: { table: Table; restores: boolean }[],
  replica: boolean,
): Promise<Inexact[]> {
  const out: Inexact[] = [];
  const firing = replica ? ['A', 'R'] : ['O', 'A'];
  for (const { table, restores } of targets) {
    const triggers = await sql<{ name: string }>`
      select tgname as name
        from pg_trigger
       where tgrelid = ${table.oid}::oid and not tgisinternal and tgenabled = any(${firing}::"char"[])
       order by 1`.execute(db);
    if (triggers.rows.length)
      out.push({
        table: table.id,
        reason: `trigger ${triggers.rows.map((t) => t.name).join(', ')} would fire on the restored rows`,
      });
    if (replica || !restores) continue;
    const keys = await sql<{ name: string }>`
      select conname as name
        from pg_constraint
       where conrelid = ${table.oid}::oid and contype = 'f' and not convalidated
       order by 1`.execute(db);
    if (keys.rows.length)
      out.push({
        table: table.id,
        reason: `NOT VALID foreign key ${keys.rows.map((k) => k.name).join(', ')} may reject rows it was added after`,
      });
  }
  return out;
}
