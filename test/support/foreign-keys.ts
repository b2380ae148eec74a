import pg from 'pg';

/**
 * Every validated foreign key of the database that some row breaks, as the server finds it: per
 * key, an anti-join of the referencing rows against the referenced ones under the key's own match
 * rule. Undo restores with session_replication_role = replica, where the server checks no foreign
 * key, so a wrong restore would otherwise stay hidden until the next VALIDATE or dump reload.
 * A plain SELECT, not ALTER TABLE … VALIDATE: it takes no lock a test's second connection may hold.
 */
export async function brokenForeignKeys(url: string): Promise<string[]> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    // Keys a partition inherits from its parent's are checked once, through the parent's.
    // NOT VALID (and PostgreSQL 18's NOT ENFORCED) keys promise nothing about old rows.
    const { rows: keys } = await client.query<{
      name: string;
      child: string;
      parent: string;
      only_child: boolean;
      only_parent: boolean;
      columns: string[];
      ref_columns: string[];
      match_full: boolean;
    }>(`
      select c.conname as name,
             format('%I.%I', cn.nspname, cc.relname) as child,
             format('%I.%I', pn.nspname, pc.relname) as parent,
             cc.relkind = 'r' as only_child,
             pc.relkind = 'r' as only_parent,
             array(select quote_ident(attname) from unnest(c.conkey) with ordinality k(n, i)
                     join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by i) as columns,
             array(select quote_ident(attname) from unnest(c.confkey) with ordinality k(n, i)
                     join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.n order by i) as ref_columns,
             c.confmatchtype = 'f' as match_full
        from pg_constraint c
        join pg_class cc on cc.oid = c.conrelid
        join pg_namespace cn on cn.oid = cc.relnamespace
        join pg_class pc on pc.oid = c.confrelid
        join pg_namespace pn on pn.oid = pc.relnamespace
       where c.contype = 'f' and c.convalidated and c.conparentid = 0
         and coalesce((to_jsonb(c) ->> 'conenforced')::boolean, true)
       order by 1`);
    const broken: string[] = [];
    for (const k of keys) {
      const pairs = k.columns.map((c, i) => `p.${k.ref_columns[i]} = x.${c}`).join(' and ');
      // MATCH SIMPLE: a row with a NULL in the key names nothing; MATCH FULL: only an all-NULL one.
      const names = k.match_full
        ? k.columns.map((c) => `x.${c} is not null`).join(' or ')
        : k.columns.map((c) => `x.${c} is not null`).join(' and ');
      const { rows } = await client.query<{ n: number }>(`
        select count(*)::int as n
          from ${k.only_child ? 'only ' : ''}${k.child} x
         where (${names})
           and not exists (select 1 from ${k.only_parent ? 'only ' : ''}${k.parent} p where ${pairs})`);
      if (rows[0]!.n > 0) broken.push(`${k.child} ${k.name}: ${rows[0]!.n} row(s) name no ${k.parent} row`);
    }
    return broken;
  } finally {
    await client.end();
  }
}
