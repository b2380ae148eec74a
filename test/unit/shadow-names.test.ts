import { describe, expect, it } from 'vitest';
import { inRealNames, withShadows, type Shadows } from '../../src/sql/shadow.js';

// Server messages from a dry run as PostgreSQL words them against the pg_temp copies.
const shadows: Shadows = {
  tables: new Map([[16400, 'rd_shadow_16400']]),
  compiled: new Map(),
  names: new Map([
    ['rd_shadow_16400', 'app.note'],
    ['rd_shadow_c3', 'note_org_fk'],
  ]),
  tableOf: new Map(),
  uncopied: [],
};

describe('a dry-run error', () => {
  it('names the tables and constraints the copies stand for, however the server qualifies them', async () => {
    const said = await withShadows(shadows, () =>
      Promise.resolve(
        inRealNames(
          'insert or update on table "rd_shadow_16400" violates foreign key constraint "rd_shadow_c3"; ' +
            'relation pg_temp_3.rd_shadow_16400 is busy; see "pg_temp"."rd_shadow_16400"',
        ),
      ),
    );
    expect(said).toBe(
      'insert or update on table "app.note" violates foreign key constraint "note_org_fk"; ' +
        'relation app.note is busy; see "app.note"',
    );
  });

  it('is left as it is outside a dry run, and where a name is no copy of rowdoctor', async () => {
    expect(inRealNames('table "rd_shadow_16400"')).toBe('table "rd_shadow_16400"');
    const unknown = () => Promise.resolve(inRealNames('table "rd_shadow_99"'));
    expect(await withShadows(shadows, unknown)).toBe('table "rd_shadow_99"');
  });
});
