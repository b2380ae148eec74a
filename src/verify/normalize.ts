import { sql } from 'kysely';
import type { Table, UniqueIndex } from '../catalog/types.js';
import { readOnly, type Db, type Tx } from '../db.js';
import { RowdoctorError, describePgError, isPgError } from '../errors.js';
import { isRecoveryConflict } from '../catalog/recovery.js';
import { keyExpr, fragment, type Sql, tableName } from '../sql/build.js';
import type { ExpectedUnique } from './types.js';
import { loadEqualities } from '../catalog/equality.js';

/**
 * A unique key ready to compare with the indexes a table has. `parts` and `predicate` are what
 * reports and DDL show; `forms` and `predicateForm` are what is compared: each expression as the
 * planner leaves it, deparsed by the server (same deparser, same quoting, same casts, constants
 * folded), with the part's collation.
 */
export interface NormalizedKey {
  parts: string[];
  predicate: string | null;
  forms: string[];
  predicateForm: string | null;
  /** Per part: the planned expression alone, and how it compares (collation, equality operator). */
  bare?: string[];
  how?: string[];
}

/** An existing index in the same comparable forms. */
export interface IndexForms {
  forms: string[];
  predicateForm: string | null;
  bare?: string[];
  how?: string[];
}

export interface Normalized {
  keys: Map<ExpectedUnique, NormalizedKey>;
  indexes: Map<UniqueIndex, IndexForms>;
}

/** One key part of an index of the table, as the catalog holds it. */
interface IndexPartRow {
  name: string;
  part: string;
  collation: string | null;
  /** The operator class's equality operator (btree strategy 3), `schema.op`; null for other methods. */
  equality: string | null;
  predicate: string | null;
}

/**
 * A server-deparsed expression, the collation it is compared in (null: not collatable) and the
 * equality operator that compares it (the index's operator class's, or the type's default).
 */
interface Form {
  text: string;
  collation: string | null;
  equality: string | null;
}

/**
 * Let the server normalise each expected key and each existing index of the same tables, without
 * creating anything — so verify-constraints runs on a read replica too. Each expression is
 * planned in `EXPLAIN (VERBOSE)` of a query over a NULL array of the table's row type: the
 * planner's deparse of its output is the comparable form. Nothing reads the table (no row-level
 * security, partitions or indexes get involved) and nothing is written. The planner hides a
 * top-level COLLATE, so the collation is asked for separately (`pg_collation_for`), and compared
 * with the index's own (`indcollation`).
 */
export async function normalizeKeys(
  db: Db,
  expected: ExpectedUnique[],
  statementTimeoutMs: number,
): Promise<Normalized> {
  const keys = new Map<ExpectedUnique, NormalizedKey>();
  const indexes = new Map<UniqueIndex, IndexForms>();
  const problems: string[] = [];
  await readOnly(db, statementTimeoutMs, async (tx) => {
    const tables = [...new Set(expected.map((e) => e.table))];
    for (const table of tables) {
      const known = await knownIndexForms(tx, table);
      for (const index of table.uniqueIndexes) {
        const forms = known.get(index.name);
        if (forms) indexes.set(index, forms);
      }
      for (const e of expected.filter((x) => x.table === table)) {
        try {
          keys.set(e, await expectedKey(tx, e, known));
        } catch (err) {
          if (!isPgError(err) || isRecoveryConflict(err)) throw err;
          problems.push(`  ${e.table.id}: ${describePgError(err)}`);
        }
      }
    }
  });
  if (problems.length) {
    throw new RowdoctorError(`These expected unique keys cannot be built as an index:\n${problems.join('\n')}`, {
      hint: 'Index expressions must be immutable and scopes boolean; NULLS NOT DISTINCT needs PostgreSQL 15.',
    });
  }
  return { keys, indexes };
}

/** A savepoint around one probe: a rejected expression must not end the read-only transaction. */
async function probe<T>(tx: Tx, work: () => Promise<T>): Promise<T> {
  await sql`savepoint rd_normalize`.execute(tx);
  try {
    const out = await work();
    await sql`release savepoint rd_normalize`.execute(tx);
    return out;
  } catch (e) {
    // A recovery conflict ended the session (inside a savepoint a standby ends it): nothing to roll back.
    if (!isRecoveryConflict(e)) await sql`rollback to savepoint rd_normalize`.execute(tx);
    throw e;
  }
}

/** The planner's deparse of one expression over the table's columns; `filter` must hold for it to plan. */
async function plannedForm(tx: Tx, table: Table, expr: Sql, filter: Sql | null): Promise<string> {
  const rows = sql`pg_catalog.unnest(null::${tableName(table)}[])`;
  const whereClause = filter ? sql`where ${filter}` : sql``;
  // Output[0] is the target expression as the plan computes it. A NULL array of the row type
  // gives the table's columns (types, typmods, collations) without touching the table.
  const { rows: plan } = await sql<{ 'QUERY PLAN': [{ Plan: { Output: string[] } }] }>`
    explain (verbose, costs off, format json)
    select ${expr}
      from ${rows} as t
      ${whereClause}`.execute(tx);
  return plan[0]!['QUERY PLAN'][0].Plan.Output[0]!;
}

