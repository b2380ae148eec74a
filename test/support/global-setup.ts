import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../src/embedded.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL on the server every test file shares; files create their own databases. */
    pgAdminUrl: string;
  }
}

let server: EmbeddedServer | null = null;

/** One PostgreSQL per test run: TEST_DATABASE_URL if given, else an embedded one. */
export async function setup(project: TestProject): Promise<void> {
  const given = process.env.TEST_DATABASE_URL;
  if (given) {
    project.provide('pgAdminUrl', given);
    return;
  }
  server = await startEmbeddedPostgres();
  project.provide('pgAdminUrl', server.adminUrl);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
