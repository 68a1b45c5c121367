/**
 * One TypeScript file compiled to JavaScript the way tap's ts-node did it
 * (types stripped, no type-check: `npm run typecheck` does that), with an
 * inline source map naming the .ts file, so stack traces and coverage point at
 * lib/*.ts. Results are cached under .tap/ts/ by path and content.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))
export const cacheDir = join(root, '.tap', 'ts')
const require = createRequire(import.meta.url)
// part of every key: another compiler, or other options here, compile anew
const version = `1:${JSON.parse(readFileSync(require.resolve('typescript/package.json'), 'utf8')).version}`

/** @type {typeof import('typescript') | undefined} */
let ts
function compiler () {
  ts ??= require('typescript')
  return ts
}

/** The cache file for `path` holding `source`. */
function cacheFile (path, source) {
  return join(cacheDir, createHash('sha256').update(version).update('\0').update(path).update('\0').update(source).digest('hex') + '.js')
}

/** JavaScript for the TypeScript file at `path`, compiled now unless cached, and the cache file holding it. */
export function compiled (path) {
  const source = readFileSync(path, 'utf8')
  const file = cacheFile(path, source)
  try {
    return { code: readFileSync(file, 'utf8'), file }
  } catch {
    const code = compile(path, source)
    mkdirSync(cacheDir, { recursive: true })
    // written whole then renamed: a process reading it never sees half a file
    const temporary = `${file}.${process.pid}.tmp`
    writeFileSync(temporary, code)
    renameSync(temporary, file)
    return { code, file }
  }
}

function compile (path, source) {
  const ts = compiler()
  const { outputText, sourceMapText } = ts.transpileModule(source, {
    fileName: path,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ES2022,
      sourceMap: true,
      inlineSources: true,
      verbatimModuleSyntax: false
    }
  })
  const map = JSON.parse(sourceMapText ?? '{}')
  map.file = path
  map.sources = [path]
  delete map.sourceRoot
  const code = outputText.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n')
  return `${code}//# sourceMappingURL=data:application/json;charset=utf-8;base64,${Buffer.from(JSON.stringify(map)).toString('base64')}\n`
}
