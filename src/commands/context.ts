import { loadCatalog, weighCatalogReferences } from '../catalog/load.js';
import { tablesInReach } from '../rules/reach.js';
import { softDeleteSettings } from '../catalog/soft-delete.js';
import type { Catalog } from '../catalog/types.js';
import { loadConfig, type LoadedConfig } from '../config.js';
import { openDatabase, readOnlyAlongside, type Connection, type Tx } from '../db.js';
import { resolveTarget, settleTls } from '../connection/resolve.js';
import { collectRules } from '../rules/collect.js';
import type { Rule } from '../rules/types.js';
import { validateRules } from '../rules/validate.js';
import { resolveKeyEqualities } from '../rules/equality.js';
import { discoverRules } from '../rules/discover.js';
import { expressionForms } from '../rules/key-forms.js';
import { checkFlagSyntax } from '../rules/from-flags.js';
import { parseDuration, parseOnly, type CommonOptions } from './options.js';

export interface Snapshot {
  catalog: Catalog;
  rules: Rule[];
}

/** Parse what can be parsed before touching the network: bad flags and configs fail fast. */
export async function prepare(opts: CommonOptions): Promise<{ loaded: LoadedConfig; statementTimeoutMs: number }> {
  parseOnly(opts.only);
  checkFlagSyntax(opts.duplicates, opts.orphans);
  const statementTimeoutMs = parseDuration(opts.statementTimeout, '--statement-timeout');
  const loaded = await loadConfig(opts.config);
  return { loaded, statementTimeoutMs };
}

/** Connect the way libpq would (connection/resolve.ts); `env` is the process's unless a test gives its own. */
export async function connect(
  opts: Pick<CommonOptions, 'databaseUrl'>,
  connections = 2,
  env = process.env,
): Promise<Connection> {
  const target = await settleTls(resolveTarget(opts.databaseUrl, env));
  for (const note of target.notes) process.stderr.write(`rowdoctor: ${note}\n`);
  return openDatabase(target, { maxConnections: Math.max(2, connections) });
}

/** Catalog and rules, resolved and server-validated, inside the caller's transaction. */
export interface SnapshotMode {
  /** false: only discovered rules (init describes the database, not an existing config's rules). */
  declared?: boolean;
  /**
   * Weigh inferred and polymorphic references (see CatalogOptions). With discovery, or 'all': all of
   * them; 'reach': those into the tables a repair of the declared rules may change (rules/reach.ts).
   */
  weighReferences?: 'all' | 'reach';
}

export async function snapshot(
  tx: Tx,
  opts: CommonOptions,
  loaded: LoadedConfig,
  mode: SnapshotMode = {},
): Promise<Snapshot> {
  const declared = mode.declared ?? true;
  const schemas = opts.schema?.length ? opts.schema : (loaded.config.schemas ?? null);
  const discover = declared ? opts.discover : true;
  const catalog = await loadCatalog(tx, {
    schemas,
    softDelete: softDeleteSettings(loaded.config.softDelete),
    weighReferences: discover || mode.weighReferences === 'all',
  });
  const sources = {
    config: declared ? loaded.config : {},
    configFile: loaded.file,
    duplicates: declared ? opts.duplicates : [],
    orphans: declared ? opts.orphans : [],
    discover,
    only: parseOnly(opts.only),
  };
  // Without discovery, a repair weighs only the references into the tables it may change.
  if (!discover && mode.weighReferences === 'reach')
    await weighCatalogReferences(tx, catalog, tablesInReach(catalog, collectRules(catalog, sources)));
  // A declared key expression replaces the discovered one it equals as the server normalises both.
  const candidates = [...collectRules(catalog, sources), ...(sources.discover ? discoverRules(catalog) : [])];
  const rules = collectRules(catalog, sources, await expressionForms(tx, candidates));
  await validateRules(tx, rules);
  return { catalog, rules: await resolveKeyEqualities(tx, rules) };
}

/**
 * Open, run `work` in one read-only snapshot, close. With `jobs` > 1, `alongside` holds jobs − 1
 * more read-only transactions on that same snapshot, each on its own connection.
 */
export async function withReadOnlySnapshot<T>(
  opts: CommonOptions,
  work: (tx: Tx, snap: Snapshot, conn: Connection, alongside: Tx[]) => Promise<T>,
  mode: SnapshotMode & { jobs?: number; connections?: number } = {},
): Promise<T> {
  const { loaded, statementTimeoutMs } = await prepare(opts);
  const jobs = mode.jobs ?? 1;
  const conn = await connect(opts, mode.connections ?? jobs);
  try {
    return await readOnlyAlongside(conn.db, statementTimeoutMs, jobs - 1, async (tx, alongside) =>
      work(tx, await snapshot(tx, opts, loaded, mode), conn, alongside),
    );
  } finally {
    await conn.close();
  }
}
