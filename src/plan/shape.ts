import { sql } from 'kysely';
import type { Catalog, Table } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import { isPgError, RowdoctorError } from '../errors.js';
import { md5, type Plan, type TableShape } from './file.js';

/** Which database a plan was made on: its name and the cluster's system identifier. */
export interface DatabaseIdentity {
  name: string;
  systemIdentifier: string;
}

/**
 * current_database() and pg_control_system().system_identifier (unique per cluster, kept by
 * physical replicas: a plan made on the primary applies on it after a failover to its standby).
 */
export async function databaseIdentity(db: Db | Tx): Promise<DatabaseIdentity> {
  const name = await sql<{ name: string }>`select current_database() as name`.execute(db);
  let systemIdentifier = 'unknown';
  try {
    const sid = await sql<{
      sid: string;
    }>`select system_identifier::text as sid from pg_catalog.pg_control_system()`.execute(db);
    systemIdentifier = sid.rows[0]?.sid ?? 'unknown';
  } catch (e) {
    // A role without EXECUTE on it still plans; both sides then compare by name alone.
    if (!isPgError(e) || e.code !== '42501') throw e;
  }
  return { name: name.rows[0]!.name, systemIdentifier };
}

/**
 * The shape of a table a plan relies on, as md5s: its columns (name, type, NOT NULL, generated),
 * its keys (primary key and valid unique indexes, as the server deparses them) and its references
 * (foreign keys from or into it). Anything else (a comment, a plain index) may change freely.
 */
export function tableShape(catalog: Catalog, table: Table): TableShape {
  const columns = table.columns.map((c) => [c.name, c.type, c.notNull, c.generated]);
  const keys = [
    table.primaryKey,
    table.uniqueIndexes
      .filter((i) => i.valid)
      .map((i) => i.definition.replace(/^CREATE UNIQUE INDEX \S+ /, ''))
      .sort(),
  ];
  const references = catalog.foreignKeys
    .filter((f) => f.table === table.id || f.references === table.id)
    .map((f) => [f.table, f.columns, f.references, f.refColumns, f.onDelete, f.onUpdate, f.valid])
    .map((f) => JSON.stringify(f))
    .sort();
  return {
    columns: md5(JSON.stringify(columns)),
    keys: md5(JSON.stringify(keys)),
    references: md5(JSON.stringify(references)),
  };
}

/** The plan's schemaFingerprint: every touched table's shape, and one md5 over them all. */
export function schemaFingerprint(catalog: Catalog, tables: Table[]): Plan['schemaFingerprint'] {
  const shapes = Object.fromEntries(
    [...tables].sort((a, b) => a.id.localeCompare(b.id)).map((t) => [t.id, tableShape(catalog, t)]),
  );
  return { md5: md5(JSON.stringify(shapes)), tables: shapes };
}

/**
 * Refuse (exit 2, before anything runs) a plan made on another database, or whose tables changed
 * shape since: each difference named.
 */
export function refuseStalePlan(
  plan: Plan,
  file: string,
  here: DatabaseIdentity,
  catalog: Catalog,
  tables: Table[],
): void {
  const problems: string[] = [];
  const was = plan.database;
  if (was.name !== here.name || was.systemIdentifier !== here.systemIdentifier)
    problems.push(
      `it was made on database ${was.name} (system identifier ${was.systemIdentifier}), ` +
        `this is ${here.name} (system identifier ${here.systemIdentifier})`,
    );
  const now = schemaFingerprint(catalog, tables).tables;
  const aspects = ['columns', 'keys', 'references'] as const;
  for (const [id, shape] of Object.entries(plan.schemaFingerprint.tables)) {
    const current = now[id];
    if (!current) {
      problems.push(`${id} is no longer among the tables this repair touches (dropped, renamed, or another config)`);
      continue;
    }
    const changed = aspects.filter((a) => shape[a] !== current[a]);
    if (changed.length) problems.push(`${id} changed shape since the plan: its ${changed.join(', ')}`);
  }
  for (const id of Object.keys(now))
    if (!(id in plan.schemaFingerprint.tables)) problems.push(`${id} is touched by this repair but not by the plan`);
  if (problems.length)
    throw new RowdoctorError(
      `Refusing to apply the plan ${file}; nothing was changed:\n${problems.map((p) => `  ${p}`).join('\n')}`,
      { hint: 'Make a new plan with repair --plan-out against this database as it is now, and have it reviewed.' },
    );
}
