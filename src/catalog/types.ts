/** A snapshot of what pg_catalog says about the user tables: the only source of identifiers. */

export interface Column {
  name: string;
  /** format_type(), e.g. `timestamp with time zone` */
  type: string;
  /** Base type name after resolving domains (`int4`, `text`, `uuid` …): used for compatibility. */
  baseType: string;
  /** pg_type.typcategory of the base type (N numeric, S string, D date/time, B boolean …). */
  category: string;
  notNull: boolean;
  generated: boolean;
  /**
   * A virtual generated column's expression (PostgreSQL 18: computed on read, never stored), else null.
   * No index can name such a column: an index that enforces a key on it indexes this expression.
   */
  virtual: string | null;
  /**
   * Its collation compares bytes for equality (true for non-text types): GROUP BY … COLLATE "C"
   * gives the same groups.
   */
  deterministic: boolean;
  /** It has a collation (pg_attribute.attcollation): COLLATE applies ("char" is a string without one before 15). */
  collatable: boolean;
  /** How values of the column's type compare, as GROUP BY compares them (null: the type has no equality). */
  equality: Equality | null;
}

/** A catalog object's name with its schema, written `"schema"."name"` wherever SQL needs it. */
export interface QualifiedName {
  schema: string;
  name: string;
}

/**
 * How two values of a key part are equal, read from the catalog (catalog/equality.ts): the type's
 * default btree equality (what GROUP BY, DISTINCT and a plain unique index use) or an index's own
 * operator class's. Written schema-qualified, `a OPERATOR(schema.=) b`, so no search_path can
 * make `=` mean another operator (citext outside the path otherwise resolves to `text = text`).
 */
export interface Equality {
  operator: QualifiedName;
  /** pg_operator oid: equal oids, same equality. */
  operatorOid: number;
  /**
   * A hash function consistent with the operator (its hash opfamily's), null when none is known.
   * `direct`: a call by name binds it to the value; else it is called through hash_array.
   */
  hash: { fn: QualifiedName; direct: boolean } | null;
  /**
   * For a domain over an enum, the enum, that its values are cast to before they are compared or
   * hashed: the server has no `=` for the domain (`feeling = feeling` is 42883; no foreign key can
   * use it either), though GROUP BY and unique indexes compare it as the enum. Null for other types.
   */
  operand: QualifiedName | null;
  /** false: not the type's default equality, so GROUP BY cannot group by it. */
  groupable: boolean;
}

/** One key part of a unique index: what its comparison is, beyond the column or expression. */
export interface IndexPart {
  /** pg_index.indcollation where it is not the part's own collation (an explicit COLLATE), else null. */
  collation: QualifiedName | null;
  /** pg_index.indclass where it is not the default operator class, else null. */
  opclass: QualifiedName | null;
  /** The operator class's equality (null: an access method without btree strategies). */
  equality: Equality | null;
}

/** How a table marks rows as deleted without removing them. */
export interface SoftDeleteMarker {
  column: string;
  /** timestamp: non-NULL means deleted; boolean: true means deleted. */
  kind: 'timestamp' | 'boolean';
}

/** A unique index (or the index behind a UNIQUE / PRIMARY KEY constraint). */
export interface UniqueIndex {
  name: string;
  /** The constraint the index backs, when it is one. */
  constraint: string | null;
  primary: boolean;
  valid: boolean;
  /** Key parts: a column name, or null where the part is an expression. */
  columns: (string | null)[];
  /** Key parts as the server deparses them: quoted column names or expressions. */
  parts: string[];
  /** Per key part: collation, operator class and equality, from pg_index (indcollation, indclass). */
  partInfo: IndexPart[];
  /**
   * Key parts as index elements for DDL: the part, then its COLLATE and operator class where
   * the index has its own, schema-qualified (`email COLLATE "public"."ci"`).
   */
  elements: string[];
  /** Deparsed predicate of a partial index, null when it covers every row. */
  predicate: string | null;
  nullsNotDistinct: boolean;
  /** Non-key INCLUDE columns: they never count towards uniqueness. */
  include: string[];
  definition: string;
  /**
   * Only in `Table.partitionUniqueIndexes`: the partition (`schema.table`) the index is defined on.
   * Its `predicate` then starts with that partition's constraint, so it reads as a partial index
   * on the root: the rows it applies to, and where a row would land after an update.
   */
  partition?: string;
}

