import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RowdoctorError } from '../errors.js';
import { gotInstead } from '../suggest.js';
import { KEYWORDS } from './keywords.js';
import type { Params } from './conninfo.js';

/**
 * The settings of service `name`, as libpq finds them: the per-user file (servicefile, else
 * PGSERVICEFILE, else ~/.pg_service.conf) first, then the system-wide pg_service.conf in
 * PGSYSCONFDIR (else /etc/postgresql-common, where Debian's libpq looks). A service defined in
 * neither is an error, as it is for psql.
 *
 * Written here rather than taken from npm: the format is a dozen lines of INI (`[name]`, then
 * `keyword=value`, `#` comments), and no maintained package reads it the way libpq does.
 */
export function serviceParams(name: string, servicefile: string | undefined, env: NodeJS.ProcessEnv, home: string) {
  const files = [
    servicefile ?? env.PGSERVICEFILE ?? join(home, '.pg_service.conf'),
    join(env.PGSYSCONFDIR ?? '/etc/postgresql-common', 'pg_service.conf'),
  ];
  for (const file of files) {
    if (!existsSync(file)) continue;
    const found = readService(file, name);
    if (found) return { file, params: found };
  }
  throw new RowdoctorError(`Connection service "${name}" is not defined in ${files.join(' or ')}.`, {
    hint:
      `Add a [${name}] section to one of them (or point PGSERVICEFILE at the file that has it), ` +
      'or fix the service name.',
  });
}

function readService(file: string, name: string): Params | null {
  const lines = readFileSync(file, 'utf8').split(/\r?\n/);
  let params: Params | null = null;
  for (const [n, raw] of lines.entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const section = /^\[(.*)\]$/.exec(line);
    if (section) {
      if (params) return params; // the next section begins: ours is complete
      if (section[1]!.trim() === name) params = {};
      continue;
    }
    if (!params) continue;
    const eq = line.indexOf('=');
    const where = `${file}:${n + 1}`;
    if (eq === -1) throw new RowdoctorError(`${where}: expected keyword=value in service "${name}", got "${line}".`);
    const key = line.slice(0, eq).trim();
    if (key === 'service')
      throw new RowdoctorError(`${where}: a service cannot name another service (libpq does not nest them).`);
    if (!KEYWORDS.includes(key))
      throw new RowdoctorError(`${where}: unknown connection option "${key}": ${gotInstead(key, KEYWORDS)}`);
    params[key] = line.slice(eq + 1).trim();
  }
  return params;
}
