import { relative } from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints plain closing lines after vitest's own report: one "FAILED <file> > <test>: <first error line>" per failure,
 * then "tests: N passed, N failed, N skipped". CI recognises that line in any language and keeps only the end of
 * the output, where vitest's own account of a failure has long scrolled away.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const failures: string[] = [];
    for (const m of modules) {
      const file = relative(process.cwd(), m.moduleId);
      const tests = [...m.children.allTests()];
      for (const t of tests) {
        const result = t.result();
        if (result.state === 'passed') passed++;
        else if (result.state === 'failed') {
          failed++;
          failures.push(`FAILED ${file} > ${t.fullName}: ${firstLine(result.errors?.[0]?.message)}`);
        } else skipped++;
      }
      // A file that failed outside its tests (a beforeAll, an import) skipped them: that is a failure.
      if (m.state() === 'failed' && !tests.some((t) => t.result().state === 'failed')) {
        failed++;
        failures.push(`FAILED ${file}: ${firstLine(m.errors()[0]?.message)}`);
      }
    }
    const list = failures.map((f) => `${f}\n`).join('');
    process.stdout.write(`\n${list}tests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}

function firstLine(message: string | undefined): string {
  return (message ?? 'no error message').split('\n')[0]!.slice(0, 300);
}
