import type { Verdict } from '../verify/types.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** JUnit XML for CI: one testcase per constraint; a failure carries status, violations and the DDL. */
export function renderVerifyJunit(verdicts: Verdict[], database: string): string {
  const failures = verdicts.filter((v) => v.status !== 'ok').length;
  const cases = verdicts.map((v) => {
    const references = v.references ? ` -> ${v.references}` : '';
    const where = v.where ? ` WHERE ${v.where}` : '';
    const name = `${v.kind} ${v.table}(${v.columns.join(', ')})${references}${where}`;
    const classname = `rowdoctor.verify-constraints.${v.table}`;
    const open = `    <testcase classname="${esc(classname)}" name="${esc(name)}" time="0">`;
    if (v.status === 'ok' || (v.status === 'unenforceable' && !v.violations)) return `${open}</testcase>`;
    const body = [
      `status: ${v.status}`,
      `detail: ${v.detail}`,
      `violations: ${v.violations ?? 'n/a'}`,
      'ddl:',
      ...v.ddl.map((d) => `  ${d};`),
    ].join('\n');
    const failure = `<failure message="${esc(`${v.status}: ${v.detail}`)}" type="${v.status}">${esc(body)}</failure>`;
    return `${open}\n      ${failure}\n    </testcase>`;
  });
  const counts = `tests="${verdicts.length}" failures="${failures}" errors="0"`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="rowdoctor" ${counts}>`,
    `  <testsuite name="${esc(`verify-constraints ${database}`)}" ${counts} skipped="0">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
