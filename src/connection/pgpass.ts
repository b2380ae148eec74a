import { readFileSync, statSync } from 'node:fs';

export interface PassKey {
  host: string;
  port: string;
  dbname: string;
  user: string;
}

/**
 * The password for `key` from a password file (~/.pgpass format: host:port:database:user:password,
 * `*` matching anything, `\` escaping `:` and `\`), the first matching line winning — as libpq.
 * A file others can read is ignored with a warning, as libpq ignores it. Written here: pg's own
 * pgpass lookup is deprecated and cannot take the passfile option or the host resolved from a service.
 */
export function passwordFromFile(file: string, key: PassKey, warn: (text: string) => void): string | undefined {
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) return undefined;
    if (process.platform !== 'win32' && st.mode & 0o077) {
      warn(`password file "${file}" has group or world access; permissions should be u=rw (0600) or less. Ignored.`);
      return undefined;
    }
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined; // no file: no password from it
  }
  // A Unix-domain socket matches the "localhost" entries.
  const host = !key.host || key.host.startsWith('/') ? 'localhost' : key.host;
  const wanted = [host, key.port, key.dbname, key.user];
  for (const line of text.split(/\r?\n/)) {
    if (!line || line.startsWith('#')) continue;
    const fields = splitFields(line);
    if (fields.length < 5) continue;
    if (wanted.every((w, i) => fields[i] === '*' || fields[i] === w)) return fields.slice(4).join(':');
  }
  return undefined;
}

function splitFields(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) field += line[++i]!;
    else if (c === ':') {
      fields.push(field);
      field = '';
    } else field += c;
  }
  return [...fields, field];
}
