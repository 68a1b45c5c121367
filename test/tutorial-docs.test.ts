/**
 * The docs show the code that runs: every snippet in docs/*.md is cut from
 * the file it names (scripts/tutorial-snippets.js), the tutorial's install
 * line installs what its examples import, and no doc links outside the
 * repository or to a file or heading that is not there.
 */
import { access, readdir, readFile } from 'node:fs/promises'
import { builtinModules } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { regionsOf, syncSnippets, withoutMarkers } from '../scripts/tutorial-snippets.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const tutorialDir = join(root, 'examples', 'tutorial')

t.test('every code block cut from a file matches the file', async (t) => {
  const { problems, rewritten } = await syncSnippets({ root })
  t.same(problems, [], 'npm run tutorial:snippets rewrites the blocks from the files')
  t.same(rewritten, [])
  const tutorial = await readFile(join(root, 'docs', 'tutorial.md'), 'utf8')
  const snippets = [...tutorial.matchAll(/<!-- snippet: examples\/tutorial\/([^\s#]+)/g)].map((match) => match[1])
  for (const file of ['db.js', 'schema.js', '03-register.js', '04-realtime-route.js', '05-retrieve-route.js', '06-writes.js',
    '07-browser.js', 'public/index.html', '08-request-frames.js', '09-auth.js', 'sessions.js', '11-refetch.js', '12-redis.js',
    'app.js', 'server.js', 'test/app.test.js']) {
    t.ok(snippets.includes(file), `the tutorial shows examples/tutorial/${file}`)
  }
})

t.test('the install line installs every package the examples import, and sets type: module', async (t) => {
  const tutorial = await readFile(join(root, 'docs', 'tutorial.md'), 'utf8')
  const install = /## 1\. Install\n([\s\S]*?)\n## 2\./.exec(tutorial)?.[1] ?? ''
  const commands = /```sh\n([\s\S]*?)```/.exec(install)?.[1] ?? ''
  t.match(commands, /^npm pkg set type=module/m)
  const installed = new Set(commands.split('\n').filter((line) => line.startsWith('npm install')).flatMap((line) => line.replace(/#.*/, '').split(/\s+/).slice(2)).filter((word) => word !== '' && !word.startsWith('-')))

  const manifest = JSON.parse(await readFile(join(tutorialDir, 'package.json'), 'utf8')) as { type: string, dependencies: Record<string, string>, devDependencies: Record<string, string> }
  t.equal(manifest.type, 'module')
  t.same([...installed].sort(), [...Object.keys(manifest.dependencies), ...Object.keys(manifest.devDependencies)].sort(), 'package.json lists what the install line installs')

  const imported = new Set<string>()
  for (const file of await readdir(tutorialDir, { recursive: true })) {
    if (!file.endsWith('.js') || file.includes('node_modules')) continue
    const source = await readFile(join(tutorialDir, file), 'utf8')
    for (const [, specifier] of source.matchAll(/^import .* from '([^'.][^']*)'/gm)) {
      const name = (specifier as string).split('/').slice(0, (specifier as string).startsWith('@') ? 2 : 1).join('/')
      if (!name.startsWith('node:') && !builtinModules.includes(name)) imported.add(name)
    }
  }
  t.same([...imported].filter((name) => !installed.has(name)), [], 'every package an example imports is installed')
  t.match(install, /`npm install better-sqlite3`/, 'db.js falls back to better-sqlite3: the install section says how to get it')
})

/** GitHub's anchor for a heading. */
function slug (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')
}

/** Links whose target is expected to arrive with another branch; each must still be missing (then remove it here). */
const arriving = new Map<string, string>()

t.test('docs link only to files and headings in the repository', async (t) => {
  const docs = ['README.md', ...(await readdir(join(root, 'docs'))).filter((file) => file.endsWith('.md')).map((file) => `docs/${file}`)]
  const problems: string[] = []
  for (const doc of docs) {
    const text = (await readFile(join(root, doc), 'utf8')).replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '')
    const targets = [
      ...[...text.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1] as string),
      ...[...text.matchAll(/<(\w+:[^>\s]*)>/g)].map((match) => match[1] as string)
    ]
    for (const target of targets) {
      if (/^\w+:/.test(target)) {
        problems.push(`${doc} links outside the repository: ${target}`)
        continue
      }
      const [path = '', anchor] = target.split('#')
      const file = path === '' ? join(root, doc) : join(root, dirname(doc), path)
      const shown = relative(root, file)
      if (arriving.get(doc) === path) {
        t.rejects(access(file), `${doc} → ${path} is expected from another branch; now that it exists, remove it from 'arriving'`)
        continue
      }
      try {
        await access(file)
      } catch {
        problems.push(`${doc} links to ${target}, which is not in the repository`)
        continue
      }
      if (anchor === undefined || !file.endsWith('.md')) continue
      const headings = [...(await readFile(file, 'utf8')).matchAll(/^#+ (.*)$/gm)].map((match) => slug(match[1] as string))
      if (!headings.includes(anchor)) problems.push(`${doc} links to ${target}, but ${shown} has no heading #${anchor}`)
    }
  }
  t.same(problems, [])
})

t.test('the README lists every doc', async (t) => {
  const readme = await readFile(join(root, 'README.md'), 'utf8')
  for (const file of (await readdir(join(root, 'docs'))).filter((name) => name.endsWith('.md'))) {
    t.match(readme, `](docs/${file})`, `README links docs/${file}`)
  }
})

t.test('the snippet tool', async (t) => {
  t.test('regions: pieces joined, nested markers hidden, indentation removed', async (t) => {
    const text = [
      '// #region a',
      'import x from "x"',
      '// #endregion a',
      'function f () {',
      '  // #region a',
      '  x()',
      '  // #region b',
      '',
      '  y()',
      '  // #endregion b',
      '  // #endregion a',
      '  // #region empty',
      '',
      '  // #endregion empty',
      '}',
      '<!-- #region html -->',
      '<p>hi</p>',
      '<!-- #endregion html -->'
    ].join('\n')
    t.same(Object.fromEntries(regionsOf(text, 'f.js')), { a: 'import x from "x"\n\nx()\n\ny()', b: 'y()', empty: '', html: '<p>hi</p>' })
    t.equal(withoutMarkers(text + '\n'), 'import x from "x"\nfunction f () {\n  x()\n\n  y()\n\n}\n<p>hi</p>')
    t.throws(() => regionsOf('// #region a\n// #endregion b', 'f.js'), { message: 'f.js:2: #endregion b closes #region a' })
    t.throws(() => regionsOf('// #endregion b', 'f.js'), { message: 'f.js:1: #endregion b closes nothing' })
    t.throws(() => regionsOf('// #region a\n// #region b\n', 'f.js'), { message: 'f.js: #region a, b never closed' })
  })

  t.test('check and write', async (t) => {
    const fence = '```'
    const doc = [
      '# Doc',
      '<!-- snippet: examples/tutorial/a.js#one -->',
      `${fence}js`, 'stale', `${fence}`,
      '<!-- snippet: examples/tutorial/a.js -->',
      `${fence}js`, 'const one = 1', '', 'const two = 2', `${fence}`,
      '<!-- snippet: examples/tutorial/a.js#one -->',
      'no block here',
      '<!-- snippet: examples/tutorial/missing.js -->',
      `${fence}js`, `${fence}`,
      '<!-- snippet: examples/tutorial/a.js#nope -->',
      `${fence}js`, `${fence}`,
      '<!-- snippet: examples/tutorial/b.js -->',
      `${fence}js`, 'stale', `${fence}`,
      '<!-- snippet: examples/tutorial/a.js -->'
    ].join('\n')
    const dir = t.testdir({
      docs: { 'doc.md': doc, 'other.md': '# nothing to do\n', 'notes.txt': 'not markdown' },
      examples: {
        tutorial: {
          'a.js': '// #region one\nconst one = 1\n// #endregion one\n\n// #region two\nconst two = 2\n// #endregion two\n',
          'b.js': '// #region one\nconst one = 2\n// #endregion one\n',
          'c.html': '<!-- #region x -->\n<!-- #endregion y -->\n',
          'readme.md': '// #region one\n',
          node_modules: { 'd.js': '// #region one\n' }
        }
      }
    })
    const checked = await syncSnippets({ root: dir })
    t.same(checked, {
      rewritten: [],
      problems: [
        'docs/doc.md:2: the block differs from examples/tutorial/a.js#one (npm run tutorial:snippets rewrites it)',
        'docs/doc.md:12: a snippet comment must be followed by a fenced code block',
        "docs/doc.md:14: ENOENT: no such file or directory, open '" + join(dir, 'examples/tutorial/missing.js') + "'",
        "docs/doc.md:17: examples/tutorial/a.js has no region 'nope'",
        'docs/doc.md:20: the block differs from examples/tutorial/b.js (npm run tutorial:snippets rewrites it)',
        'docs/doc.md:24: a snippet comment must be followed by a fenced code block',
        "examples/tutorial/b.js: region 'one' differs from the one in examples/tutorial/a.js",
        'examples/tutorial/c.html:2: #endregion y closes #region x'
      ]
    })
    const written = await syncSnippets({ root: dir, write: true })
    t.same(written.rewritten, ['docs/doc.md'])
    t.equal(written.problems.length, 6, 'what cannot be rewritten is still reported')
    t.match(await readFile(join(dir, 'docs', 'doc.md'), 'utf8'), /<!-- snippet: examples\/tutorial\/a.js#one -->\n```js\nconst one = 1\n```\n/)
    t.equal((await syncSnippets({ root: dir })).problems.length, 6, 'and the rewritten block now matches')
  })
})
