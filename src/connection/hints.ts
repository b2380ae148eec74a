import type { ConnectionTarget } from './resolve.js';

const UNVERIFIED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
]);

/** What to do about a connection that failed for a reason of TLS or of the password file; else undefined. */
export function connectionHint(e: unknown, target: ConnectionTarget): string | undefined {
  const err = e as { code?: string; message?: string } | null;
  const mode = target.sslmode;
  if (err?.code && UNVERIFIED.has(err.code))
    return (
      `The server's certificate could not be verified (sslmode=${mode}): give the CA that signed it with ` +
      'sslrootcert=<file> (PGSSLROOTCERT), or use sslmode=require to encrypt without verifying the server.'
    );
  if (err?.code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return (
      "The server's certificate is valid but not for this host name, which sslmode=verify-full checks: connect " +
      'with a name the certificate carries, or use sslmode=verify-ca to check the CA only.'
    );
  if (err?.message?.includes('does not support SSL'))
    return (
      `The server does not accept TLS (its ssl setting is off), and sslmode=${mode} requires it: ` +
      'turn ssl on in the server, or use sslmode=prefer.'
    );
  if (err?.code === '28P01' && target.passwordFrom)
    return `Check the user name, and the password, which came from the password file ${target.passwordFrom}.`;
  return undefined;
}
