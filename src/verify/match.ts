import type { Catalog, ForeignKey, UniqueIndex } from '../catalog/types.js';
import type { IndexForms, NormalizedKey } from './normalize.js';
import type { ExpectedForeignKey, ExpectedUnique, Status } from './types.js';

export interface Match {
  status: Status;
  detail: string;
  found: UniqueIndex | ForeignKey | null;
}

const label = (i: UniqueIndex) => `${i.constraint ? 'constraint' : 'index'} ${i.constraint ?? i.name}`;

/**
 * Does the table have a unique index that enforces this key, as PostgreSQL would? A unique index
 * on a subset of the key satisfies it; INCLUDE columns never count; the predicate and the NULL
 * semantics must be the same. INVALID indexes (a failed CONCURRENTLY build, or a partitioned
 * parent with a partition whose index is not attached) are `invalid`.
 */
export function matchUnique(e: ExpectedUnique, key: NormalizedKey, indexes: Map<UniqueIndex, IndexForms>): Match {
  const want = new Set(key.forms);
  const forms = (i: UniqueIndex) => indexes.get(i) ?? { forms: i.parts, predicateForm: i.predicate };
  const samePredicate = (i: UniqueIndex) => forms(i).predicateForm === key.predicateForm;
  const sameScope = (i: UniqueIndex) => samePredicate(i) && i.nullsNotDistinct === e.nullsNotDistinct;
  const covering = e.table.uniqueIndexes.filter((i) => forms(i).forms.every((p) => want.has(p)));
  const good = covering.filter(sameScope);
  const valid = good.find((i) => i.valid);
  if (valid) {
    const subset = valid.parts.length < key.parts.length ? ` on (${valid.parts.join(', ')}), a subset of the key` : '';
    return { status: 'ok', detail: `enforced by ${label(valid)}${subset}`, found: valid };
  }
  const invalid = good.find((i) => !i.valid);
  if (invalid) {
    return {
      status: 'invalid',
      detail:
        `${label(invalid)} exists but is INVALID ` +
        "(indisvalid = false: a failed CREATE INDEX CONCURRENTLY, or a partition's index not attached)",
      found: invalid,
    };
  }
  // The same expressions compared another way (a collation, an operator class) overlap too.
  const wantBare = new Set(key.bare ?? []);
  const sameBare = (i: UniqueIndex) => (forms(i).bare ?? []).some((b) => wantBare.has(b));
  const overlapping = [
    ...covering,
    ...e.table.uniqueIndexes.filter((i) => !covering.includes(i) && forms(i).forms.some((p) => want.has(p))),
    ...e.table.uniqueIndexes.filter(
      (i) => !covering.includes(i) && !forms(i).forms.some((p) => want.has(p)) && sameBare(i),
    ),
  ];
  const closest = overlapping[0];
  if (!closest) return { status: 'missing', detail: 'no unique index or constraint covers this key', found: null };
  const diffs: string[] = [];
  const compared = (n: number) => {
    const at = (key.bare ?? []).indexOf(forms(closest).bare?.[n] ?? '\0');
    return at < 0 ? null : { index: forms(closest).how?.[n], expected: key.how?.[at] };
  };
  const otherwise = closest.parts
    .map((p, n) => ({ p, n, c: want.has(forms(closest).forms[n]!) ? null : compared(n) }))
    .filter((x) => x.c !== null);
  for (const { p, c } of otherwise) diffs.push(`its part ${p} compares with ${c!.index}, expected ${c!.expected}`);
  const extra = closest.parts.filter(
    (_, n) => !want.has(forms(closest).forms[n]!) && !otherwise.some((x) => x.n === n),
  );
  const predicate = (p: string | null) => (p ? `WHERE ${p}` : 'none');
  const nulls = (notDistinct: boolean) => `NULLS ${notDistinct ? 'NOT ' : ''}DISTINCT`;
  if (extra.length) {
    const expected = `the expected key (${key.parts.join(', ')})`;
    diffs.push(`its key (${closest.parts.join(', ')}) has ${extra.join(', ')}, which is not in ${expected}`);
  }
  if (!samePredicate(closest))
    diffs.push(`predicate ${predicate(closest.predicate)}, expected ${predicate(key.predicate)}`);
  if (closest.nullsNotDistinct !== e.nullsNotDistinct)
    diffs.push(`${nulls(closest.nullsNotDistinct)}, expected ${nulls(e.nullsNotDistinct)}`);
  if (!closest.valid) diffs.push('and it is INVALID');
  return { status: 'mismatch', detail: `${label(closest)} differs: ${diffs.join('; ')}`, found: closest };
}

/**
 * Why a foreign key that exists is `invalid`: NOT VALID checks new rows only; NOT ENFORCED
 * (PostgreSQL 18) checks none at all.
 */
export function notValidDetail(fk: ForeignKey): string {
  return fk.enforced
    ? `foreign key ${fk.name} is NOT VALID: rows written before it was added are unchecked`
    : `foreign key ${fk.name} is NOT ENFORCED: it enforces nothing — no row, old or new, is checked against it`;
}

/** A foreign key with exactly these column pairs; NOT VALID or NOT ENFORCED is `invalid`. */
export function matchForeignKey(catalog: Catalog, e: ExpectedForeignKey): Match {
  const pairs = (cols: string[], refs: string[]) =>
    cols
      .map((c, i) => `${c}->${refs[i]}`)
      .sort()
      .join(',');
  const want = pairs(e.columns, e.parentColumns);
  const fks = catalog.foreignKeys.filter((f) => f.table === e.table.id && !f.onPartition);
  const exact = fks.find((f) => f.references === e.parent.id && pairs(f.columns, f.refColumns) === want);
  if (exact?.valid) return { status: 'ok', detail: `enforced by foreign key ${exact.name}`, found: exact };
  if (exact) return { status: 'invalid', detail: notValidDetail(exact), found: exact };
  const other = fks.find((f) => f.columns.some((c) => e.columns.includes(c)));
  if (other) {
    const uses = `(${other.columns.join(', ')}) -> ${other.references}(${other.refColumns.join(', ')})`;
    const expected = `(${e.columns.join(', ')}) -> ${e.parent.id}(${e.parentColumns.join(', ')})`;
    return { status: 'mismatch', detail: `foreign key ${other.name} uses ${uses}, expected ${expected}`, found: other };
  }
  return { status: 'missing', detail: 'no foreign key', found: null };
}
