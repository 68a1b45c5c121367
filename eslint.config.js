// neostandard, as the Fastify org lints: `npm run lint` (part of `npm test`), `npm run lint:fix`.
import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    // the built package, the bench's and the tutorial's own installs, and tap's output are not our source
    ignores: [
      'dist/**',
      'coverage/**',
      '.tap/**',
      'bench/node_modules/**',
      'examples/*/node_modules/**'
    ]
  }),
  {
    rules: {
      // `void promise;` marks a promise deliberately not awaited (typescript-eslint's convention for
      // fire-and-forget); as an expression `void` stays an error
      'no-void': ['error', { allowAsStatement: true }]
    }
  },
  {
    files: ['**/*.ts'],
    rules: {
      // TypeBox's idiom declares a schema and its type under one name (`const Frame = Type.Object(…)`,
      // `type Frame = Static<typeof Frame>`); tsc already refuses real redeclarations, which is why
      // typescript-eslint advises against this rule in TypeScript projects
      '@typescript-eslint/no-redeclare': 'off'
    }
  }
]
