import { RowdoctorError } from '../errors.js';
import { gotInstead, nearest } from '../suggest.js';
import { KEYWORDS, LEGACY } from './keywords.js';

/** libpq keyword → value, as a connection string gave them. */
export type Params = Record<string, string>;

/**
 * Parse a connection string the two ways libpq accepts: a URI (postgresql://user:pw@host:port/db?k=v)
 * or keyword/value pairs (host=db.internal port=5432 dbname=app sslmode=require, or service=prod).
 * An unknown keyword near a known one is a typo and is refused, with the nearest suggested (libpq
 * refuses every unknown keyword); one like nothing libpq knows (`schema=`, `connection_limit=`, which
 * ORMs put in a shared DATABASE_URL) is kept, and said to be ignored (see `unknownOptions`).
 */
export function parseConnectionString(text: string, what: string): Params {
  const params = /^postgres(ql)?:\/\//i.test(text)
    ? parseUri(text, what)
    : text.includes('=')
      ? parseKeywordValue(text, what)
      : invalid(what, text, 'it is neither a postgres:// URL nor keyword=value pairs');
  for (const key of unknownOptions(params)) {
    if (nearest(key, KEYWORDS))
      throw new RowdoctorError(`${what}: unknown connection option "${key}": ${gotInstead(key, KEYWORDS)}`, {
        hint: 'The options are libpq\'s: see "Connecting" in README.md.',
      });
  }
  return params;
}

/** Keys that are neither libpq's nor node-postgres' old spellings. */
export function unknownOptions(params: Params): string[] {
  return Object.keys(params).filter((key) => !KEYWORDS.includes(key) && !LEGACY.has(key));
}

function invalid(what: string, text: string, why: string): never {
  throw new RowdoctorError(`${what} is not a valid connection string (${why}): ${redactValue(text)}`, {
    hint:
      'Use postgres://user:password@host:5432/dbname (percent-encode special characters) or ' +
      "keyword=value pairs such as 'host=db.internal dbname=app sslmode=require' or 'service=prod'.",
  });
}

/** What an error may show of a connection string: everything but the password. */
export function redactValue(text: string): string {
  return text
    .replace(/(postgres(?:ql)?:\/\/[^:/@\s]*:)([^@\s]*)@/gi, '$1****@')
    .replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)/gi, '$1****');
}

function parseUri(text: string, what: string): Params {
  const params: Params = {};
  const query = text.indexOf('?');
  const base = query === -1 ? text : text.slice(0, query);
  // Split by hand: URL() would read '+' in a query as a space, which libpq does not.
  const m = /^postgres(?:ql)?:\/\/(?:([^@/]*)@)?([^/]*)(?:\/(.*))?$/i.exec(base);
  if (!m) invalid(what, text, 'cannot read it as postgres://user:password@host:port/dbname');
  const [, userinfo, hostport = '', dbname] = m;
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return invalid(what, text, `"${s}" is not correctly percent-encoded`);
    }
  };
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    const user = decode(colon === -1 ? userinfo : userinfo.slice(0, colon));
    if (user) params.user = user;
    if (colon !== -1) params.password = decode(userinfo.slice(colon + 1));
  }
  if (hostport) {
    const hp = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(hostport)!;
    const host = decode(hp[1]!.replace(/^\[(.*)\]$/, '$1'));
    if (host) params.host = host;
    if (hp[2]) params.port = hp[2];
  }
  if (dbname) params.dbname = decode(dbname);
  if (query !== -1) {
    for (const pair of text.slice(query + 1).split('&')) {
      if (!pair) continue;
      const eq = pair.indexOf('=');
      if (eq === -1) invalid(what, text, `"${pair}" has no value`);
      params[decode(pair.slice(0, eq))] = decode(pair.slice(eq + 1));
    }
  }
  return params;
}

/** key = value pairs; a value in single quotes may hold spaces; \ escapes the next character. */
function parseKeywordValue(text: string, what: string): Params {
  const params: Params = {};
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  for (skipSpace(); i < text.length; skipSpace()) {
    const keyStart = i;
    while (i < text.length && text[i] !== '=' && !/\s/.test(text[i]!)) i++;
    const key = text.slice(keyStart, i);
    skipSpace();
    if (text[i] !== '=') invalid(what, text, `missing "=" after "${key}"`);
    i++;
    skipSpace();
    let value = '';
    if (text[i] === "'") {
      for (i++; i < text.length && text[i] !== "'"; i++) value += text[i] === '\\' ? (text[++i] ?? '') : text[i];
      if (text[i] !== "'") invalid(what, text, 'unterminated quoted string');
      i++;
    } else {
      for (; i < text.length && !/\s/.test(text[i]!); i++) value += text[i] === '\\' ? (text[++i] ?? '') : text[i];
    }
    params[key] = value;
  }
  return params;
}
