import { sql } from 'kysely';
import type { Catalog, Table } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import { tableName, tableRef } from '../sql/build.js';
import type { Shadows } from '../sql/shadow.js';
import { createShadowMergeMap, SHADOW_MERGES } from '../journal/merge-map.js';
import type { Rule } from '../rules/types.js';
import { chooseRows } from './shadow-rows.js';

/**
 * A dry run plans on copies: every table the repair touches is copied into pg_temp — only the rows the
 * repair reads or writes (repair/shadow-rows.ts: its groups' rows, the rows referencing them at every
 * depth, the rows those name), or the whole table where those cannot be bounded — with the constraints
 * the server checks on a write — NOT NULL, CHECK, primary and unique keys and indexes (partial,
 * expression, NULLS NOT DISTINCT, deferrable), exclusion constraints, and the foreign keys between the
 * copied tables with their ON UPDATE / ON DELETE actions. Valid indexes only: an INVALID one is what a
 * repair is there to make buildable. The repair's own statements then run against the copies: its
 * counts are what the server does, and the real tables are only read (ACCESS SHARE, no row locks).
 * Triggers are not copied (they may write elsewhere): a group that a raising trigger refuses is only
 * found by --apply. The merge map gets a copy too (journal/merge-map.ts).
 * Returns the copies and what each name on them stands for.
 */
