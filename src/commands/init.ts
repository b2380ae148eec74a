import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { toYaml } from '../report/yaml.js';
import { RowdoctorError } from '../errors.js';
import { ruleToConfig } from '../rules/to-config.js';
import type { OrphanRule, Rule } from '../rules/types.js';
import { dottedName } from '../rules/to-config.js';
import type { Assumption, Catalog } from '../catalog/types.js';
import { findsOnlyDeletedParents } from '../rules/deleted-parent.js';
import { withReadOnlySnapshot } from './context.js';
import type { CommonOptions } from './options.js';

/** rowdoctor init: write a starter rowdoctor.yml with what discovery sees, commented. */
export async function initCommand(
  opts: CommonOptions & { output: string; force?: boolean },
  out: (s: string) => void,
): Promise<number> {
  if (existsSync(opts.output) && !opts.force) {
    throw new RowdoctorError(`${opts.output} already exists; not overwriting it.`, {
      hint: 'Pass --force to replace it, or --output <file> to write elsewhere.',
    });
  }
  // init describes the database as it is: an existing config lends its schemas and soft-delete
  // settings, never its rules.
  const { text, rules, suggestions } = await withReadOnlySnapshot(
    opts,
    (_tx, snap, conn) =>
      Promise.resolve({
        text: renderConfig(
          snap.rules.map((r) => reviewed(snap.catalog, r)),
          snap.catalog.schemas,
          conn.target.display,
          snap.catalog.assumptions,
        ),
        rules: snap.rules.filter((r) => !isInferred(r)).length,
        suggestions: snap.rules.filter(isInferred).length,
      }),
    { declared: false },
  );
  await writeFile(opts.output, text);
  const ruleCount = `${rules} rule${rules === 1 ? '' : 's'}`;
  const suggestionCount = `${suggestions} commented suggestion${suggestions === 1 ? '' : 's'}`;
  out(
    `Wrote ${opts.output}: ${ruleCount} and ${suggestionCount} from the catalog. ` +
      'Review each "repair:" action, then run rowdoctor scan.\n',
  );
  return 0;
}

export function renderConfig(
  rules: Rule[],
  schemas: string[],
  database: string,
  assumptions: Assumption[] = [],
): string {
  const lines = [
    `# rowdoctor.yml — written by \`rowdoctor init\` from ${database}.`,
    '# Rules here are "declared": scan reports them as errors and `rowdoctor repair` may fix them',
    '# (dry run by default). Review every `repair:` action before `repair --apply`.',
    '# Names are exact catalog names; `where` is one SQL boolean expression over the table.',
    `schemas: ${toYaml(schemas).trim()}`,
    ...markerSection(assumptions),
  ];
  const declared = rules.filter((r) => !isInferred(r));
  const inferred = rules.filter((r) => isInferred(r) && !(r.check === 'orphaned-rows' && r.typed));
  const typed = rules.filter((r): r is OrphanRule => r.check === 'orphaned-rows' && r.typed !== undefined);
  lines.push(declared.length ? 'rules:' : 'rules: []');
  for (const rule of declared) {
    lines.push(indent(rule.origin ?? 'discovered', '  # '));
    lines.push(indent(toYaml([ruleToConfig(rule)]), '  '));
  }
  lines.push(
    '',
    '# Suggestions: references inferred from column names, with no foreign key. Uncomment one (under',
    '# rules:) to make its orphans errors that repair can fix — or better, add the foreign key.',
  );
  if (!inferred.length) lines.push('#   (none found)');
  for (const rule of inferred) {
    lines.push(`  # ${rule.origin ?? 'inferred'}`);
    lines.push(indent(toYaml([{ ...ruleToConfig(rule), repair: 'report' }]), '  # '));
  }
  lines.push(...typedSection(typed));
  for (const a of assumptions.filter((x) => x.kind === 'not-a-reference'))
    lines.push(`# not a reference: ${a.table}.${a.column} — ${a.evidence}`);
  lines.push(
    '',
    '# Other rules you may want (see README "Config file"):',
    '#  - check: duplicate-rows            # a key that should be unique but is not enforced',
    '#    table: public.users',
    '#    key: [{ expr: "lower(email)" }]',
    '#    keep: { orderBy: ["created_at asc"] }',
    '#    repair: merge',
    '',
  );
  return lines.join('\n');
}

/**
 * The soft-delete markers scan would assume from column names, written as declared ones for review,
 * each with what the data showed: a rejected one as `false`.
 */
function markerSection(assumptions: Assumption[]): string[] {
  const markers = assumptions.filter((a) => a.kind === 'soft-delete-marker' || a.kind === 'not-a-soft-delete-marker');
  if (!markers.length) return [];
  return [
    '# Soft-delete markers, as the column names and the data suggest. Declared here, each is taken as written:',
    '# correct any that is wrong (false: the table does not soft-delete).',
    'softDelete:',
    '  tables:',
    ...markers.map((a) => {
      const value = a.kind === 'soft-delete-marker' ? a.column : false;
      const entry = `${toYaml(a.table).trim()}: ${toYaml(value).trim()}`;
      return `    ${entry}  # ${a.kind === 'soft-delete-marker' ? '' : `not ${a.column}: `}${a.evidence}`;
    }),
  ];
}

/**
 * The repair init proposes for a rule. Children of soft-deleted parents are reported, not deleted:
 * `archived_at` on a customer rarely means its orders should go. The comment gives the choices.
 */
function reviewed(catalog: Catalog, rule: Rule): Rule {
  if (rule.check !== 'orphaned-rows' || !findsOnlyDeletedParents(catalog, rule)) return rule;
  const choices =
    'children of soft-deleted parents: reported only — choose repair: soft-delete or delete, ' +
    'or deletedParent: warning if they are kept on purpose';
  return { ...rule, repair: 'report', origin: `${rule.origin ?? 'discovered'}\n${choices}` };
}

/**
 * Polymorphic and generic references found in the data, as the `references:` entries that declare
 * them (one per type and id column, every type that names a table), commented for review.
 */
function typedSection(rules: OrphanRule[]): string[] {
  if (!rules.length) return [];
  const byPair = new Map<string, OrphanRule[]>();
  for (const r of rules) {
    const id = `${r.table.id}|${r.typed!.typeColumn}|${r.columns[0]}`;
    byPair.set(id, [...(byPair.get(id) ?? []), r]);
  }
  const entries = [...byPair.values()].map((rs) => {
    const [first] = rs as [OrphanRule];
    const t = first.typed!;
    const columns =
      t.kind === 'polymorphic'
        ? { polymorphic: { type: t.typeColumn, id: first.columns[0]! } }
        : { generic: { contentType: t.typeColumn, id: first.columns[0]! } };
    const types = Object.fromEntries(rs.map((r) => [r.typed!.type, dottedName(r.parent.schema, r.parent.name)]));
    return { table: dottedName(first.table.schema, first.table.name), ...columns, types };
  });
  return [
    '',
    '# Polymorphic and generic references the data supports (no foreign key can express them). Uncomment',
    '# to declare them: their orphans become errors, and every repair follows only the listed types.',
    indent(toYaml({ references: entries }), '# '),
  ];
}

function isInferred(rule: Rule): boolean {
  return rule.check === 'orphaned-rows' && rule.inferred;
}

function indent(text: string, prefix: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => prefix + l)
    .join('\n');
}