export interface ForeignKey {
  name: string;
  /** schema.table of the referencing (child) table. */
  table: string;
  columns: string[];
  /** schema.table of the referenced (parent) table. */
  references: string;
  refColumns: string[];
  /** pg_constraint.convalidated: false for NOT VALID, and for NOT ENFORCED (PostgreSQL 18). */
  valid: boolean;
  /** pg_constraint.conenforced (PostgreSQL 18; always true before): false checks no row, old or new. */
  enforced: boolean;
  /** pg_constraint.confdeltype: a no action, r restrict, c cascade, n set null, d set default. */
  onDelete: string;
  /** pg_constraint.confupdtype, with the same letters. */
  onUpdate: string;
  /** Defined directly on a partition (not inherited from its parent). */
  onPartition: boolean;
  /** MATCH FULL (confmatchtype f): a key with some but not all parts NULL violates it. */
  matchFull: boolean;
  /** Per column pair, how the server's check compares them (conpfeqop, the parent column's collation). */
  pairs: KeyComparison[];
}

/**
 * How a foreign key's check compares one child column with its parent column: the constraint's
 * own `parent = child` operator (pg_constraint.conpfeqop) in the parent column's collation, as
 * the server's VALIDATE CONSTRAINT writes it (`pk.col OPERATOR(op) fk.col COLLATE pk_collation`).
 */
export interface KeyComparison {
  /** `parent = child`: left operand the parent column, right the child's. */
  equality: Equality;
  /** The parent column's collation, null where the type has none. */
  collation: QualifiedName | null;
}

export interface Table {
  oid: number;
  schema: string;
  name: string;
  /** `schema.table`, exact catalog names, unquoted: the id used in output and maps. */
  id: string;
  partitioned: boolean;
  /**
   * Old-style inheritance children (`CREATE TABLE … INHERITS (this)`): a plain `FROM this` reads
   * their rows too, while this table's unique indexes and the foreign keys into it cover its own
   * rows only — so every statement names it `ONLY` (sql/build.ts tableRef).
   */
  hasInheritors: boolean;
  columns: Column[];
  primaryKey: string[] | null;
  uniqueIndexes: UniqueIndex[];
  /**
   * Unique indexes that exist on one partition only (MusicBrainz's artist_release: each partition has
   * its own, the partitioned table none), each as a partial index of this table scoped by the
   * partition's bounds. A merge folds collisions under them; verify and discovery do not use them.
   */
  partitionUniqueIndexes: UniqueIndex[];
  /** Columns of the partition key of a partitioned table (expressions as null). */
  partitionKey: (string | null)[];
  softDelete: SoftDeleteMarker | null;
  estimatedRows: number;
  /** Columns that lead a valid, non-partial index: equality on them can use an index scan. */
  indexedLeading: string[];
  /** Columns that lead a btree index ordered as the column compares (see load-keys.ts). */
  orderedLeading: string[];
  /** Pages on disk (pg_class.relpages), for time estimates. */
  pages: number;
}

