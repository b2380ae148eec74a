import { sql } from 'kysely';
import type { Catalog, Table } from '../catalog/types.js';
import type { Db } from '../db.js';
import { RowdoctorError } from '../errors.js';
import type { Rule } from '../rules/types.js';
import { BACKUP_SCHEMA } from '../journal/backup-tables.js';
import { referencesInto } from './references.js';

/**
 * Before anything changes: does this role hold every privilege the repair needs? Checked up front
 * so a missing one is an exit-2 message naming it, not a failure halfway through.
 */
export async function checkPrivileges(
  db: Db,
  catalog: Catalog,
  rules: Rule[],
  declared: Rule[],
  options: { backup: boolean; infer: boolean },
): Promise<void> {
  const needs = new Map<string, { table: Table; privileges: Set<string> }>();
  const need = (table: Table, ...privileges: string[]) => {
    const e = needs.get(table.id) ?? { table, privileges: new Set<string>(['SELECT']) };
    privileges.forEach((p) => e.privileges.add(p));
    needs.set(table.id, e);
  };
  const visit = (table: Table, seen: Set<string>) => {
    if (seen.has(table.id)) return;
    seen.add(table.id);
    need(table, 'DELETE', 'UPDATE');
    for (const ref of referencesInto(catalog, table, declared, options.infer)) {
      need(ref.child, 'UPDATE');
      visit(ref.child, seen);
    }
  };
  for (const rule of rules) {
    if (rule.check === 'orphaned-rows') need(rule.table, rule.repair === 'delete' ? 'DELETE' : 'UPDATE');
    else visit(rule.table, new Set());
  }
  const missing: string[] = [];
  for (const { table, privileges } of needs.values()) {
    for (const p of privileges) {
      const ok = await sql<{ ok: boolean }>`select has_table_privilege(${table.oid}::oid, ${p}) as ok`.execute(db);
      if (!ok.rows[0]?.ok) missing.push(`${p} on ${table.id}`);
    }
  }
  if (options.backup) {
    const r = await sql<{ exists: boolean; create_db: boolean; create_schema: boolean | null }>`
      select exists (select 1 from pg_namespace where nspname = ${BACKUP_SCHEMA}) as exists,
             has_database_privilege(current_database(), 'CREATE') as create_db,
             case when exists (select 1 from pg_namespace where nspname = ${BACKUP_SCHEMA})
                  then has_schema_privilege(${BACKUP_SCHEMA}, 'CREATE, USAGE') end as create_schema`.execute(db);
    const row = r.rows[0]!;
    if (!row.exists && !row.create_db) missing.push(`CREATE on database (to create schema ${BACKUP_SCHEMA})`);
    if (row.exists && !row.create_schema) missing.push(`CREATE, USAGE on schema ${BACKUP_SCHEMA}`);
  }
  if (missing.length) {
    const role = (await sql<{ u: string }>`select current_user as u`.execute(db)).rows[0]?.u ?? 'this role';
    throw new RowdoctorError(
      `Role "${role}" lacks privileges this repair needs: ${missing.join('; ')}. Nothing was changed.`,
      {
        hint:
          `Grant them (e.g. GRANT ${missing[0]!.split(' on ')[0]} ON ${missing[0]!.split(' on ')[1]} TO "${role}") ` +
          'or run as a role that has them.',
        exitCode: 2,
      },
    );
  }
}
