import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunAs } from '../../src/embedded-binaries.js';

export interface Certificates {
  /** The CA that signed the server's certificate. */
  ca: string;
  /** Another CA, which signed nothing the server has. */
  otherCa: string;
  serverCert: string;
  serverKey: string;
}

const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: 'pipe' });

/**
 * A CA and a server certificate it signed for the name `localhost` only (not 127.0.0.1: so
 * verify-full to the address fails on the name while verify-ca passes), plus an unrelated CA.
 * The key belongs to the server's user, mode 0600, as PostgreSQL insists.
 */
export function makeCertificates(dir: string, runAs: RunAs | null): Certificates {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca'])
    openssl(
      [
        'req',
        '-x509',
        ...ec,
        '-days',
        '2',
        '-subj',
        `/CN=rowdoctor test ${ca}`,
        '-keyout',
        `${ca}.key`,
        '-out',
        `${ca}.crt`,
      ],
      dir,
    );
  openssl(['req', ...ec, '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr'], dir);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost\n');
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      'server.ext',
      '-out',
      'server.crt',
    ],
    dir,
  );
  const serverKey = join(dir, 'server.key');
  chmodSync(serverKey, 0o600);
  if (runAs) chownSync(serverKey, runAs.uid, runAs.gid);
  for (const f of ['ca.crt', 'other-ca.crt', 'server.crt']) chmodSync(join(dir, f), 0o644);
  return {
    ca: join(dir, 'ca.crt'),
    otherCa: join(dir, 'other-ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey,
  };
}
