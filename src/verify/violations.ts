import type { Tx } from '../db.js';
import { duplicateRows } from '../checks/duplicate-rows.js';
import { orphanedRows } from '../checks/orphaned-rows.js';
import { sqlFragment } from '../sql/fragment.js';
import type { DuplicateRule, KeyPart, OrphanRule } from '../rules/types.js';
import type { NormalizedKey } from './normalize.js';
import { indexPartColumn, type ForeignKey } from '../catalog/types.js';
import type { ExpectedForeignKey, ExpectedUnique } from './types.js';

/**
 * Rows that would make the index build fail today: excess duplicates under exactly the proposed
 * index — its parts, its predicate, its NULL semantics. Soft-deleted rows count unless the
 * predicate leaves them out, as they would for the index.
 */
export async function uniqueViolations(
  tx: Tx,
  e: Pick<ExpectedUnique, 'table' | 'nullsNotDistinct'>,
  key: NormalizedKey,
  own?: KeyPart[],
): Promise<number> {
  // An existing index's key parts (`own`) carry its collations and equality; else the key's text.
  const parts: KeyPart[] =
    own ??
    key.parts.map((p) => {
      const column = indexPartColumn(e.table, p);
      return column ? { kind: 'column', column } : { kind: 'expr', expr: sqlFragment(p, 'index expression') };
    });
  const rule: DuplicateRule = {
    check: 'duplicate-rows',
    table: e.table,
    key: parts,
    where: key.predicate ? sqlFragment(key.predicate, 'index predicate') : null,
    includeSoftDeleted: true,
    nullsNotDistinct: e.nullsNotDistinct,
    keep: [],
    fill: false,
    repair: 'report',
    source: 'discovered',
    severity: 'error',
    origin: null,
  };
  return (await duplicateRows.detect(tx, rule, { sample: 0 }))?.rows ?? 0;
}

/**
 * Child rows with no parent row at all; a soft-deleted parent still satisfies an FK. An existing
 * key (`fk`) is counted as its own check counts: MATCH FULL or SIMPLE, its operators and collations.
 */
export async function foreignKeyViolations(tx: Tx, e: ExpectedForeignKey, fk?: ForeignKey | null): Promise<number> {
  const rule: OrphanRule = {
    check: 'orphaned-rows',
    table: e.table,
    columns: e.columns,
    parent: { ...e.parent, softDelete: null },
    parentColumns: e.parentColumns,
    where: null,
    includeSoftDeleted: true,
    inferred: false,
    foreignKey: fk?.name ?? null,
    ...(fk && fk.pairs.length === e.columns.length && sameList(fk.columns, e.columns)
      ? { comparison: { matchFull: fk.matchFull, pairs: fk.pairs } }
      : {}),
    repair: 'report',
    source: 'discovered',
    severity: 'error',
    origin: null,
    ...(e.typed ? { typed: e.typed } : {}),
  };
  return (await orphanedRows.detect(tx, rule, { sample: 0 }))?.missingParent ?? 0;
}

const sameList = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