export async function createShadows(
  session: Db,
  catalog: Catalog,
  tables: Table[],
  repair: { rules: Rule[]; declared: Rule[]; infer: boolean },
): Promise<ShadowCopies> {
  const shadows: ShadowCopies = {
    tables: new Map(),
    compiled: new Map(),
    names: new Map(),
    tableOf: new Map(),
    uncopied: [],
    plannedRows: 0,
    copiedWhole: new Map(),
  };
  const byId = new Map(tables.map((t) => [t.id, t]));
  // One snapshot: the rows chosen are the rows copied (ctids do not move under it).
  await session
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (tx) => {
      // Which rows to copy, chosen on the real tables (with the user's search_path, as the repair's own listing).
      const choice = await chooseRows(tx, catalog, tables, repair.rules, repair.declared, repair.infer);
      shadows.copiedWhole = choice.whole;
      // Every name the server prints (index and constraint definitions) comes out schema-qualified.
      await sql`set local search_path = pg_catalog`.execute(tx);
      for (const table of tables) {
        const name = `rd_shadow_${table.oid}`;
        const copy = sql.id('pg_temp', name);
        await sql`drop table if exists ${copy} cascade`.execute(tx);
        // A stored generated column stays generated on the copy: a re-pointed row recomputes it, and a
        // unique index on it sees what the real table's would.
        await sql`create temp table ${copy} (like ${tableName(table)} including generated)`.execute(tx);
        const storedCols = table.columns.filter((c) => !c.generated).map((c) => c.name);
        const stored = sql.join(storedCols.map((c) => sql.id(c)));
        const picked = choice.picked.get(table.oid);
        const copied = picked
          ? await sql`insert into ${copy} (${stored})
            select ${sql.join(storedCols.map((c) => sql.id('t', c)))}
              from ${sql.id('pg_temp', picked)} s
              join ${tableRef(table)} t on t.tableoid = s.o and t.ctid = s.c`.execute(tx)
          : await sql`insert into ${copy} (${stored}) select ${stored} from ${tableRef(table)}`.execute(tx);
        shadows.plannedRows += Number(copied.numAffectedRows ?? 0n);
        if (picked) await sql`drop table ${sql.id('pg_temp', picked)}`.execute(tx);
        shadows.tables.set(table.oid, name);
        shadows.compiled.set(copy.compile(tx).sql, tableRef(table).compile(tx).sql);
        shadows.names.set(name, table.id);
      }
      let n = 0;
      const nextName = (real: string) => {
        const name = `rd_shadow_c${++n}`;
        shadows.names.set(name, real);
        return name;
      };
      const oids = tables.map((t) => t.oid);
      // Constraints of each copied table: keys, exclusion and CHECK constraints.
      const constraints = await sql<{ rel: number; name: string; def: string; type: string }>`
      select conrelid::int as rel, conname as name, pg_get_constraintdef(oid) as def, contype as type
        from pg_constraint
       where conrelid = any(${oids}::oid[]) and contype in ('p', 'u', 'x', 'c')
       order by contype = 'c', conrelid, conname`.execute(tx);
      for (const c of constraints.rows) {
        const notValid = c.type === 'c' && !/ NOT VALID$/.test(c.def) ? ' NOT VALID' : '';
        const copy = shadows.tables.get(c.rel);
        await tryDdl(tx, `alter table pg_temp.${copy} add constraint ${quote(nextName(c.name))} ${c.def}${notValid}`);
      }
      // Other valid indexes (unique ones the repair must respect, and the ones its lookups need).
      const indexes = await sql<{ rel: number; name: string; def: string; qualified: string }>`
      select i.indrelid::int as rel, x.relname as name, pg_get_indexdef(i.indexrelid) as def,
             format('%I.%I', n.nspname, t.relname) as qualified
        from pg_index i
        join pg_class x on x.oid = i.indexrelid
        join pg_class t on t.oid = i.indrelid
        join pg_namespace n on n.oid = t.relnamespace
       where i.indrelid = any(${oids}::oid[]) and i.indisvalid and i.indisready
         and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid and c.conrelid = i.indrelid)
       order by 1, 2`.execute(tx);
      for (const i of indexes.rows) {
        const head = /^CREATE (UNIQUE )?INDEX /.exec(i.def);
        const on = [` ON ONLY ${i.qualified} USING `, ` ON ${i.qualified} USING `].find((s) => i.def.includes(s));
        if (!head || !on) continue;
        const tail = i.def.slice(i.def.indexOf(on) + on.length);
        await tryDdl(tx, `${head[0]}${quote(nextName(i.name))} ON pg_temp.${shadows.tables.get(i.rel)} USING ${tail}`);
      }
      // Unique indexes that exist on one partition only: on the root's copy, partial, scoped by the
      // partition's constraint (its ancestors' bounds included), so the copy refuses what the partition does.
      const partitionIndexes = await sql<PartitionIndexRow>`
      select r.relid::int as rel, x.relname as name, pn.nspname || '.' || p.relname as partition,
             pg_get_indexdef(i.indexrelid) as def, pg_get_expr(i.indpred, i.indrelid) as predicate,
             pg_get_partition_constraintdef(i.indrelid) as scope, format('%I.%I', pn.nspname, p.relname) as qualified
        from pg_index i
        join pg_class x on x.oid = i.indexrelid
        join pg_class p on p.oid = i.indrelid
        join pg_namespace pn on pn.oid = p.relnamespace
        cross join lateral (select a.relid
                              from pg_partition_ancestors(i.indrelid) a(relid)
                             where a.relid = any(${oids}::oid[])) r
       where i.indisunique and i.indisvalid and i.indisready and p.relispartition
         and not exists (select 1 from pg_inherits h where h.inhrelid = i.indexrelid)
       order by 1, 2`.execute(tx);
      for (const i of partitionIndexes.rows) {
        const name = nextName(i.name);
        const text = scopedIndex(i, `pg_temp.${shadows.tables.get(i.rel)}`, quote(name));
        if (text && (await tryDdl(tx, text))) shadows.tableOf.set(name, i.partition);
        else shadows.uncopied.push(`unique index ${i.name} on ${i.partition}`);
      }
      // Foreign keys between copied tables (one on or into a partition: between the copies of the roots).
      const root = (id: string) => byId.get(catalog.partitionRoot.get(id) ?? id);
      const fks = await sql<{ name: string; def: string; child: string; parent: string; qualified: string }>`
      select c.conname as name, pg_get_constraintdef(c.oid) as def,
             format('%s.%s', cn.nspname, ct.relname) as child, format('%s.%s', pn.nspname, pt.relname) as parent,
             format('%I.%I', pn.nspname, pt.relname) as qualified
        from pg_constraint c
        join pg_class ct on ct.oid = c.conrelid
        join pg_namespace cn on cn.oid = ct.relnamespace
        join pg_class pt on pt.oid = c.confrelid
        join pg_namespace pn on pn.oid = pt.relnamespace
       where c.contype = 'f' and c.conparentid = 0
       order by c.conrelid, c.conname`.execute(tx);
      for (const fk of fks.rows) {
        const child = root(fk.child);
        const parent = root(fk.parent);
        if (!child || !parent) continue;
        const ref = ` REFERENCES ${fk.qualified}(`;
        if (!fk.def.includes(ref)) continue;
        const def = fk.def.replace(ref, ` REFERENCES pg_temp.${shadows.tables.get(parent.oid)}(`);
        const notValid = / NOT VALID$/.test(def) ? '' : ' NOT VALID';
        const copy = shadows.tables.get(child.oid);
        await tryDdl(tx, `alter table pg_temp.${copy} add constraint ${quote(nextName(fk.name))} ${def}${notValid}`);
      }
      for (const name of shadows.tables.values()) await sql`analyze ${sql.id('pg_temp', name)}`.execute(tx);
      // The dry run's own merge map: a later rule re-points orphans of this run's merges as the apply's would.
      const [copy, real] = await createShadowMergeMap(tx);
      shadows.compiled.set(copy, real);
    });
  return shadows;
}

