import { sql } from 'kysely';
import type { Tx } from '../db.js';
import { isPgError } from '../errors.js';
import { isRecoveryConflict } from '../catalog/recovery.js';
import type { DuplicateRule, KeyPart, Rule } from '../rules/types.js';
import type { QualifiedName } from '../catalog/types.js';
import { and, col, fragment, keyExpr, partEquality, tableRef } from '../sql/build.js';
import { partId } from './duplicate-chain.js';
import { chainOrder } from './chain-order.js';

/**
 * Types whose default equality is identity: two equal values are the same value, so any immutable
 * function gives them the same result. By pg_type oid (fixed for built-in types). Text and
 * varchar count only in a deterministic collation; numeric (1.0 = 1.00), floats (0 = -0), bpchar
 * (trailing blanks), citext, jsonb and every other type are left out.
 */
const IDENTITY_TYPES = new Map<number, string>([
  [16, 'bool'],
  [17, 'bytea'],
  [20, 'int8'],
  [21, 'int2'],
  [23, 'int4'],
  [25, 'text'],
  [1043, 'varchar'],
  [1082, 'date'],
  [1114, 'timestamp'],
  [1184, 'timestamptz'],
  [2950, 'uuid'],
]);

/**
 * How a scan checks `rules`: lists of rule indices, each a chain that one pass checks
 * (duplicate-chain.ts, coarse → fine) or a single rule, every rule in exactly one, in the order of
 * their first rule. Nothing here is assumed that the server did not show, in the scan's own
 * read-only transaction; a rule anything is unproven for keeps its own pass.
 *
 * Rules may share a pass when they are duplicate-rows rules on the same table with the same rows
 * in scope (`where`, soft-deleted rows), NULLs distinct, and every key part a plain column or an
 * expression, without a collation or equality of its own, of a type whose equality is identity
 * (IDENTITY_TYPES). In a chain every part of an earlier rule's key must be a function of each later
 * rule's key: a part of that key itself, or an expression the server shows to be an immutable
 * function of that key's columns (functionOf).
 */
export async function scanUnits(tx: Tx, rules: Rule[]): Promise<ScanUnit[]> {
  const byScope = new Map<string, number[]>();
  rules.forEach((rule, i) => {
    if (rule.check !== 'duplicate-rows' || rule.nullsNotDistinct) return;
    if (rule.key.some((k) => k.collation)) return;
    const alive = Boolean(rule.table.softDelete && !rule.includeSoftDeleted);
    const scope = `${rule.table.oid}\u0000${rule.where?.text ?? ''}\u0000${alive}`;
    byScope.set(scope, [...(byScope.get(scope) ?? []), i]);
  });
  const units: ScanUnit[] = [];
  const chained = new Set<number>();
  for (const members of byScope.values()) {
    if (members.length < 2) continue;
    const proof = new Proof(tx);
    const { typed, collations } = await proof.identityTyped(members.map((i) => rules[i] as DuplicateRule));
    const eligible = members.filter((_, m) => typed[m]);
    if (eligible.length < 2) continue;
    const covers = new Map<string, boolean>();
    for (const a of eligible)
      for (const b of eligible)
        if (a !== b) covers.set(`${a} ${b}`, await proof.covers(rules[a] as DuplicateRule, rules[b] as DuplicateRule));
    for (const chain of chainOrder(eligible, (a, b) => covers.get(`${a} ${b}`) === true)) {
      const parts = chain.flatMap((i) => (rules[i] as DuplicateRule).key.map(partId));
      units.push({ rules: chain, collations: new Map([...collations].filter(([id]) => parts.includes(id))) });
      chain.forEach((i) => chained.add(i));
    }
  }
  rules.forEach((_, i) => {
    if (!chained.has(i)) units.push({ rules: [i], collations: new Map() });
  });
  return units.sort((a, b) => Math.min(...a.rules) - Math.min(...b.rules));
}

/** One unit of a scan's work: a chain of rules (coarse → fine) that one pass checks, or one rule. */
export interface ScanUnit {
  /** Indices into the scan's rules. */
  rules: number[];
  /**
   * A chain's text expression parts (by partId) with the collation they compare in, deterministic:
   * the chain may sort them bytewise (COLLATE "C"), the same groups, and give them back in it.
   */
  collations: Map<string, QualifiedName>;
}

