/** cli-table3's internal helpers (no types of their own): see table-layout.ts. */
declare module 'cli-table3/src/utils.js' {
  const utils: { truncate: (this: void, text: string, width: number, ellipsis?: string) => string };
  export default utils;
}
