/**
 * Keeps the code in docs/*.md identical to the files it comes from.
 *
 * In a Markdown file, a comment names the source of the fenced block after it:
 *
 *   <!-- snippet: examples/tutorial/04-realtime-route.js#list-route -->
 *   ```js
 *   …
 *   ```
 *
 * `path` alone is the whole file; `path#name` is the region `name` of it: the
 * lines between `// #region name` and `// #endregion name` (`<!-- #region name -->`
 * in HTML). A region may come in several pieces (say, an import at the top and
 * the code using it further down): they are joined with a blank line. Region
 * marker lines are never shown. A region that appears in several files must be
 * the same in each (the sections' files repeat the earlier sections' code).
 *
 *   node scripts/tutorial-snippets.js           check: list every difference, exit 1 if any
 *   node scripts/tutorial-snippets.js --write   rewrite the blocks from the files
 */
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const MARKER = /^<!-- snippet: ([^\s#]+)(?:#([\w-]+))? -->$/
const REGION = /^\s*(?:\/\/|<!--)\s*#(region|endregion)\s+([\w-]+)\s*(?:-->)?\s*$/

/**
 * The regions of a source file, by name, each as its text (pieces joined).
 * @param {string} text
 * @param {string} name for messages
 * @returns {Map<string, string>}
 */
export function regionsOf (text, name) {
  /** @type {Map<string, string[][]>} */
  const pieces = new Map()
  /** @type {Array<{ region: string, lines: string[] }>} */
  const open = []
  const lines = text.split('\n')
  lines.forEach((line, index) => {
    const marker = REGION.exec(line)
    if (marker === null) {
      for (const piece of open) piece.lines.push(line)
      return
    }
    const [, kind, region] = /** @type {[string, string, string]} */ (marker)
    if (kind === 'region') {
      open.push({ region, lines: [] })
      return
    }
    const piece = open.pop()
    if (piece?.region !== region) throw new Error(`${name}:${index + 1}: #endregion ${region} closes ${piece === undefined ? 'nothing' : `#region ${piece.region}`}`)
    pieces.set(region, [...pieces.get(region) ?? [], piece.lines])
  })
  if (open.length > 0) throw new Error(`${name}: #region ${open.map((piece) => piece.region).join(', ')} never closed`)
  return new Map([...pieces].map(([region, parts]) => [region, parts.map(dedent).join('\n\n')]))
}

/** The whole file as shown: without region markers. @param {string} text */
export function withoutMarkers (text) {
  return text.split('\n').filter((line) => !REGION.test(line)).join('\n').trimEnd()
}

/** @param {string[]} lines */
function dedent (lines) {
  const indents = lines.filter((line) => line.trim() !== '').map((line) => line.length - line.trimStart().length)
  const cut = Math.min(Infinity, ...indents)
  return lines.map((line) => line.slice(cut)).join('\n').trim()
}

/**
 * Checks (or rewrites) every snippet of the Markdown files in `docs`.
 * @param {{ root: string, docs?: string, write?: boolean }} options
 * @returns {Promise<{ problems: string[], rewritten: string[] }>}
 */
export async function syncSnippets ({ root, docs = 'docs', write = false }) {
  const problems = []
  const rewritten = []
  /** @type {Map<string, string>} */
  const sources = new Map()
  /** @param {string} path */
  const source = async (path) => {
    const cached = sources.get(path)
    if (cached !== undefined) return cached
    const text = await readFile(join(root, path), 'utf8')
    sources.set(path, text)
    return text
  }

  for (const entry of (await readdir(join(root, docs))).filter((file) => file.endsWith('.md')).sort()) {
    const file = join(docs, entry)
    const lines = (await readFile(join(root, file), 'utf8')).split('\n')
    let changed = false
    for (let i = 0; i < lines.length; i++) {
      const marker = MARKER.exec(/** @type {string} */ (lines[i]))
      if (marker === null) continue
      const [, path, region] = /** @type {[string, string, string | undefined]} */ (marker)
      const where = `${file}:${i + 1}`
      const open = i + 1
      const close = lines.findIndex((line, index) => index > open && line.startsWith('```'))
      if (!lines[open]?.startsWith('```') || close === -1) {
        problems.push(`${where}: a snippet comment must be followed by a fenced code block`)
        continue
      }
      let expected
      try {
        const text = await source(path)
        if (region === undefined) {
          expected = withoutMarkers(text)
        } else {
          expected = regionsOf(text, path).get(region)
          if (expected === undefined) throw new Error(`${path} has no region '${region}'`)
        }
      } catch (err) {
        problems.push(`${where}: ${/** @type {Error} */ (err).message}`)
        continue
      }
      const shown = lines.slice(open + 1, close).join('\n')
      if (shown === expected) continue
      if (write) {
        lines.splice(open + 1, close - open - 1, ...expected.split('\n'))
        changed = true
      } else {
        problems.push(`${where}: the block differs from ${path}${region === undefined ? '' : `#${region}`} (npm run tutorial:snippets rewrites it)`)
      }
    }
    if (changed) {
      await writeFile(join(root, file), lines.join('\n'))
      rewritten.push(file)
    }
  }
  problems.push(...await sameRegions(root))
  return { problems, rewritten }
}

/**
 * A region repeated in several example files must read the same in each.
 * @param {string} root
 */
async function sameRegions (root) {
  const problems = []
  const dir = join(root, 'examples', 'tutorial')
  /** @type {Map<string, { file: string, text: string }>} */
  const first = new Map()
  const files = (await readdir(dir, { recursive: true }))
    .filter((file) => /\.(js|html)$/.test(file) && !file.includes('node_modules'))
    .sort()
  for (const file of files) {
    const path = relative(root, join(dir, file))
    let regions
    try {
      regions = regionsOf(await readFile(join(dir, file), 'utf8'), path)
    } catch (err) {
      problems.push(/** @type {Error} */ (err).message)
      continue
    }
    for (const [region, text] of regions) {
      const seen = first.get(region)
      if (seen === undefined) first.set(region, { file: path, text })
      else if (seen.text !== text) problems.push(`${path}: region '${region}' differs from the one in ${seen.file}`)
    }
  }
  return problems
}

/* c8 ignore start: the command line; the test calls syncSnippets() */
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const root = fileURLToPath(new URL('..', import.meta.url))
  const { problems, rewritten } = await syncSnippets({ root, write: process.argv.includes('--write') })
  for (const file of rewritten) console.log(`rewrote the snippets of ${file}`)
  for (const problem of problems) console.error(problem)
  process.exit(problems.length === 0 ? 0 : 1)
}
/* c8 ignore stop */
