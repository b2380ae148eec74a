import { sql } from 'kysely';
import type { Assumption, Catalog, CatalogWarning, ContentType, Table, TypedReference } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import { guarded } from '../catalog/guarded.js';
import { col, tableRef, type Sql } from '../sql/build.js';
import { compatibleTypes } from './discover.js';
import { supports } from './reference-evidence.js';
import { contentTypeTable, tableNamed, tableNamesFor, typedPairs, type TypedPair } from './typed-names.js';

/** What discovery made of the polymorphic and generic candidates (see Catalog). */
export interface TypedEvidence {
  references: TypedReference[];
  /**
   * Type values of pairs the data does not support (or could not show) that still name a table:
   * never followed, but a delete of a row they name is refused (see Catalog.unconfirmedReferences).
   */
  unconfirmed: TypedReference[];
  assumptions: Assumption[];
  warnings: CatalogWarning[];
}

/** The table a type value names, and how its id compares with that table's key. */
export interface TypedParent {
  parent: Table;
  parentColumn: string;
  asText: boolean;
}

/** Every django_content_type table's rows (a few hundred at most), by the table's id. */
export async function loadContentTypes(db: Db | Tx, catalog: Catalog): Promise<Map<string, ContentType[]>> {
  const out = new Map<string, ContentType[]>();
  for (const t of catalog.tables.filter((x) => x.name === 'django_content_type')) {
    const has = (c: string) => t.columns.some((x) => x.name === c);
    if (!has('id') || !has('app_label') || !has('model')) continue;
    const rows = await guarded(
      db,
      async () =>
        (
          await sql<ContentType>`
            select id::text as id, app_label as "appLabel", model
              from ${tableRef(t)}
             order by id`.execute(db)
        ).rows,
      () => [],
    );
    out.set(t.id, rows);
  }
  return out;
}

/**
 * The table `type` names for rows of `pair` (in the pair's schema), or why none: Rails / Laravel
 * naming for a polymorphic type, `<app_label>_<model>` for a content type. The parent needs a
 * single-column primary key whose values the id column can hold, or whose text form a text id holds.
 */
export function typedParent(
  catalog: Catalog,
  pair: TypedPair,
  type: string,
  explicit?: Table,
): TypedParent | { reason: string } {
  let parent = explicit;
  if (!parent && pair.kind === 'polymorphic') {
    parent = tableNamesFor(type)
      .map((n) => tableNamed(catalog, pair.table.schema, n))
      .find((t) => t !== undefined);
  } else if (!parent) {
    const ct = catalog.contentTypes.get(pair.contentTypes!.id)?.find((c) => c.id === type);
    if (!ct) return { reason: `no ${pair.contentTypes!.id} row has id ${type}` };
    parent = tableNamed(catalog, pair.table.schema, contentTypeTable(ct));
    if (!parent) return { reason: `content type ${ct.appLabel}.${ct.model} names no table ${contentTypeTable(ct)}` };
  }
  if (!parent) return { reason: 'names no table' };
  const pk = parent.primaryKey;
  if (pk?.length !== 1) return { reason: `names ${parent.id}, which has no single-column primary key` };
  const idCol = pair.table.columns.find((c) => c.name === pair.idColumn)!;
  const pkCol = parent.columns.find((c) => c.name === pk[0])!;
  if (compatibleTypes(idCol, pkCol)) return { parent, parentColumn: pk[0]!, asText: false };
  if (idCol.category === 'S') return { parent, parentColumn: pk[0]!, asText: true };
  return {
    reason: `names ${parent.id}, whose key ${pk[0]} (${pkCol.type}) ${pair.idColumn} (${idCol.type}) cannot hold`,
  };
}

/** `parent p` holds the row's id `id`: the key itself, or its text form for a text id. */
export function typedIdMatches(target: TypedParent, parentAlias: string, id: Sql): Sql {
  const key = col(parentAlias, target.parentColumn);
  return target.asText ? sql`${key}::text = ${id}` : sql`${key} = ${id}`;
}

/**
 * Weigh every candidate pair of the checked schemas against its data: one grouped pass lists the
 * type values with their row counts, one more counts per mapped type how many distinct ids exist
 * in the table it names. A pair whose ids mostly exist becomes a reference per mapped type; its type
 * values that name no table are warnings, never guessed.
 */
export async function weighTypedReferences(db: Db | Tx, catalog: Catalog): Promise<TypedEvidence> {
  const out: TypedEvidence = { references: [], unconfirmed: [], assumptions: [], warnings: [] };
  for (const table of catalog.tables.filter((t) => catalog.schemas.includes(t.schema))) {
    for (const pair of typedPairs(catalog, table)) {
      const unweighed = (e: Error): TypedEvidence => ({
        references: [],
        unconfirmed: [],
        warnings: [],
        assumptions: [notAReference(pair, `could not be weighed: ${e.message}`)],
      });
      const found = await guarded(db, () => weighPair(db, catalog, pair), unweighed);
      out.references.push(...found.references);
      out.unconfirmed.push(...found.unconfirmed);
      out.assumptions.push(...found.assumptions);
      out.warnings.push(...found.warnings);
    }
  }
  return out;
}

