import pg from 'pg';
import { parse, isSafeNumber } from 'lossless-json';

/**
 * Samples, keys and ids reach Node as `json` built by the server (json_agg, json_build_array).
 * JSON.parse turns every number into a double, so bigint ids above 2^53 and long numerics came out
 * rounded (…789 and …790 both printed as …800). Here a number a double cannot hold exactly stays
 * the server's text, as a string — the contract's "ids and key values are exact".
 */
export function parseExactJson(text: string): unknown {
  return parse(text, null, (digits: string) => (isSafeNumber(digits) ? Number(digits) : digits));
}

const JSON_OID = 114;
const JSONB_OID = 3802;

/** node-postgres type parsers: json and jsonb exactly, everything else as pg's defaults. */
export const exactTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): unknown {
    if ((oid === JSON_OID || oid === JSONB_OID) && format !== 'binary') return parseExactJson;
    return pg.types.getTypeParser(oid, format);
  },
};
