import { afterAll, beforeAll, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

/**
 * verify-constraints normalises expected keys read-only (EXPLAIN of the expression, no DDL), so
 * that it runs on a read replica. Its answer must be the server's own: for each expected key the
 * test builds that very index (CREATE UNIQUE INDEX, rolled back) and asks the catalog whether an
 * existing unique index stores the same key — same columns, expression trees, predicate tree,
 * collations and NULLS [NOT] DISTINCT — then checks that verify says `ok` exactly for those.
 */

const FIXTURE = `
  create table t (
    id int primary key, email varchar(100), code text, a int, b int, "Ref" text, "order" int,
    deleted_at timestamptz, doc jsonb
  );
  create unique index t_lower_email on t (lower(email)) where deleted_at is null;
  create unique index t_sum on t ((a + b), (code || 'x'));
  create unique index t_code_c on t (code collate "C") where a > 0 and (b < 9 or code = 'x');
  create unique index t_doc on t ((doc ->> 'k'), coalesce("Ref", ''));
  create unique index t_upper_c on t (upper(code) collate "C");
  create unique index t_a_text on t ((a::text)) where "order" is not null;
  create unique index t_email on t (email);
  create unique index t_pattern on t (code text_pattern_ops, b);
`;

interface Spec {
  key: (string | { expr: string })[];
  where?: string;
  nullsNotDistinct?: boolean;
}

const SPECS: Spec[] = [
  { key: [{ expr: 'lower(email)' }], where: 'deleted_at is null' },
  { key: [{ expr: 'LOWER( email )' }], where: 'deleted_at IS NULL' },
  { key: [{ expr: 'lower(email::text)' }], where: '(deleted_at is null)' },
  { key: [{ expr: 'lower(email)' }] },
  { key: [{ expr: 'lower(email)' }], where: 'deleted_at is not null' },
  { key: [{ expr: 'a+b' }, { expr: "code||'x'" }] },
  { key: [{ expr: '(a) + (b)' }, { expr: `"code" || 'x'::text` }] },
  { key: [{ expr: 'b + a' }, { expr: "code || 'x'" }] },
  { key: [{ expr: 'code collate "C"' }], where: "a > 0 and (b < 9 or code = 'x')" },
  { key: ['code'], where: "a > 0 and (b < 9 or code = 'x')" },
  { key: [{ expr: 'code collate "C"' }], where: "a > 0 and (code = 'x' or b < 9)" },
  { key: [{ expr: 'code collate "C"' }], where: "(a > 0) AND ((b < 9) OR (code = 'x'::text))" },
  { key: [{ expr: "doc->>'k'" }, { expr: `coalesce("Ref", '')` }] },
  { key: [{ expr: "doc->'k'" }, { expr: `coalesce("Ref", '')` }] },
  { key: [{ expr: 'upper(code) collate "C"' }] },
  { key: [{ expr: 'upper(code collate "C")' }] },
  { key: [{ expr: 'upper(code)' }] },
  { key: [{ expr: 'a::text' }], where: '"order" is not null' },
  { key: [{ expr: 'cast(a as text)' }], where: '"order" IS NOT NULL' },
  { key: [{ expr: 'a::varchar' }], where: '"order" is not null' },
  { key: ['email'] },
  { key: [{ expr: 'email collate "C"' }] },
  { key: [{ expr: 'email::text' }] },
  { key: ['code', 'b'] },
  { key: ['Ref', 'order'], nullsNotDistinct: true },
  { key: ['Ref'], nullsNotDistinct: true },
];

let db: TestDb;
let nullsNotDistinct = false;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  const v = await db.query<{ v: string }>("select current_setting('server_version_num') as v");
  nullsNotDistinct = Number(v[0]!.v) >= 150000;
  if (nullsNotDistinct) await db.exec('create unique index t_ref_order on t ("Ref", "order") nulls not distinct');
});
afterAll(() => db.drop());

/** Fields of a node tree that only say how the SQL was written, removed before comparing trees. */
const NOISE = String.raw`'(:location -?\d+|:(relabel|coerce|func)format \d+)'`;
const tree = (column: string) => `regexp_replace(coalesce(${column}::text, ''), ${NOISE}, '', 'g')`;

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** The server's answer: does an existing unique index store exactly the index this spec builds? */
async function sameAsExisting(spec: Spec): Promise<boolean> {
  const parts = spec.key.map((k) => (typeof k === 'string' ? quote(k) : `(${k.expr})`)).join(', ');
  const nnd = spec.nullsNotDistinct ? 'nulls not distinct' : '';
  const where = spec.where ? `where ${spec.where}` : '';
  await db.exec('begin');
  try {
    await db.exec(`create unique index rd_truth on t (${parts}) ${nnd} ${where}`);
    // Node trees compared without what only says how the SQL was written (parse locations, whether
    // a cast was explicit); operator classes are left out (rowdoctor compares keys by the equality
    // they enforce, which a btree class of the same type shares).
    const rows = await db.query<{ same: boolean }>(`
      select exists (
        select
          from pg_index i, pg_index s
         where s.indexrelid = 'rd_truth'::regclass
           and i.indrelid = s.indrelid
           and i.indexrelid <> s.indexrelid
           and i.indisunique
           and i.indkey::text = s.indkey::text
           and i.indcollation::text = s.indcollation::text
           and (to_jsonb(i) -> 'indnullsnotdistinct') is not distinct from (to_jsonb(s) -> 'indnullsnotdistinct')
           and ${tree('i.indexprs')} = ${tree('s.indexprs')}
           and ${tree('i.indpred')} = ${tree('s.indpred')}
      ) as same`);
    return rows[0]!.same;
  } finally {
    await db.exec('rollback');
  }
}

it('says ok for exactly the expected keys whose index the server would store like an existing one', async () => {
  const specs = SPECS.filter((s) => nullsNotDistinct || !s.nullsNotDistinct);
  const rules = specs.map((s) => ({
    check: 'duplicate-rows',
    table: 't',
    key: s.key,
    ...(s.where ? { where: s.where } : {}),
    includeSoftDeleted: true,
    nullsNotDistinct: s.nullsNotDistinct ?? false,
    repair: 'report',
  }));
  const config = writeConfig(JSON.stringify({ rules }), 'json');
  const res = await runCli(['verify-constraints', '--database-url', db.url, '--config', config, '--format', 'json']);
  expect(res.stderr).toBe('');
  const verdicts = (JSON.parse(res.stdout) as { constraints: { status: string; columns: string[] }[] }).constraints;
  expect(verdicts).toHaveLength(specs.length);
  const truth: boolean[] = [];
  for (const s of specs) truth.push(await sameAsExisting(s));
  const said = verdicts.map((v) => v.status === 'ok');
  const label = (i: number) =>
    `${JSON.stringify(specs[i])} → ${verdicts[i]!.status} ${verdicts[i]!.columns.join(', ')}`;
  expect(said.map((ok, i) => `${label(i)}: ${ok}`)).toEqual(truth.map((ok, i) => `${label(i)}: ${ok}`));
  // Both answers occur: the comparison is not trivially all ok or all not.
  expect(new Set(truth)).toEqual(new Set([true, false]));
});