/** The type's default btree equality operator, `schema.op`, that a plain unique index on it uses. */
async function equalityOf(tx: Tx, table: Table, expr: Sql): Promise<string | null> {
  const { rows } = await sql<{ ty: number }>`
    select pg_catalog.pg_typeof(${expr})::oid::int as ty
      from pg_catalog.unnest(array[null::${tableName(table)}]) as t`.execute(tx);
  const e = rows[0] ? (await loadEqualities(tx, [rows[0].ty])).get(rows[0].ty) : undefined;
  return e ? `${e.operator.schema}.${e.operator.name}` : null;
}

/** The collation an expression compares in, named as regcollation prints it; null when not collatable. */
async function collationOf(tx: Tx, table: Table, expr: Sql): Promise<string | null> {
  // pg_collation_for raises an error for a type that has no collation, so that is asked first.
  // Both are decided by the expression's type, not by values: one all-NULL row is enough.
  const { rows } = await sql<{ collatable: boolean }>`
    select ty.typcollation <> 0 as collatable
      from pg_catalog.unnest(array[null::${tableName(table)}]) as t
      join pg_catalog.pg_type ty on ty.oid = pg_catalog.pg_typeof(${expr})`.execute(tx);
  if (rows[0]?.collatable !== true) return null;
  const { rows: named } = await sql<{ collation: string | null }>`
    select pg_catalog.pg_collation_for(${expr}) as collation
      from pg_catalog.unnest(array[null::${tableName(table)}]) as t`.execute(tx);
  return named[0]?.collation ?? null;
}

/** Every index of the table (unique or not: each is a source of display text), part by part. */
async function knownIndexForms(tx: Tx, table: Table): Promise<Map<string, IndexForms & { rows: IndexPartRow[] }>> {
  // pg_get_indexdef(…, k, true) prints a part without its collation: indcollation gives that.
  const { rows } = await sql<IndexPartRow & { oid: number }>`
    select c.relname as name,
           pg_catalog.pg_get_indexdef(i.indexrelid, k.n, true) as part,
           nullif(i.indcollation[k.n - 1], 0)::pg_catalog.regcollation::text as collation,
           (select n.nspname || '.' || o.oprname
              from pg_catalog.pg_opclass opc
              join pg_catalog.pg_amop am
                on am.amopfamily = opc.opcfamily and am.amopstrategy = 3
               and am.amoplefttype = opc.opcintype and am.amoprighttype = opc.opcintype
              join pg_catalog.pg_am a on a.oid = am.amopmethod and a.amname = 'btree'
              join pg_catalog.pg_operator o on o.oid = am.amopopr
              join pg_catalog.pg_namespace n on n.oid = o.oprnamespace
             where opc.oid = i.indclass[k.n - 1]) as equality,
           pg_catalog.pg_get_expr(i.indpred, i.indrelid, true) as predicate
      from pg_catalog.pg_index i
      join pg_catalog.pg_class c on c.oid = i.indexrelid
     cross join lateral pg_catalog.generate_series(1, i.indnkeyatts) as k(n)
     where i.indrelid = ${table.oid}
     order by c.relname, k.n`.execute(tx);
  const out = new Map<string, IndexForms & { rows: IndexPartRow[] }>();
  for (const row of rows) {
    let entry = out.get(row.name);
    if (!entry) {
      const predicateForm = row.predicate
        ? await probe(tx, () => predicateFormOf(tx, table, sql.raw(row.predicate!)))
        : null;
      entry = { forms: [], predicateForm, rows: [], bare: [], how: [] };
      out.set(row.name, entry);
    }
    const text = await probe(tx, () => plannedForm(tx, table, sql`(${sql.raw(row.part)})`, null));
    const form = { text, collation: row.collation, equality: row.equality };
    entry.forms.push(formKey(form));
    entry.bare!.push(text);
    entry.how!.push(howOf(form));
    entry.rows.push(row);
  }
  return out;
}

async function predicateFormOf(tx: Tx, table: Table, predicate: Sql): Promise<string> {
  // In the WHERE clause too, so that a predicate that is not boolean is refused as CREATE INDEX would.
  return plannedForm(tx, table, sql`(${predicate})`, sql`(${predicate})`);
}

/**
 * What equality of two key parts means: the same planned expression in the same collation,
 * compared by the same equality operator (an operator class with another equality, e.g. a
 * case-insensitive one, enforces another key; text_pattern_ops, whose equality is text's, does not).
 */
function formKey(f: Form): string {
  const collated = f.collation === null ? f.text : `${f.text} COLLATE ${f.collation}`;
  return `${collated} USING ${f.equality ?? '?'}`;
}

