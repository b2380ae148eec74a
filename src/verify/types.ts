import type { Table } from '../catalog/types.js';
import type { KeyPart, TypedKey } from '../rules/types.js';
import type { SqlFragment } from '../sql/fragment.js';

/** A unique key that should be enforced. */
export interface ExpectedUnique {
  kind: 'unique';
  table: Table;
  key: KeyPart[];
  where: SqlFragment | null;
  nullsNotDistinct: boolean;
  source: string;
}

/** A foreign key that should exist. */
export interface ExpectedForeignKey {
  kind: 'foreign-key';
  table: Table;
  columns: string[];
  parent: Table;
  parentColumns: string[];
  source: string;
  /** A polymorphic or generic reference: no foreign key can express it (status `unenforceable`). */
  typed?: TypedKey;
}

export type Expected = ExpectedUnique | ExpectedForeignKey;

export type Status = 'ok' | 'missing' | 'invalid' | 'mismatch' | 'unenforceable';

/** One verdict, as the contract's `constraints` entry (plus what the report needs). */
export interface Verdict {
  kind: 'unique' | 'foreign-key';
  table: string;
  columns: string[];
  where: string | null;
  status: Status;
  detail: string;
  violations: number | null;
  ddl: string[];
  /** The constraint or index found, if any. */
  found: string | null;
  /** foreign keys only: `schema.table(cols)` */
  references?: string;
  source: string;
  warnings: string[];
  /** What fixes the rows in `violations` (the migration's comment; not in the JSON). */
  fix: string;
}
