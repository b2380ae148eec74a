import { sql } from 'kysely';
import type { SoftDeleteMarker } from '../catalog/types.js';
import type { Sql } from '../sql/build.js';

/** The value that marks a row deleted now, and the one that marks it alive. */
export function deletedValue(marker: SoftDeleteMarker): Sql {
  return marker.kind === 'timestamp' ? sql`now()` : sql`true`;
}

export function aliveValue(marker: SoftDeleteMarker): Sql {
  return marker.kind === 'timestamp' ? sql`null` : sql`false`;
}