/** The server's answers for one table's rules, each question asked once. */
class Proof {
  private readonly functions = new Map<string, boolean>();
  private readonly evidence = new Map<string, string[] | null>();

  constructor(private readonly tx: Tx) {}

  /**
   * Per rule: every key part is of an identity type (in a deterministic collation) and compares
   * with that type's own `=`; and the collation of each text expression part. Types are read
   * without evaluating anything (selected from no rows).
   */
  async identityTyped(rules: DuplicateRule[]): Promise<{ typed: boolean[]; collations: Map<string, QualifiedName> }> {
    const table = rules[0]!.table;
    const parts = new Map<string, KeyPart>();
    for (const rule of rules) for (const part of rule.key) parts.set(partId(part), part);
    const list = [...parts.values()];
    const x = (j: number) => sql`k.${sql.id(`x${j}`)}`;
    const cols = sql.join(list.map((p, j) => sql`${keyExpr(p, null)} as ${sql.id(`x${j}`)}`));
    const types = sql.join(list.map((_, j) => sql`pg_catalog.pg_typeof(${x(j)})::oid::int`));
    // A non-text type has no collation: its text form's ("default") is asked instead, and ignored.
    const collation = sql.join(
      list.map(
        (_, j) => sql`(select pg_catalog.json_build_object('deterministic', c.collisdeterministic,
                                                          'schema', n.nspname, 'name', c.collname)
                         from pg_catalog.pg_collation c
                         join pg_catalog.pg_namespace n on n.oid = c.collnamespace
                        where c.oid = pg_catalog.to_regcollation(
                                        pg_catalog.pg_collation_for(${x(j)}::pg_catalog.text)))`,
      ),
    );
    type Collation = (QualifiedName & { deterministic: boolean }) | null;
    const found = await this.attempt(async () => {
      const { rows } = await sql<{ types: number[]; collations: Collation[] }>`
        select array[${types}] as types, array[${collation}] as collations
          from (select 1) v
          left join (select ${cols} from ${tableRef(table)} where false) k on true`.execute(this.tx);
      return rows[0]!;
    });
    const identity = new Map<string, boolean>();
    const collations = new Map<string, QualifiedName>();
    list.forEach((p, j) => {
      const type = found?.types[j];
      const name = type === undefined ? undefined : IDENTITY_TYPES.get(type);
      const text = name === 'text' || name === 'varchar';
      const coll = found?.collations[j];
      const eq = partEquality(table, p);
      const plainEquality = eq?.groupable === true && eq.operator.schema === 'pg_catalog' && eq.operator.name === '=';
      identity.set(partId(p), Boolean(name && plainEquality && (!text || coll?.deterministic)));
      if (text && coll && p.kind === 'expr') collations.set(partId(p), { schema: coll.schema, name: coll.name });
    });
    return { typed: rules.map((rule) => rule.key.every((p) => identity.get(partId(p)))), collations };
  }

  /** Every part of `coarse`'s key is a function of `fine`'s key. */
  async covers(coarse: DuplicateRule, fine: DuplicateRule): Promise<boolean> {
    const fineIds = fine.key.map(partId);
    const columns = fine.key.flatMap((p) => (p.kind === 'column' ? [p.column] : []));
    for (const part of coarse.key) {
      if (fineIds.includes(partId(part))) continue;
      if (part.kind === 'column' || !columns.length) return false;
      if (!(await this.functionOf(fine, part, columns))) return false;
    }
    return true;
  }

