import { existsSync, readFileSync, statSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { RowdoctorError } from '../errors.js';
import { gotInstead } from '../suggest.js';
import { SSL_MODES, type SslMode } from './keywords.js';
import type { Params } from './conninfo.js';

/** What node-postgres gets for TLS: false (plain), or the options for tls.connect. */
export type TlsOptions = false | ConnectionOptions;

export function sslModeOf(params: Params): SslMode {
  const mode = params.sslmode ?? (params.requiressl === '1' ? 'require' : legacySsl(params.ssl));
  if (mode === undefined) return 'prefer'; // libpq's default
  if (!(SSL_MODES as readonly string[]).includes(mode))
    throw new RowdoctorError(`sslmode: ${gotInstead(mode, SSL_MODES)}`, {
      hint: 'require encrypts without verifying the server; verify-ca and verify-full also check its certificate.',
    });
  return mode as SslMode;
}

/** ?ssl=true in a URL meant node-postgres' verified TLS; ?ssl=false no TLS. */
function legacySsl(ssl: string | undefined): SslMode | undefined {
  if (ssl === undefined) return undefined;
  return ssl === 'true' || ssl === '1' ? 'verify-full' : ssl === 'false' || ssl === '0' ? 'disable' : undefined;
}

/**
 * The TLS options of an encrypted connection under libpq's rules: verify-full checks the chain and
 * the host name, verify-ca the chain only; require (and prefer, allow) verify nothing — unless a
 * root certificate file exists, when they check the chain as verify-ca does. The files default to
 * ~/.postgresql/{root.crt,postgresql.crt,postgresql.key}; sslrootcert=system means the system's CAs.
 */
export function tlsOptions(mode: SslMode, params: Params, home: string, serverName: string | null): ConnectionOptions {
  const dir = join(home, '.postgresql');
  const rootFile = params.sslrootcert ?? join(dir, 'root.crt');
  const system = rootFile === 'system';
  const verify = mode === 'verify-ca' || mode === 'verify-full';
  if (system && !verify && params.sslrootcert !== undefined)
    throw new RowdoctorError(`sslrootcert=system needs sslmode=verify-full (got sslmode=${mode}).`, {
      hint: 'libpq refuses weaker modes with the system CAs: use sslmode=verify-full.',
    });
  const hasRoot = !system && existsSync(rootFile);
  if (verify && !system && !hasRoot)
    throw new RowdoctorError(`sslmode=${mode} needs a root certificate, and "${rootFile}" does not exist.`, {
      hint:
        'Give the CA that signed the server certificate with sslrootcert=<file> (PGSSLROOTCERT), ' +
        'use sslrootcert=system to trust the system CAs, or use sslmode=require to encrypt without verifying.',
    });
  const options: ConnectionOptions = {};
  if (hasRoot) options.ca = readFileSync(rootFile, 'utf8');
  if (!verify && !hasRoot) options.rejectUnauthorized = false;
  // The chain is checked; the name is not (verify-ca, and require/prefer with a root certificate).
  if (mode !== 'verify-full') options.checkServerIdentity = () => undefined;
  if (serverName) {
    options.host = serverName; // the name a certificate must carry when the address is a hostaddr
    options.servername = serverName;
  }
  const cert = params.sslcert ?? join(dir, 'postgresql.crt');
  if (existsSync(cert)) {
    const keyFile = params.sslkey ?? join(dir, 'postgresql.key');
    options.cert = readFileSync(cert, 'utf8');
    options.key = readKey(keyFile);
    if (params.sslpassword !== undefined) options.passphrase = params.sslpassword;
  } else if (params.sslcert !== undefined) {
    throw new RowdoctorError(`The client certificate file "${cert}" (sslcert) does not exist.`);
  }
  const version = (v: string | undefined) => (v ? (`TLSv${v.replace(/^TLSv/i, '')}` as 'TLSv1.2') : undefined);
  if (params.ssl_min_protocol_version) options.minVersion = version(params.ssl_min_protocol_version);
  if (params.ssl_max_protocol_version) options.maxVersion = version(params.ssl_max_protocol_version);
  return options;
}

/** libpq refuses a private key others can read: so does rowdoctor, with libpq's words. */
function readKey(file: string): string {
  if (!existsSync(file))
    throw new RowdoctorError(`The private key file "${file}" (sslkey) does not exist.`, {
      hint: 'Give the key of the client certificate with sslkey=<file> (PGSSLKEY).',
    });
  const st = statSync(file);
  const tooOpen = st.uid === 0 ? st.mode & 0o037 : st.mode & 0o077;
  if (process.platform !== 'win32' && tooOpen)
    throw new RowdoctorError(`The private key file "${file}" has group or world access.`, {
      hint: 'Make it u=rw (0600) or less if owned by you, or u=rw,g=r (0640) or less if owned by root (chmod 600).',
    });
  return readFileSync(file, 'utf8');
}

/**
 * Ask the server whether it speaks TLS, as libpq does for sslmode=prefer: the 8-byte SSLRequest,
 * answered with one byte, 'S' or 'N', before any authentication. Null when the server cannot be
 * reached: the real connection attempt then reports that properly.
 */
export function serverOffersTls(host: string, port: number, timeoutMs: number): Promise<boolean | null> {
  return new Promise((resolve) => {
    const socket = host.startsWith('/') ? null : tcpConnect({ host, port });
    if (!socket) return resolve(false); // libpq never uses TLS over a Unix-domain socket
    const done = (answer: boolean | null) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs || 10_000, () => done(null));
    socket.on('error', () => done(null));
    socket.on('connect', () => {
      const request = Buffer.alloc(8);
      request.writeInt32BE(8, 0);
      request.writeInt32BE(80877103, 4);
      socket.write(request);
    });
    socket.once('data', (d: Buffer) => done(d[0] === 0x53));
  });
}
