import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { RowdoctorError } from '../errors.js';
import type { Rule } from '../rules/types.js';
import type { CatalogWarning, Table } from './types.js';

/** A warning in every command's JSON (contract §JSON `warnings`). */
export interface Warning {
  code: 'rls' | 'trigger' | CatalogWarning['code'];
  message: string;
  table: string;
}

/**
 * The tables whose rows the connected role sees only in part: row-level security in force for it
 * (the server's own answer, row_security_active: not a superuser, not BYPASSRLS, not the owner of
 * a table without FORCE ROW LEVEL SECURITY).
 */
export async function rowSecurityInForce(db: Db | Tx, tables: Table[]): Promise<Table[]> {
  if (!tables.length) return [];
  const { rows } = await sql<{ oid: number }>`
    select t.oid::int as oid
      from unnest(${tables.map((t) => t.oid)}::oid[]) as t(oid)
     where row_security_active(t.oid)`.execute(db);
  const active = new Set(rows.map((r) => r.oid));
  return tables.filter((t) => active.has(t.oid));
}

/** The tables a rule reads: its own, and an orphan rule's parent. */
export function tablesRead(rules: Rule[]): Table[] {
  const byId = new Map<string, Table>();
  for (const r of rules) {
    byId.set(r.table.id, r.table);
    if (r.check === 'orphaned-rows') byId.set(r.parent.id, r.parent);
  }
  return [...byId.values()];
}

async function currentRole(db: Db | Tx): Promise<string> {
  return (await sql<{ u: string }>`select current_user as u`.execute(db)).rows[0]?.u ?? 'this role';
}

/** scan and verify-constraints go on, but say that their counts cover only the visible rows. */
export async function rowSecurityWarnings(db: Db | Tx, tables: Table[]): Promise<Warning[]> {
  const hidden = await rowSecurityInForce(db, tables);
  if (!hidden.length) return [];
  const role = await currentRole(db);
  return hidden.map((t) => ({
    code: 'rls',
    table: t.id,
    message:
      `row-level security is in force on ${t.id} for role "${role}": counts cover only the rows its policies ` +
      'let this role see',
  }));
}

/**
 * repair and undo stop before anything changes: through a policy a repair would judge a visible
 * child orphaned while its parent is hidden, or delete a merged row whose hidden children then
 * cascade away.
 */
export async function refuseRowSecurity(db: Db | Tx, tables: Table[], command: 'repair' | 'undo'): Promise<void> {
  const hidden = await rowSecurityInForce(db, tables);
  if (!hidden.length) return;
  const role = await currentRole(db);
  throw new RowdoctorError(
    `Row-level security is in force for role "${role}" on ${hidden.map((t) => t.id).join(', ')}: ${command} would ` +
      'see only the rows its policies let it see, and could remove rows whose parents or children are hidden. ' +
      'Nothing was changed.',
    {
      hint:
        'Run it as a role that sees every row: the tables’ owner (when they are not FORCE ROW LEVEL SECURITY), ' +
        'a superuser, or a role with BYPASSRLS.',
    },
  );
}

/** One stderr line per warning, as every command prints them. */
export function printWarnings(warnings: Warning[]): void {
  for (const w of warnings) process.stderr.write(`rowdoctor: warning: ${w.message}\n`);
}
