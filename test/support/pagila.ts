import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** ../shared/data/pagila beside the repository (present on developer machines and in CI). */
export const PAGILA_DIR = fileURLToPath(new URL('../../../shared/data/pagila/', import.meta.url));
export const pagilaAvailable = existsSync(`${PAGILA_DIR}pagila-schema.sql`);

/**
 * Load pagila like psql would, but with node-postgres only (no psql on a fresh machine): the
 * schema as one script, the data file's COPY … FROM stdin blocks streamed through COPY.
 */
export async function loadPagila(url: string): Promise<void> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    await client.query(await readFile(`${PAGILA_DIR}pagila-schema.sql`, 'utf8'));
    const lines = (await readFile(`${PAGILA_DIR}pagila-data.sql`, 'utf8')).split('\n');
    let statements: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (!/^COPY .* FROM stdin;$/.test(line)) {
        statements.push(line);
        continue;
      }
      if (statements.length) await client.query(statements.join('\n'));
      statements = [];
      const end = lines.indexOf('\\.', i + 1);
      const data = lines.slice(i + 1, end).join('\n') + '\n';
      await new Promise<void>((resolve, reject) => {
        const stream = client.query(copyFrom(line.replace(/;$/, '')));
        stream.on('error', reject);
        stream.on('finish', resolve);
        stream.end(data);
      });
      i = end;
    }
    if (statements.join('').trim()) await client.query(statements.join('\n'));
    await client.query('analyze');
  } finally {
    await client.end();
  }
}