/** The copies, and what they hold: the dry run's footprint. */
export interface ShadowCopies extends Shadows {
  /** Rows copied, all tables together (`plannedRows`). */
  plannedRows: number;
  /** Tables copied whole (the rows the repair reaches there could not be bounded): table id → why. */
  copiedWhole: Map<string, string>;
}

/** Drop the copies (they would go with the session anyway). */
export async function dropShadows(session: Db, shadows: Shadows): Promise<void> {
  const names = [...shadows.tables.values(), SHADOW_MERGES].map((name) => sql.id('pg_temp', name));
  if (names.length) await sql`drop table if exists ${sql.join(names)} cascade`.execute(session);
}

interface PartitionIndexRow {
  /** The copied root (or partitioned partition) the index's rows belong to. */
  rel: number;
  name: string;
  /** schema.partition, unquoted, for messages. */
  partition: string;
  def: string;
  predicate: string | null;
  scope: string;
  qualified: string;
}

/**
 * A partition's own unique index as a partial index on the root's copy: its method, key, INCLUDE
 * and NULL semantics as pg_get_indexdef prints them, its predicate AND the partition's constraint.
 * Null when the definition does not read as expected (then it is not copied, and said so).
 */
function scopedIndex(i: PartitionIndexRow, copy: string, name: string): string | null {
  const on = [` ON ONLY ${i.qualified} USING `, ` ON ${i.qualified} USING `].find((x) => i.def.includes(x));
  if (!on || !i.def.startsWith('CREATE UNIQUE INDEX ')) return null;
  let tail = i.def.slice(i.def.indexOf(on) + on.length);
  if (i.predicate) {
    const where = ` WHERE ${i.predicate}`;
    if (!tail.endsWith(where)) return null;
    tail = tail.slice(0, -where.length);
  }
  const predicate = i.predicate ? `(${i.scope}) AND (${i.predicate})` : i.scope;
  return `CREATE UNIQUE INDEX ${name} ON ${copy} USING ${tail} WHERE ${predicate}`;
}

function quote(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * A constraint the copy cannot take (a key into one partition that its root's copy has no unique
 * index for, an operator class the copy lacks …) is left off: the copy is then less strict there
 * than the table, and --apply still finds what it refuses. Returns whether the copy took it.
 */
async function tryDdl(tx: Tx, text: string): Promise<boolean> {
  await sql`savepoint rd_shadow`.execute(tx);
  try {
    await sql.raw(text).execute(tx);
    await sql`release savepoint rd_shadow`.execute(tx);
    return true;
  } catch {
    await sql`rollback to savepoint rd_shadow`.execute(tx);
    await sql`release savepoint rd_shadow`.execute(tx);
    return false;
  }
}
