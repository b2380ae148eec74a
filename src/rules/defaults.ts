import type { Catalog, Table } from '../catalog/types.js';
import type { OrderTerm } from './types.js';
import { RowdoctorError } from '../errors.js';
import { resolveColumn } from '../catalog/names.js';

/** Schemas a bare table name is looked up in: the checked ones, `public` first. */
export function defaultSchemas(catalog: Catalog): string[] {
  return [...catalog.schemas].sort((a, b) => (a === 'public' ? -1 : b === 'public' ? 1 : 0));
}

/** `keep.orderBy` entries, validated against the catalog; default: lowest primary key. */
export function parseKeep(table: Table, orderBy: string[] | undefined, path: string): OrderTerm[] {
  if (!orderBy) return (table.primaryKey ?? []).map((column) => ({ column, direction: 'asc', nulls: null }));
  return orderBy.map((entry, i) => {
    const m = /^\s*(\S+)(?:\s+(asc|desc))?(?:\s+nulls\s+(first|last))?\s*$/i.exec(entry);
    if (!m) throw new RowdoctorError(`${path}[${i}]: "${entry}" is not "column [asc|desc] [nulls first|last]".`);
    const column = resolveColumn(table, m[1]!.replace(/^"(.*)"$/, '$1'), `${path}[${i}]`);
    return {
      column,
      direction: (m[2]?.toLowerCase() ?? 'asc') as 'asc' | 'desc',
      nulls: (m[3]?.toLowerCase() ?? null) as 'first' | 'last' | null,
    };
  });
}

/** Run every resolver; report all failures at once rather than one per run. */
export function collectErrors<T>(items: (() => T)[], heading: string): T[] {
  const out: T[] = [];
  const errors: string[] = [];
  for (const item of items) {
    try {
      out.push(item());
    } catch (e) {
      if (!(e instanceof RowdoctorError)) throw e;
      errors.push(`  ${e.message}${e.hint ? ` ${e.hint}` : ''}`);
    }
  }
  if (errors.length) {
    throw new RowdoctorError(
      `${heading} (${errors.length} problem${errors.length === 1 ? '' : 's'}):\n${errors.join('\n')}`,
    );
  }
  return out;
}
