import type { Catalog, Column, ContentType, Table } from '../catalog/types.js';

/**
 * How Rails, Laravel and Django name the table a type value stands for (contract: "References the
 * catalog does not hold"). Names only: whether the data agrees is weighed in typed-evidence.ts.
 */

/** Rails' `underscore`: `BlogPost` → `blog_post`, `HTMLParser` → `html_parser`. */
export function underscore(word: string): string {
  return word
    .replace(/([A-Z\d]+)([A-Z][a-z])/g, '$1_$2')
    .replace(/([a-z\d])([A-Z])/g, '$1_$2')
    .toLowerCase();
}

const IRREGULAR: Record<string, string> = { person: 'people', man: 'men', woman: 'women', child: 'children' };

/** English plural of the last word of a snake_case name, as Rails' inflector makes it for common words. */
export function pluralize(name: string): string {
  const at = name.lastIndexOf('_') + 1;
  const [head, word] = [name.slice(0, at), name.slice(at)];
  if (IRREGULAR[word]) return head + IRREGULAR[word];
  if (/[^aeiou]y$/.test(word)) return head + word.slice(0, -1) + 'ies';
  if (/(s|x|z|ch|sh)$/.test(word)) return head + word + 'es';
  return head + word + 's';
}

/**
 * The table names a polymorphic type value stands for, most specific first: a Rails class name by
 * Rails' table naming (`Admin::User` → `admin_users`), a Laravel class by its last segment
 * (`App\Models\User` → `users`), a morph-map alias as a table named in the singular or the plural
 * (`user` → `user`, `users`). Anything else names nothing.
 */
export function tableNamesFor(type: string): string[] {
  if (/^[A-Z][A-Za-z0-9]*(::[A-Z][A-Za-z0-9]*)*$/.test(type))
    return [pluralize(type.split('::').map(underscore).join('_'))];
  if (/^\\?([A-Za-z_][A-Za-z0-9_]*\\)+[A-Z][A-Za-z0-9]*$/.test(type))
    return [pluralize(underscore(type.slice(type.lastIndexOf('\\') + 1)))];
  if (/^[a-z][a-z0-9_]*$/.test(type)) return [type, pluralize(type)];
  return [];
}

/** A Django content type's table: `<app_label>_<model>`. */
export function contentTypeTable(ct: ContentType): string {
  return `${ct.appLabel}_${ct.model}`;
}

/** A table of `schema` named `name` (exact, else the only one that matches ignoring case). */
export function tableNamed(catalog: Catalog, schema: string, name: string): Table | undefined {
  const inSchema = catalog.tables.filter((t) => t.schema === schema);
  const exact = inSchema.find((t) => t.name === name);
  if (exact) return exact;
  const folded = inSchema.filter((t) => t.name.toLowerCase() === name.toLowerCase());
  return folded.length === 1 ? folded[0] : undefined;
}

/** A type column and the id column beside it, in one table: a candidate reference. */
export interface TypedPair {
  kind: 'polymorphic' | 'generic';
  table: Table;
  typeColumn: string;
  idColumn: string;
  /** generic: the django_content_type table the type column's foreign key points at. */
  contentTypes?: Table;
}

const STRING = new Set(['text', 'varchar', 'bpchar']);
const ID_CATEGORIES = new Set(['N', 'S', 'U']);

/**
 * Candidate pairs of a table: `X_type` (text) beside `X_id` (Rails, Laravel morphs); and a foreign
 * key `Xcontent_type_id` into django_content_type beside `Xobject_id` or `Xobject_pk` (Django).
 */
export function typedPairs(catalog: Catalog, table: Table): TypedPair[] {
  const pairs: TypedPair[] = [];
  const named = (name: string): Column | undefined => table.columns.find((c) => c.name === name);
  for (const c of table.columns) {
    const poly = /^(.+)_type$/.exec(c.name);
    const id = poly ? named(`${poly[1]}_id`) : undefined;
    if (poly && id && STRING.has(c.baseType) && ID_CATEGORIES.has(id.category))
      pairs.push({ kind: 'polymorphic', table, typeColumn: c.name, idColumn: id.name });
    const generic = /^(.*)content_type_id$/.exec(c.name);
    if (!generic) continue;
    const fk = catalog.foreignKeys.find(
      (f) => f.table === table.id && f.columns.length === 1 && f.columns[0] === c.name,
    );
    const target = fk && catalog.tables.find((t) => t.id === fk.references);
    if (!target || target.name !== 'django_content_type') continue;
    const idCol = named(`${generic[1]}object_id`) ?? named(`${generic[1]}object_pk`);
    if (idCol && ID_CATEGORIES.has(idCol.category))
      pairs.push({ kind: 'generic', table, typeColumn: c.name, idColumn: idCol.name, contentTypes: target });
  }
  return pairs;
}