export interface Catalog {
  serverVersion: number;
  /** Schemas the user asked to check (default: every non-system schema). */
  schemas: string[];
  /** Every table in every non-system schema, partitions excluded (they are checked via their parent). */
  tables: Table[];
  /** Every foreign key in the database's user schemas, incl. those defined on partitions. */
  foreignKeys: ForeignKey[];
  /** Partition `schema.table` → the id of its root partitioned table. */
  partitionRoot: Map<string, string>;
  /** Partition `schema.table` → its columns: foreign keys on partitions point from here. */
  partitionColumns: Map<string, Column[]>;
  /** Name-based guesses weighed against the data: what was assumed, what was not, and why. */
  assumptions: Assumption[];
  /**
   * Polymorphic and generic references the data supports (rules/typed-evidence.ts), one per type
   * value that names a table: discovered rules are made from them.
   */
  typedReferences: TypedReference[];
  /**
   * Type values of candidate pairs the data does not support that still name a table by framework
   * naming (an audit log whose users were mostly deleted): not references, so nothing follows or
   * checks them, but no delete removes a row one of them names (contract: "Nothing is ever deleted
   * while something still references it"); `evidence` says why the pair was not taken.
   */
  unconfirmedReferences: TypedReference[];
  /** Content types of every Django `django_content_type` table, by that table's id (small tables, read whole). */
  contentTypes: Map<string, ContentType[]>;
  /** What discovery saw but would not guess (a type value that names no table): JSON `warnings`. */
  warnings: CatalogWarning[];
}

/**
 * A reference through a type column and an id column (contract: "References the catalog does not
 * hold"): rows of `table` whose `typeColumn` holds `type` name `parent` by `parentColumn`.
 * Polymorphic: Rails / Laravel class names or aliases; generic: a Django content type's id.
 */
export interface TypedReference {
  kind: 'polymorphic' | 'generic';
  /** `schema.table` of the referencing rows. */
  table: string;
  typeColumn: string;
  idColumn: string;
  /** The type value, as PostgreSQL prints it (a class name, an alias, a content type id). */
  type: string;
  /** `schema.table` the type value names, and its single-column primary key. */
  parent: string;
  parentColumn: string;
  /** The id column holds text and the parent key is not text: compare with the key's text form. */
  asText: boolean;
  /** Why the type names that table, and what the data showed. */
  evidence: string;
}

/** One row of django_content_type. */
export interface ContentType {
  id: string;
  appLabel: string;
  model: string;
}

/** A warning from reading the catalog (contract §JSON `warnings`). */
export interface CatalogWarning {
  code: 'unknown-polymorphic-type';
  message: string;
  table: string;
}

/**
 * A guess from a name, with the data's verdict (contract: JSON `assumptions`). Kinds without
 * `not-` were taken (soft-delete markers, inferred references); the others were rejected.
 */
export interface Assumption {
  kind:
    | 'soft-delete-marker'
    | 'not-a-soft-delete-marker'
    | 'inferred-reference'
    | 'not-a-reference'
    | 'polymorphic-reference'
    /** A column taken for a table's creation time by its name (the diagnosis dates damage by it). */
    | 'creation-time';
  /** `schema.table` holding the column. */
  table: string;
  column: string;
  /** What the data showed, e.g. "matched 3,412 of 3,420 distinct values in public.section(id)". */
  evidence: string;
  /** Inferred references: `schema.table(column)` of the candidate parent. */
  references?: string;
}

export function tableId(schema: string, name: string): string {
  return `${schema}.${name}`;
}

export function column(table: Table, name: string): Column | undefined {
  return table.columns.find((c) => c.name === name);
}

/**
 * The column an index key part names, or null for an expression. pg_get_indexdef prints a column
 * bare when it needs no quotes and in double quotes otherwise (upper case, keywords like "order").
 */
export function indexPartColumn(table: Table, part: string): string | null {
  const c = table.columns.find((x) => x.name === part || `"${x.name.replace(/"/g, '""')}"` === part);
  return c ? c.name : null;
}

/** `"schema"."name"`, quoted as PostgreSQL quotes identifiers. */
export function qualifiedText(q: QualifiedName): string {
  return `${quoteIdent(q.schema)}.${quoteIdent(q.name)}`;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
