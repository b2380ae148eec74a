import type { Equality, KeyComparison, QualifiedName, Table } from '../catalog/types.js';
import type { SqlFragment } from '../sql/fragment.js';

export type CheckId = 'duplicate-rows' | 'orphaned-rows' | 'soft-delete-conflicts';
export const CHECK_IDS: CheckId[] = ['duplicate-rows', 'orphaned-rows', 'soft-delete-conflicts'];

export type Source = 'config' | 'flag' | 'discovered';
export type Severity = 'error' | 'warning';
export type DeletedParent = 'error' | 'warning' | 'ignore';

/**
 * One part of a key: a catalog column, or an expression over the row (validated by the server),
 * with how its values compare. A part from an index carries the index's collation and equality;
 * a declared one compares as its type does (a column's from the catalog, an expression's found
 * by rules/equality.ts).
 */
export type KeyPart = ({ kind: 'column'; column: string } | { kind: 'expr'; expr: SqlFragment }) & {
  /** The collation to compare in, where it is not the part's own (an index's COLLATE). */
  collation?: QualifiedName | null;
  /** The equality to compare with; absent: the column type's, else `pg_catalog.=`. */
  equality?: Equality | null;
};

/** An ORDER BY term for choosing the survivor of a duplicate group. */
export interface OrderTerm {
  column: string;
  direction: 'asc' | 'desc';
  nulls: 'first' | 'last' | null;
}

interface RuleBase {
  table: Table;
  where: SqlFragment | null;
  source: Source;
  severity: Severity;
  /** Why a discovered rule exists, e.g. "INVALID unique index users_email_key". */
  origin: string | null;
}

export interface DuplicateRule extends RuleBase {
  check: 'duplicate-rows';
  key: KeyPart[];
  includeSoftDeleted: boolean;
  nullsNotDistinct: boolean;
  keep: OrderTerm[];
  fill: boolean;
  repair: 'merge' | 'delete' | 'soft-delete' | 'report';
  /** The creation-time column the diagnosis uses (config `createdAt:`); absent: found by name. */
  createdAt?: string;
}

export interface OrphanRule extends RuleBase {
  check: 'orphaned-rows';
  columns: string[];
  parent: Table;
  parentColumns: string[];
  includeSoftDeleted: boolean;
  inferred: boolean;
  /** The foreign key this rule checks, when there is one. */
  foreignKey: string | null;
  /**
   * How that foreign key's check compares (rules/collect.ts takes it from the catalog): MATCH FULL
   * or SIMPLE, and per column pair its own operator and collation. Absent: MATCH SIMPLE, each pair
   * compared with the parent column type's equality.
   */
  comparison?: { matchFull: boolean; pairs: KeyComparison[] };
  /**
   * What children of soft-deleted parents are: damage (`error`, the default), kept on purpose but
   * worth a look (`warning`: alone, they make a warning finding), or by design (`ignore`: a
   * soft-deleted parent counts as a parent).
   */
  deletedParent?: DeletedParent;
  repair: 'delete' | 'soft-delete' | 'set-null' | 'report';
  /**
   * A polymorphic or generic reference (contract: "References the catalog does not hold"): only
   * the rows whose type column holds this type name the parent, by `columns` (the id column).
   */
  typed?: TypedKey;
  /** The creation-time column the diagnosis uses (config `createdAt:`); absent: found by name. */
  createdAt?: string;
}

/** Which rows of a polymorphic or generic reference name the parent, and how their id compares. */
export interface TypedKey {
  kind: 'polymorphic' | 'generic';
  typeColumn: string;
  /** The type value as PostgreSQL prints it (`User`, `App\Models\User`, a content type id). */
  type: string;
  /** A text id compared with the parent key's text form. */
  asText: boolean;
}

export interface SoftDeleteRule extends RuleBase {
  check: 'soft-delete-conflicts';
  key: KeyPart[];
  nullsNotDistinct: boolean;
  /** (a): the unique index/constraint that makes a deleted row block inserts, if any. */
  enforcedBy: string | null;
  repair: 'purge-deleted' | 'revive' | 'report';
}

export type Rule = DuplicateRule | OrphanRule | SoftDeleteRule;

export function keyLabel(part: KeyPart): string {
  return part.kind === 'column' ? part.column : part.expr.text;
}

/**
 * The identity used to let a declared rule replace a discovered one (same check, table, columns).
 * `forms` names each expression as the server normalises it (rules/key-forms.ts), so that a
 * declared `coalesce(nick, '')` is the discovered `COALESCE(nick, ''::text)`.
 */
export function ruleIdentity(rule: Rule, forms?: ExpressionForms): string {
  const label = (p: KeyPart) => (p.kind === 'expr' && forms?.get(formId(rule.table, p.expr.text))) || keyLabel(p);
  const cols =
    rule.check === 'orphaned-rows'
      ? [...(rule.typed ? [`${rule.typed.typeColumn}=${rule.typed.type}`] : []), ...rule.columns]
      : rule.key.map(label);
  return `${rule.check}|${rule.table.id}|${cols.join(',')}`;
}

/** An expression's text → the server's normalised form of it, per table (see formId). */
export type ExpressionForms = Map<string, string>;

export function formId(table: Table, text: string): string {
  return `${table.id}\u0000${text}`;
}

export function describeRule(rule: Rule): string {
  if (rule.check === 'orphaned-rows') {
    const type = rule.typed ? `${rule.typed.typeColumn} = '${rule.typed.type}', ` : '';
    return `${rule.table.id}(${type}${rule.columns.join(', ')}) -> ${rule.parent.id}(${rule.parentColumns.join(', ')})`;
  }
  return `${rule.table.id}(${rule.key.map(keyLabel).join(', ')})${rule.where ? ` where ${rule.where.text}` : ''}`;
}
