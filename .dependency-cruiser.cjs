// `npm run lint` runs dependency-cruiser over src/ to refuse any import circle between files (docs/architecture.md).
// Type-only imports count: `tsPreCompilationDeps` reads the TypeScript before compilation erases them, so
// context.ts ↔ types.ts (each needing only the other's types) is a circle too. ESLint's import-x/no-cycle skips
// type imports, which is why this check is not an ESLint rule. The room boundaries are in eslint.config.js.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'Files import each other. Move what both need into a third file, or down a layer (docs/architecture.md).',
      from: { path: '^src/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
