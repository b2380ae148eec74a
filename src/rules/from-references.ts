import type { ReferenceConfig } from '../config.js';
import type { Catalog, ContentType, Table } from '../catalog/types.js';
import { resolveColumn, resolveTable } from '../catalog/names.js';
import { RowdoctorError } from '../errors.js';
import { collectErrors, defaultSchemas } from './defaults.js';
import type { OrphanRule } from './types.js';
import { typedParent } from './typed-evidence.js';
import type { TypedPair } from './typed-names.js';

/**
 * The config's `references:` (contract: "References the catalog does not hold"), one orphaned-rows
 * rule per type value. A polymorphic reference names its types (`types: { User: users }`): those
 * only, nothing guessed. A generic one maps each django_content_type row to `<app_label>_<model>`,
 * or as `types` says (keyed by `app_label.model` or the content type's id).
 */
export function rulesFromReferences(catalog: Catalog, refs: ReferenceConfig[], file: string): OrphanRule[] {
  return collectErrors(
    refs.map((r, i) => () => resolveReference(catalog, r, `${file} references[${i}]`)),
    `${file} names things the database does not have`,
  ).flat();
}

function resolveReference(catalog: Catalog, r: ReferenceConfig, path: string): OrphanRule[] {
  const table = resolveTable(catalog, r.table, defaultSchemas(catalog), `${path}.table`);
  const pair = declaredPair(catalog, table, r, path);
  const entries: [string, Table | undefined][] = r.types
    ? Object.entries(r.types).map(([type, t]) => [
        pair.kind === 'generic' ? contentTypeId(catalog, pair, type, `${path}.types`) : type,
        resolveTable(catalog, t, [table.schema, ...defaultSchemas(catalog)], `${path}.types.${type}`),
      ])
    : (catalog.contentTypes.get(pair.contentTypes!.id) ?? []).map((ct) => [ct.id, undefined]);
  return entries.flatMap(([type, explicit]): OrphanRule[] => {
    const target = typedParent(catalog, pair, type, explicit);
    if ('reason' in target) {
      // A content type whose table is not here (another database's app) is simply not a reference here.
      if (!explicit) return [];
      throw new RowdoctorError(`${path}.types: ${type} ${target.reason}.`);
    }
    return [
      {
        check: 'orphaned-rows',
        table,
        columns: [pair.idColumn],
        parent: target.parent,
        parentColumns: [target.parentColumn],
        where: null,
        includeSoftDeleted: false,
        inferred: false,
        foreignKey: null,
        repair: 'report',
        source: 'config',
        severity: 'error',
        origin: null,
        typed: { kind: pair.kind, typeColumn: pair.typeColumn, type, asText: target.asText },
      },
    ];
  });
}

function declaredPair(catalog: Catalog, table: Table, r: ReferenceConfig, path: string): TypedPair {
  if (r.polymorphic)
    return {
      kind: 'polymorphic',
      table,
      typeColumn: resolveColumn(table, r.polymorphic.type, `${path}.polymorphic.type`),
      idColumn: resolveColumn(table, r.polymorphic.id, `${path}.polymorphic.id`),
    };
  const g = r.generic!;
  const typeColumn = resolveColumn(table, g.contentType, `${path}.generic.contentType`);
  const fk = catalog.foreignKeys.find(
    (f) => f.table === table.id && f.columns.length === 1 && f.columns[0] === typeColumn,
  );
  const contentTypes =
    catalog.tables.find((t) => t.id === fk?.references && catalog.contentTypes.has(t.id)) ??
    catalog.tables.find((t) => t.schema === table.schema && catalog.contentTypes.has(t.id));
  if (!contentTypes)
    throw new RowdoctorError(
      `${path}.generic: no django_content_type table (id, app_label, model) for ${table.id}.${typeColumn} to name.`,
    );
  return {
    kind: 'generic',
    table,
    typeColumn,
    idColumn: resolveColumn(table, g.id, `${path}.generic.id`),
    contentTypes,
  };
}

/** `app_label.model` or a content type id → the id. */
function contentTypeId(catalog: Catalog, pair: TypedPair, key: string, path: string): string {
  const all: ContentType[] = catalog.contentTypes.get(pair.contentTypes!.id) ?? [];
  const found = all.find((ct) => ct.id === key || `${ct.appLabel}.${ct.model}` === key);
  if (!found)
    throw new RowdoctorError(`${path}: no content type "${key}" in ${pair.contentTypes!.id}.`, {
      hint: `Write it as app_label.model (${all
        .slice(0, 3)
        .map((ct) => `${ct.appLabel}.${ct.model}`)
        .join(', ')}) or as its id.`,
    });
  return found.id;
}
