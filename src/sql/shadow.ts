import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * A dry run's stand-ins: session-local copies (pg_temp) of every table a repair touches, with the
 * constraints the server would check. While a scope is active, `tableRef` names the copy, so the
 * very statements of an apply run against the copies: the counts are what the server does, and
 * no user table is written, locked or changed, even transiently.
 */
export interface Shadows {
  /** Table oid → name of its copy in pg_temp. */
  tables: Map<number, string>;
  /**
   * A copy's name as compiled (`"pg_temp"."rd_shadow_…"`) → the real table as compiled, for --sql
   * (the dry run's merge map too: rowdoctor_backup.merges).
   */
  compiled: Map<string, string>;
  /** Names on the copies (tables, constraints, indexes) → the real ones, for messages. */
  names: Map<string, string>;
  /**
   * An index on a copy that stands for a partition's own index → that partition (`schema.table`):
   * the server names the partition when the real index refuses a row, the copy's table otherwise.
   */
  tableOf: Map<string, string>;
  /** Constraints of the real tables the copies could not take, for the dry run to say so. */
  uncopied: string[];
}

const scope = new AsyncLocalStorage<Shadows>();

export function withShadows<T>(shadows: Shadows, fn: () => Promise<T>): Promise<T> {
  return scope.run(shadows, fn);
}

export function currentShadows(): Shadows | undefined {
  return scope.getStore();
}

/** A statement as it reads against the real tables: each copy's name replaced by its table's. */
export function unshadowed(text: string): string {
  const shadows = currentShadows();
  if (!shadows) return text;
  return text.replace(/"pg_temp"\."rd_shadow_\w+"/g, (m) => shadows.compiled.get(m) ?? m);
}

/** A name from a server message (table, constraint, index) as the user knows it. */
export function realName(name: string): string {
  return currentShadows()?.names.get(name) ?? name;
}

/** The table a refused row's index belongs to, as --apply's error names it (a partition's own index: the partition). */
export function realTableOf(constraint: string | undefined): string | undefined {
  return constraint ? currentShadows()?.tableOf.get(constraint) : undefined;
}

/**
 * A server message as the user would read it from --apply: every copy named in it (`rd_shadow_…`,
 * bare or as `pg_temp_3.rd_shadow_…`) replaced by the table, constraint or index it stands for.
 */
export function inRealNames(text: string): string {
  const shadows = currentShadows();
  if (!shadows) return text;
  return text.replace(/(?:"?pg_temp(?:_\d+)?"?\.)?"?(rd_shadow_\w+)"?/g, (m, name: string) => {
    const real = shadows.names.get(name);
    return real ? (m.startsWith('"') || m.endsWith('"') ? `"${real}"` : real) : m;
  });
}
