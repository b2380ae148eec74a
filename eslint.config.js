// typescript-eslint's type-checked recommended rules on the TypeScript (src/, test/), plain
// recommended rules on the JavaScript (bench/, scripts/, bin/). Rules turned off say why.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const CORE_NEVER_IMPORTS_COMMANDS = {
  regex: '^\\.\\./(commands/|cli\\.js$)',
  message: 'The core never imports commands or the CLI.',
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { project: ['./tsconfig.test.json'] } },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Tests read the CLI's JSON documents (JSON.parse gives `any`); each assertion checks the shape it reads.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      // Issue #9: no source line over 120 characters. Prettier breaks code at 120 but not strings, template
      // literals or comments, so those are measured too: a string that truly cannot be split gets a
      // disable comment for max-len on the line before it (at most 5 in src/). The rule is deprecated in
      // ESLint core (formatting rules moved to @stylistic) but available until ESLint 11.
      'max-len': ['error', { code: 120, ignoreUrls: true, ignoreRegExpLiterals: true }],
    },
  },
  {
    // docs/architecture.md: renderers never touch the database; commands build no SQL.
    files: ['src/report/**/*.ts', 'src/commands/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: '^kysely$', message: 'Renderers and commands build no SQL: put the statement in the core.' },
          ],
        },
      ],
    },
  },
  {
    files: ['src/report/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: '^kysely$', message: 'Renderers build no SQL.' },
            { regex: '^\\.\\./db\\.js$', allowTypeImports: true, message: 'Renderers never touch the database.' },
          ],
        },
      ],
    },
  },
  {
    // The core never reaches up into the commands or the CLI.
    files: [
      'src/sql/**/*.ts',
      'src/catalog/**/*.ts',
      'src/rules/**/*.ts',
      'src/checks/**/*.ts',
      'src/repair/**/*.ts',
      'src/verify/**/*.ts',
      'src/plan/**/*.ts',
      'src/diagnosis/**/*.ts',
    ],
    rules: { 'no-restricted-imports': ['error', { patterns: [CORE_NEVER_IMPORTS_COMMANDS] }] },
  },
  {
    // The rooms of a run (docs/architecture.md): repair never reaches into undo …
    files: ['src/repair/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            CORE_NEVER_IMPORTS_COMMANDS,
            { regex: '^\\.\\./undo/', message: 'Repair never imports undo: move what both need to src/journal/.' },
          ],
        },
      ],
    },
  },
  {
    // … undo uses the journal and only these shared helpers of repair …
    files: ['src/undo/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            CORE_NEVER_IMPORTS_COMMANDS,
            {
              regex: '^\\.\\./repair/(?!(references|replica-lag|batch-transaction)\\.js$)',
              message:
                'Undo uses only repair/references, replica-lag and batch-transaction: ' +
                'put what a run leaves behind in src/journal/, a shared helper beside those.',
            },
          ],
        },
      ],
    },
  },
  {
    // … and the journal, which both read, imports neither.
    files: ['src/journal/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            CORE_NEVER_IMPORTS_COMMANDS,
            {
              regex: '^\\.\\./(repair|undo|checks|verify)/',
              message: 'The journal imports neither repair nor undo: it sits below both.',
            },
          ],
        },
      ],
    },
  },
  {
    // .dependency-cruiser.cjs is CommonJS.
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
  },
  {
    files: ['**/*.js'],
    languageOptions: { globals: globals.node },
  },
);