  /**
   * The server shows `part` (an expression) to be an immutable function of `columns` of the
   * table (all of identity types): it is written over a one-row VALUES list holding one real row's
   * non-NULL values of those columns, bound as parameters, so
   * - an expression naming any other column, or anything but those columns, does not parse;
   * - the planner folds it to a constant only if every function on the path the values take is
   *   immutable (non-NULL values: a strict function of a NULL folds whatever it is);
   * - and over two rows, where nothing folds, the planner keeps it in a subquery of its own
   *   (Subquery Scan) if anything in it is volatile, on any path: a CASE or COALESCE branch the
   *   values did not take is not seen by folding. A STABLE function on such a branch is still one
   *   value per argument within the statement, all the rollup needs.
   * Any error, and no such row (nothing to prove it on), is no proof.
   */
  private async functionOf(fine: DuplicateRule, part: KeyPart & { kind: 'expr' }, columns: string[]): Promise<boolean> {
    const key = `${part.expr.text}\u0000${columns.join('\u0000')}`;
    const known = this.functions.get(key);
    if (known !== undefined) return known;
    const values = await this.valuesOf(fine, columns);
    let proven = false;
    if (values) {
      const types = columns.map((c) => this.typeOf(fine, c));
      const row = sql`(${sql.join(values.map((v, i) => sql`${v}::${sql.id('pg_catalog', types[i]!)}`))})`;
      const names = sql.join(columns.map((c) => sql.id(c)));
      const expr = fragment(part.expr);
      proven =
        (await this.attempt(async () => {
          const folded = await plan(
            this.tx,
            sql`explain (verbose, format json) select ${expr} from (values ${row}) as t(${names})`,
          );
          const kept = await plan(
            this.tx,
            sql`explain (format json)
                select 1 from (select ${expr} as e from (values ${row}, ${row}) as t(${names})) as s
                 where s.e is not null`,
          );
          return isConstant(folded.Output?.[0]) && !nodeTypes(kept).includes('Subquery Scan');
        })) === true;
    }
    this.functions.set(key, proven);
    return proven;
  }

  /** One row's values of `columns`, none NULL, as text; null when no row has them all. */
  private async valuesOf(rule: DuplicateRule, columns: string[]): Promise<string[] | null> {
    const key = columns.join('\u0000');
    if (this.evidence.has(key)) return this.evidence.get(key)!;
    const texts = sql.join(columns.map((c, i) => sql`${col(null, c)}::pg_catalog.text as ${sql.id(`v${i}`)}`));
    const found = await this.attempt(async () => {
      const { rows } = await sql<Record<string, string>>`
        select ${texts}
          from ${tableRef(rule.table)}
         where ${and(columns.map((c) => sql`${col(null, c)} is not null`))}
         limit 1`.execute(this.tx);
      return rows[0] ? columns.map((_, i) => rows[0]![`v${i}`]!) : null;
    });
    this.evidence.set(key, found ?? null);
    return found ?? null;
  }

  private typeOf(rule: DuplicateRule, column: string): string {
    const baseType = rule.table.columns.find((c) => c.name === column)?.baseType;
    // identityTyped() proved the column's type is one of these (no domain: pg_typeof names the domain).
    return [...IDENTITY_TYPES.values()].find((t) => t === baseType)!;
  }

  /** `work` in a savepoint: a server error is no answer (null), and the transaction goes on. */
  private async attempt<T>(work: () => Promise<T>): Promise<T | null> {
    await sql`savepoint rd_nesting`.execute(this.tx);
    try {
      const result = await work();
      await sql`release savepoint rd_nesting`.execute(this.tx);
      return result;
    } catch (e) {
      if (isRecoveryConflict(e) || !isPgError(e) || !e.code) throw e;
      await sql`rollback to savepoint rd_nesting`.execute(this.tx);
      return null;
    }
  }
}

interface PlanNode {
  'Node Type': string;
  Output?: string[];
  Plans?: PlanNode[];
}

async function plan(tx: Tx, explain: ReturnType<typeof sql>): Promise<PlanNode> {
  const { rows } = await sql<{ 'QUERY PLAN': { Plan: PlanNode }[] }>`${explain}`.execute(tx);
  return rows[0]!['QUERY PLAN'][0]!.Plan;
}

function nodeTypes(node: PlanNode): string[] {
  return [node['Node Type'], ...(node.Plans ?? []).flatMap(nodeTypes)];
}

/**
 * An expression as EXPLAIN VERBOSE prints a Const (ruleutils' get_const_expr), not NULL: a quoted
 * literal or a bare number or boolean, then at most a `::type` and a COLLATE. Anything else — a
 * call, an operator (parenthesised), a cast of something else — is not folded.
 */
export function isConstant(output: string | undefined): boolean {
  if (output === undefined) return false;
  return /^(?:'(?:[^']|'')*'|\d[\d.eE+-]*|true|false)(?:::[^:']+)?(?: COLLATE [^:']+)?$/.test(output);
}