async function weighPair(db: Db | Tx, catalog: Catalog, pair: TypedPair): Promise<TypedEvidence> {
  const values = await typeValues(db, pair);
  const mapped = values.map((type) => ({ type, target: typedParent(catalog, pair, type) }));
  const known = mapped.flatMap((m) => ('parent' in m.target ? [{ type: m.type, target: m.target }] : []));
  if (!known.length) {
    const why = values.length ? `none of its ${values.length} type values names a table` : 'no rows to compare';
    return { references: [], unconfirmed: [], warnings: [], assumptions: [notAReference(pair, why)] };
  }
  const perType = await weighTypes(db, pair, known);
  const of = (type: string) => perType.find((m) => m.type === type);
  const withRows = mapped.flatMap((m) => {
    const counted = of(m.type);
    return counted ? [{ ...m, rows: counted.rows }] : [];
  });
  const matched = perType.filter((m) => known.some((k) => k.type === m.type));
  const total = {
    values: matched.reduce((n, m) => n + Number(m.values), 0),
    matched: matched.reduce((n, m) => n + Number(m.matched), 0),
  };
  const n = (x: number | string) => Number(x).toLocaleString('en-US');
  const references = known
    .filter((k) => of(k.type))
    .map(({ type, target }): TypedReference => {
      const m = of(type);
      const what = pair.kind === 'generic' ? `content type ${type}` : `'${type}'`;
      const evidence =
        `${pair.typeColumn} ${what} → ${target.parent.id}(${target.parentColumn}): matched ${n(m?.matched ?? 0)} of ` +
        `${n(m?.values ?? 0)} distinct ${pair.idColumn} values${target.asText ? ' (as text)' : ''}`;
      return {
        kind: pair.kind,
        table: pair.table.id,
        typeColumn: pair.typeColumn,
        idColumn: pair.idColumn,
        type,
        parent: target.parent.id,
        parentColumn: target.parentColumn,
        asText: target.asText,
        evidence,
      };
    });
  if (!supports(total)) {
    // Not a reference, but its rows may still mean one: no delete removes a row they name (rows.ts).
    const why = `${n(total.matched)} of ${n(total.values)} distinct ids found in the tables its types name`;
    const unconfirmed = references.map((r) => ({ ...r, evidence: `the data does not support it: ${why}` }));
    return { references: [], unconfirmed, warnings: [], assumptions: [notAReference(pair, why)] };
  }
  const warnings = withRows.flatMap((m): CatalogWarning[] =>
    'reason' in m.target
      ? [
          {
            code: 'unknown-polymorphic-type',
            table: pair.table.id,
            message:
              `${pair.table.id}.${pair.typeColumn} holds ${pair.kind === 'generic' ? 'content type ' : ''}` +
              `'${m.type}' in ${n(m.rows)} row${m.rows === '1' ? '' : 's'}, which ${m.target.reason}: those rows ` +
              'are not checked and no repair touches them (map it under references: types if it names a table)',
          },
        ]
      : [],
  );
  const assumptions = references.map((r): Assumption => ({
    kind: 'polymorphic-reference',
    table: r.table,
    column: r.idColumn,
    evidence: r.evidence,
    references: `${r.parent}(${r.parentColumn})`,
  }));
  return { references, unconfirmed: [], warnings, assumptions };
}

/**
 * The type values of the pair's rows. Where a btree index leads with the type column (Rails' and
 * Laravel's `morphs` create one on (type, id); Django indexes the content type key), a loose index
 * scan: one probe of the index per distinct value, not a pass over the rows. Otherwise one
 * `GROUP BY` pass: then discovery costs this pair two passes (the README's hint names the index).
 */
async function typeValues(db: Db | Tx, pair: TypedPair): Promise<string[]> {
  const t = col('c', pair.typeColumn);
  if (pair.table.orderedLeading.includes(pair.typeColumn)) {
    const { rows } = await sql<{ type: string }>`
      with recursive v(type) as (
        (select ${t} from ${tableRef(pair.table)} c where ${t} is not null order by ${t} limit 1)
        union all
        select (select ${t} from ${tableRef(pair.table)} c where ${t} > v.type order by ${t} limit 1)
          from v
         where v.type is not null)
      select type::text as type from v where type is not null`.execute(db);
    return rows.map((r) => r.type);
  }
  const { rows } = await sql<{ type: string }>`
    select distinct ${t}::text as type
      from ${tableRef(pair.table)} c
     where ${t} is not null`.execute(db);
  return rows.map((r) => r.type);
}

/** What one type value's rows showed: how many, how many distinct ids, how many of those exist. */
interface TypeWeight {
  type: string;
  rows: string;
  values: string;
  matched: string;
}

/**
 * The one grouped pass over the pair's rows: per type value, its rows, its distinct ids and — for a
 * type that names a table — how many of those ids that table holds (an index probe per distinct
 * id). Type values whose rows all lack an id are not returned.
 */
async function weighTypes(
  db: Db | Tx,
  pair: TypedPair,
  known: { type: string; target: TypedParent }[],
): Promise<TypeWeight[]> {
  const t = col('c', pair.typeColumn);
  const id = col('c', pair.idColumn);
  const exists = sql.join(
    known.map((k) => {
      const holds = typedIdMatches(k.target, 'p', sql`d.id`);
      return sql`when ${k.type} then exists (select 1 from ${tableRef(k.target.parent)} p where ${holds})`;
    }),
    sql` `,
  );
  const { rows } = await sql<TypeWeight>`
    select d.type, sum(d.n)::int8::text as rows, count(*) as values,
           count(*) filter (where case d.type ${exists} else false end) as matched
      from (select ${t}::text as type, ${id} as id, count(*) as n
              from ${tableRef(pair.table)} c
             where ${t} is not null and ${id} is not null
             group by 1, 2) d
     group by d.type
     order by d.type`.execute(db);
  return rows;
}

function notAReference(pair: TypedPair, why: string): Assumption {
  return {
    kind: 'not-a-reference',
    table: pair.table.id,
    column: pair.idColumn,
    evidence: `${pair.typeColumn}/${pair.idColumn} is not a ${pair.kind} reference: ${why}`,
  };
}
