import type { ConfigRule } from '../config.js';
import type { Catalog, Table } from '../catalog/types.js';
import { resolveColumn, resolveTable, splitDotted } from '../catalog/names.js';
import { RowdoctorError } from '../errors.js';
import { sqlFragment } from '../sql/fragment.js';
import { collectErrors, defaultSchemas, parseKeep } from './defaults.js';
import type { KeyPart, Rule, Source } from './types.js';
import { enforcingIndex } from './discover.js';
import { dottedName } from './to-config.js';
import { timeKind } from '../diagnosis/created-at.js';

/** Resolve every config rule against the catalog; all problems are reported together. */
export function rulesFromConfig(catalog: Catalog, rules: ConfigRule[], file: string): Rule[] {
  return collectErrors(
    rules.map((r, i) => () => resolveConfigRule(catalog, r, `${file} rules[${i}]`, 'config')),
    `${file} names things the database does not have`,
  );
}

export function resolveKey(table: Table, key: (string | { expr: string })[], path: string): KeyPart[] {
  return key.map((part, i) =>
    typeof part === 'string'
      ? { kind: 'column', column: resolveColumn(table, part, `${path}.key[${i}]`) }
      : { kind: 'expr', expr: sqlFragment(part.expr, `${path}.key[${i}].expr`) },
  );
}

export function resolveConfigRule(catalog: Catalog, r: ConfigRule, path: string, source: Source): Rule {
  const table = resolveTable(catalog, r.table, defaultSchemas(catalog), path);
  const where = r.where ? sqlFragment(r.where, `${path}.where`) : null;
  const base = { table, where, source, severity: 'error' as const, origin: null };
  switch (r.check) {
    case 'duplicate-rows':
      return {
        ...base,
        check: r.check,
        key: resolveKey(table, r.key, path),
        includeSoftDeleted: r.includeSoftDeleted ?? false,
        nullsNotDistinct: r.nullsNotDistinct ?? false,
        keep: parseKeep(table, r.keep?.orderBy, `${path}.keep.orderBy`),
        fill: r.fill ?? false,
        repair: r.repair ?? 'merge',
        ...createdAt(table, r.createdAt, path),
      };
    case 'orphaned-rows': {
      const columns = (r.columns ?? [r.column!]).map((c, i) =>
        resolveColumn(table, c, `${path}.column${r.columns ? `s[${i}]` : ''}`),
      );
      let parentName: string;
      let parentCols: string[];
      if (typeof r.references === 'string') {
        const parts = splitDotted(r.references, `${path}.references`);
        if (parts.length < 2)
          throw new RowdoctorError(
            `${path}.references: "${r.references}" must be "table.column" or "schema.table.column".`,
          );
        parentCols = [parts.pop()!];
        parentName = dottedName(...parts);
      } else {
        parentName = r.references.table;
        parentCols = r.references.columns;
      }
      const parent = resolveTable(catalog, parentName, defaultSchemas(catalog), `${path}.references`);
      const parentColumns = parentCols.map((c) => resolveColumn(parent, c, `${path}.references`));
      if (parentColumns.length !== columns.length) {
        throw new RowdoctorError(
          `${path}: ${columns.length} referencing column(s) but ${parentColumns.length} referenced column(s).`,
        );
      }
      const fk = catalog.foreignKeys.find(
        (f) => f.table === table.id && f.references === parent.id && sameList(f.columns, columns),
      );
      return {
        ...base,
        check: r.check,
        columns,
        parent,
        parentColumns,
        includeSoftDeleted: r.includeSoftDeleted ?? false,
        ...(r.deletedParent ? { deletedParent: r.deletedParent } : {}),
        inferred: false,
        foreignKey: fk?.name ?? null,
        repair: r.repair ?? 'delete',
        ...createdAt(table, r.createdAt, path),
      };
    }
    case 'soft-delete-conflicts': {
      if (!table.softDelete) {
        throw new RowdoctorError(`${path}: table ${table.id} has no soft-delete marker column.`, {
          hint: 'Name its marker in the config: softDelete: { tables: { "<schema.table>": <column> } }.',
        });
      }
      const key = resolveKey(table, r.key, path);
      return {
        ...base,
        check: r.check,
        key,
        nullsNotDistinct: r.nullsNotDistinct ?? false,
        enforcedBy: enforcingIndex(table, key)?.name ?? null,
        repair: r.repair ?? 'purge-deleted',
      };
    }
  }
}

/** `createdAt:` names a date, timestamp or timestamptz column of the table. */
function createdAt(table: Table, name: string | undefined, path: string): { createdAt?: string } {
  if (name === undefined) return {};
  const column = resolveColumn(table, name, `${path}.createdAt`);
  const type = table.columns.find((c) => c.name === column)!;
  if (!timeKind(type))
    throw new RowdoctorError(
      `${path}.createdAt: column "${column}" of ${table.id} is ${type.type}, not a date, timestamp or timestamptz.`,
      { hint: 'Name the column that holds when each row was created.' },
    );
  return { createdAt: column };
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