/** How a part compares, in words for a mismatch: its collation and its equality operator. */
function howOf(f: Form): string {
  return `${f.collation === null ? 'no collation' : `collation ${f.collation}`} and operator ${f.equality ?? 'none'}`;
}

async function expectedKey(
  tx: Tx,
  e: ExpectedUnique,
  known: Map<string, IndexForms & { rows: IndexPartRow[] }>,
): Promise<NormalizedKey> {
  const knownParts = [...known.values()].flatMap((k) => k.rows.map((r, i) => ({ row: r, form: k.forms[i]! })));
  const parts: string[] = [];
  const forms: string[] = [];
  const bare: string[] = [];
  const how: string[] = [];
  for (const k of e.key) {
    const virtual = k.kind === 'column' ? e.table.columns.find((c) => c.name === k.column)?.virtual : null;
    // A virtual generated column is compared (and indexed) as its expression: no index can name it.
    const expr = virtual ? sql.raw(`(${virtual})`) : keyExpr(k, null);
    const form = await probe(tx, async () => ({
      text: await plannedForm(tx, e.table, expr, null),
      collation: await collationOf(tx, e.table, expr),
      equality: await equalityOf(tx, e.table, expr),
    }));
    const key = formKey(form);
    forms.push(key);
    bare.push(form.text);
    how.push(howOf(form));
    // The text of an index part that is the same as this one (pg_get_indexdef's), else one built from the form.
    const same = knownParts.find((p) => p.form === key);
    const own = virtual ? `(${virtual})` : k.kind === 'column' ? k.column : `(${k.expr.text})`;
    parts.push(same ? await withCollation(tx, e.table, same.row.part, form) : await partText(tx, e.table, form, own));
  }
  const predicateForm = e.where ? await probe(tx, () => predicateFormOf(tx, e.table, fragment(e.where!))) : null;
  const samePredicate = [...known.values()].find((k) => k.predicateForm !== null && k.predicateForm === predicateForm);
  let predicate = samePredicate?.rows[0]?.predicate ?? null;
  if (predicateForm !== null && predicate === null) {
    // The form's text is shown when it means the same when parsed again; else the scope as written.
    const text = unwrap(predicateForm);
    const again = await probe(tx, () => predicateFormOf(tx, e.table, sql.raw(text)));
    predicate = again === predicateForm ? text : e.where!.text;
  }
  return { parts, predicate, forms, predicateForm, bare, how };
}

/**
 * An index element for a planned form, written as pg_get_indexdef writes one: a column or a
 * function call as is, any other expression in parentheses, and COLLATE where the part's
 * collation is not the one the expression has anyway. The text must build the very part it
 * stands for — a COLLATE inside an expression does not survive planning — or the expression
 * is shown as written (`own`).
 */
async function partText(tx: Tx, table: Table, form: Form, own: string): Promise<string> {
  const element = /^("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)$/.test(form.text) || looksLikeCall(form.text);
  const bare = element ? form.text : `(${form.text})`;
  const natural = form.collation === null ? null : await probe(tx, () => collationOf(tx, table, sql.raw(bare)));
  const text = natural === form.collation ? bare : `${bare} COLLATE ${form.collation}`;
  const again = await probe(tx, async () => ({
    text: await plannedForm(tx, table, sql.raw(text), null),
    collation: await collationOf(tx, table, sql.raw(text)),
    equality: form.equality,
  }));
  return formKey(again) === formKey(form) ? text : own;
}

/** pg_get_indexdef's text of a part, with the COLLATE it leaves out where the part's is not the text's own. */
async function withCollation(tx: Tx, table: Table, text: string, form: Form): Promise<string> {
  if (form.collation === null) return text;
  const natural = await probe(tx, () => collationOf(tx, table, sql.raw(text)));
  return natural === form.collation ? text : `${text} COLLATE ${form.collation}`;
}

/** `name(…)` or `schema.name(…)` whose first parenthesis closes at the very end. */
function looksLikeCall(text: string): boolean {
  const name = /^(?:(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)\.)?(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)\(/.exec(text);
  return name !== null && closingParen(text, name[0].length - 1) === text.length - 1;
}

/** A predicate's form without the parentheses the planner's deparse puts around the whole of it. */
function unwrap(text: string): string {
  return text.startsWith('(') && closingParen(text, 0) === text.length - 1 ? text.slice(1, -1) : text;
}

/** Where the parenthesis opened at `open` closes, skipping quoted literals and identifiers; -1 if never. */
function closingParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "'" || ch === '"') {
      const end = text.indexOf(ch, i + 1);
      if (end < 0) return -1;
      i = end; // a doubled quote is two adjacent literals to this scan: still balanced
    } else if (ch === '(') depth++;
    else if (ch === ')' && --depth === 0) return i;
  }
  return -1;
}
