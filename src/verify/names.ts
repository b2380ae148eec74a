import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import type { Tx } from '../db.js';

/**
 * Names for the indexes and constraints a migration creates: PostgreSQL's own pattern, made unique
 * the way PostgreSQL does it (a number after the label: users_expr_key, users_expr_key1, …) against
 * every relation and constraint already in the schema and every name this migration already chose.
 * Two expression indexes on one table would otherwise both be "users_expr_key", and the second fails.
 */
export class NameAllocator {
  private readonly taken: Set<string>;

  constructor(taken: Iterable<string>) {
    this.taken = new Set(taken);
  }

  /** Relation names (tables, indexes, sequences, views …) and constraint names in the given schemas. */
  static async load(tx: Tx, schemas: string[]): Promise<NameAllocator> {
    // Index names share the schema's relation namespace; ADD CONSTRAINT … USING INDEX also names a
    // constraint, whose name must be free on its table: both sets are avoided, schema-wide.
    const { rows } = await sql<{ name: string }>`
      select n.nspname || '.' || c.relname as name
        from pg_catalog.pg_class c
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
       where n.nspname = any(${schemas})
      union
      select n.nspname || '.' || k.conname
        from pg_catalog.pg_constraint k
        join pg_catalog.pg_namespace n on n.oid = k.connamespace
       where n.nspname = any(${schemas})`.execute(tx);
    return new NameAllocator(rows.map((r) => r.name));
  }

  /** A free name in the table's schema, taken from now on. */
  allocate(table: Pick<Table, 'schema' | 'name'>, parts: string[], suffix: string): string {
    for (let n = 0; ; n++) {
      const name = constraintName(table as Table, parts, n === 0 ? suffix : `${suffix}${n}`);
      if (this.taken.has(`${table.schema}.${name}`)) continue;
      this.taken.add(`${table.schema}.${name}`);
      return name;
    }
  }
}

/** PostgreSQL's own naming pattern, cut to 63 bytes with a hash so long names stay unique. */
export function constraintName(table: Table, parts: string[], suffix: string): string {
  const label = (p: string) => (/^"?[A-Za-z_][\w$]*"?$/.test(p) ? p.replace(/"/g, '') : 'expr');
  const base = `${table.name}_${parts.map(label).join('_')}_${suffix}`;
  if (Buffer.byteLength(base) <= 63) return base;
  const hash = createHash('sha1').update(base).digest('hex').slice(0, 8);
  return `${Buffer.from(base)
    .subarray(0, 54)
    .toString()
    .replace(/\uFFFD$/, '')}_${hash}`;
}
