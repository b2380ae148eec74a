import { sql } from 'kysely';
import type { Assumption, Catalog } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import { guarded } from '../catalog/guarded.js';
import { col, tableRef } from '../sql/build.js';
import { referenceCandidates, type ReferenceCandidate } from './discover.js';

/**
 * The share of a candidate's distinct non-NULL values that must exist in the candidate parent
 * (deleted or not) for it to be taken as a reference. A real reference matches nearly all of its
 * values — damage is the exception; a column that merely shares a name (an id inside a JSON
 * document, another system's key) matches few or none. 80% leaves room for real damage in a real
 * reference while a coincidence rarely reaches it; a column with no values at all proves nothing.
 */
export const MIN_MATCHED_SHARE = 0.8;

/**
 * Ask the data about every name-based reference candidate in the checked schemas (only those into
 * the `into` tables, when given): an `inferred-reference` assumption when it agrees, a
 * `not-a-reference` one when it does not.
 */
export async function weighReferences(
  db: Db | Tx,
  catalog: Catalog,
  into: Set<string> | null = null,
): Promise<Assumption[]> {
  const assumptions: Assumption[] = [];
  for (const table of catalog.tables.filter((t) => catalog.schemas.includes(t.schema))) {
    for (const candidate of referenceCandidates(catalog, table)) {
      if (into && !into.has(candidate.parent.id)) continue;
      assumptions.push(
        await guarded(
          db,
          async () => verdict(candidate, await matchedValues(db, candidate)),
          (e) => unweighed(candidate, e),
        ),
      );
    }
  }
  return assumptions;
}

interface Matched {
  values: number;
  matched: number;
}

async function matchedValues(db: Db | Tx, c: ReferenceCandidate): Promise<Matched> {
  // Distinct non-NULL values of the candidate column, and how many of them some parent row holds.
  const { rows } = await sql<{ values: string; matched: string }>`
    select count(*) as values,
           count(*) filter (
             where exists (select 1 from ${tableRef(c.parent)} p where ${col('p', c.parentColumn)} = v.value)
           ) as matched
      from (select distinct ${col('c', c.column)} as value
              from ${tableRef(c.table)} c
             where ${col('c', c.column)} is not null) v`.execute(db);
  return { values: Number(rows[0]!.values), matched: Number(rows[0]!.matched) };
}

export function supports(m: Matched): boolean {
  return m.values > 0 && m.matched >= m.values * MIN_MATCHED_SHARE;
}

function verdict(c: ReferenceCandidate, m: Matched): Assumption {
  const n = (x: number) => x.toLocaleString('en-US');
  const references = `${c.parent.id}(${c.parentColumn})`;
  const base = { table: c.table.id, column: c.column, references };
  if (supports(m)) {
    const evidence = `matched ${n(m.matched)} of ${n(m.values)} distinct values in ${c.parent.id}.${c.parentColumn}`;
    return { kind: 'inferred-reference', ...base, evidence };
  }
  const evidence = m.values
    ? `${n(m.matched)} of ${n(m.values)} values found in ${c.parent.id}.${c.parentColumn}`
    : `no values to compare with ${c.parent.id}.${c.parentColumn}`;
  return { kind: 'not-a-reference', ...base, evidence };
}

/** A candidate the server could not weigh is not taken: no evidence, no reference. */
function unweighed(c: ReferenceCandidate, e: Error): Assumption {
  const evidence = `could not be compared with ${c.parent.id}.${c.parentColumn}: ${e.message}`;
  return {
    kind: 'not-a-reference',
    table: c.table.id,
    column: c.column,
    references: `${c.parent.id}(${c.parentColumn})`,
    evidence,
  };
}
