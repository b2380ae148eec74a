import { spawn } from 'node:child_process';
import pg from 'pg';

/**
 * The server a benchmark runs on: `databaseUrl` (a superuser URL) or an embedded PostgreSQL, with
 * an admin connection, URLs of its databases, and `recreate(db, template?)` for fresh copies.
 */
export async function benchServer(databaseUrl) {
  let server = null;
  let adminUrl = databaseUrl;
  if (!adminUrl) {
    const { startEmbeddedPostgres } = await import('../dist/embedded.js');
    server = await startEmbeddedPostgres();
    adminUrl = server.adminUrl;
  }
  const urlFor = (db) => {
    const u = new URL(adminUrl);
    u.pathname = `/${db}`;
    return u.toString();
  };
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  const version = (await admin.query('show server_version')).rows[0].server_version;
  const recreate = async (db, template) => {
    await admin.query(`drop database if exists ${db} with (force)`);
    await admin.query(`create database ${db}${template ? ` template ${template}` : ''}`);
  };
  const stop = async () => {
    await admin.end();
    await server?.stop();
  };
  return { adminUrl, urlFor, admin, version, recreate, stop, embedded: server !== null };
}

/** rowdoctor as a whole process, JSON output; its own report of peak RSS and longest statement. */
export function rowdoctorJson(url, argv) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(
      process.execPath,
      [
        'bin/rowdoctor.js',
        ...argv,
        '--database-url',
        url,
        '--format',
        'json',
        '--config',
        '/dev/null',
        '--no-discover',
      ],
      {
        env: { ...process.env, ROWDOCTOR_REPORT_STATS: '1', NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      const ms = performance.now() - t;
      if (code === 2) return reject(new Error(`rowdoctor ${argv.join(' ')} failed:\n${err}`));
      const stats = JSON.parse(/rowdoctor-stats (.*)/.exec(err)?.[1] ?? '{}');
      resolve({ ms, doc: JSON.parse(out), stats });
    });
  });
}
