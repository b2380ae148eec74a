import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableStats } from '../support/conservation.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * The dry run copies the rows the repair reads or writes, not the tables: 100 duplicate groups
 * among 50,200 accounts (200,000 orders, 100,000 order items, 50 orphan items). `plannedRows` is
 * the closure computed here by hand — the groups' rows, the orders that name them (those the merge
 * re-points, and the survivors' own, which they collide with), those orders' items, and the orphan
 * items — and it stays the same when the clean rows double. The counts are --apply's.
 */
const CLEAN = 50_000;
const FIXTURE = `
  create table account (id bigint primary key, email text not null);
  -- accounts 1..100 each get two copies (50001..50200): 100 groups of 3
  insert into account select g, 'u' || g || '@x' from generate_series(1, ${CLEAN}) g;
  insert into account select ${CLEAN} + g, 'u' || (1 + (g - 1) % 100) || '@x' from generate_series(1, 200) g;
  create table orders (id bigint primary key, account_id bigint not null references account, number int not null,
                       unique (account_id, number));
  insert into orders select g, 1 + g % (${CLEAN} + 200), g / (${CLEAN} + 200) from generate_series(1, 200000) g;
  -- items name their order without a foreign key; 50 name none (orphans)
  create table order_item (id bigint primary key, order_id bigint not null, qty int not null);
  create index on order_item (order_id);
  insert into order_item select g, 1 + (g * 7) % 200000, g % 5 from generate_series(1, 100000) g;
  insert into order_item select 100000 + g, 10000000 + g, 1 from generate_series(1, 50) g;
  analyze;
`;
const CONFIG = `rules:
  - { check: duplicate-rows, table: account, key: [email], repair: merge }
  - { check: orphaned-rows, table: order_item, column: order_id, references: orders.id, repair: delete }
`;

/** The rows the repair reads or writes, computed by hand on the real tables. */
const CLOSURE = `
  with g as (select id from account where email in (select email from account group by email having count(*) > 1)),
       o as (select id from orders where account_id in (select id from g)),
       i as (select id from order_item
              where order_id in (select id from o)
                 or not exists (select 1 from orders where orders.id = order_item.order_id))
  select (select count(*) from g) as g, (select count(*) from o) as o, (select count(*) from i) as i`;

interface FootprintDoc {
  plannedRows: number | null;
  actions: Record<string, number>[];
}

let db: TestDb;
let config: string;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  config = writeConfig(CONFIG);
}, 120_000);
afterAll(() => db.drop());

const closure = async () => {
  const [row] = await db.query<{ g: string; o: string; i: string }>(CLOSURE);
  return { groups: Number(row!.g), orders: Number(row!.o), items: Number(row!.i) };
};

describe('the dry run copies in proportion to the damage', () => {
  it('copies exactly the closure of the groups and orphans, the same with twice the clean rows, and counts as --apply', async () => {
    const original = await db.checksums();
    const before = await tableStats(db);
    const hand = await closure();
    expect(hand.groups).toBe(300);
    const expected = hand.groups + hand.orders + hand.items;

    const dry = await repairJson(db.url, config);
    expect(dry.code, dry.stderr).toBe(1);
    const doc = dry.doc as unknown as FootprintDoc;
    expect(doc.plannedRows).toBe(expected);
    // nothing was copied whole, and nothing changed
    expect(dry.stderr).not.toMatch(/copies .* whole/);
    expect(await db.checksums()).toEqual(original);
    const text = await runCli(['repair', '--database-url', db.url, '--config', config, '--no-discover']);
    expect(text.stdout).toContain(`planned on copies of ${expected.toLocaleString('en-US')} rows`);

    // Twice the clean rows: accounts, their orders and the orders' items. The footprint does not move.
    await db.exec(`
      insert into account select 100000 + g, 'v' || g || '@x' from generate_series(1, ${CLEAN + 200}) g;
      insert into orders select 1000000 + g, 100000 + 1 + g % (${CLEAN} + 200), g / (${CLEAN} + 200)
        from generate_series(1, 200000) g;
      insert into order_item select 1000000 + g, 1000000 + 1 + (g * 7) % 200000, g % 5 from generate_series(1, 100000) g;
      analyze;`);
    expect(await closure()).toEqual(hand);
    const doubled = await repairJson(db.url, config);
    expect((doubled.doc as unknown as FootprintDoc).plannedRows).toBe(expected);
    expect(doubled.doc.actions).toEqual(dry.doc.actions);

    const grown = await db.checksums();
    const grownStats = await tableStats(db);
    const applied = await repairJson(db.url, config, '--apply');
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.doc.actions).toEqual(dry.doc.actions);
    expect((applied.doc as unknown as FootprintDoc).plannedRows).toBeNull();
    const [merge, orphans] = applied.doc.actions;
    expect(merge).toMatchObject({ groups: 100, rowsDeleted: 200 });
    expect(merge!.childRowsMerged).toBeGreaterThan(0);
    expect(orphans).toMatchObject({ rowsDeleted: 50 });

    // conservation: 200 accounts, the merged orders and the 50 orphan items are the rows gone
    const after = await tableStats(db);
    expect(grownStats['public.account']!.rows - after['public.account']!.rows).toBe(200);
    expect(grownStats['public.orders']!.rows - after['public.orders']!.rows).toBe(merge!.childRowsMerged);
    expect(grownStats['public.order_item']!.rows - after['public.order_item']!.rows).toBe(50);
    // each orphan item had qty 1; the items of merged orders moved, none was lost
    expect(Number(grownStats['public.order_item']!.sums.qty) - Number(after['public.order_item']!.sums.qty)).toBe(50);
    expect(before['public.account']!.rows + CLEAN + 200).toBe(grownStats['public.account']!.rows);

    const undo = await runCli(['undo', applied.doc.runId, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stderr).toBe(0);
    const now = await db.checksums();
    for (const [t, sum] of Object.entries(grown)) expect(now[t], t).toBe(sum);
  }, 300_000);
});
