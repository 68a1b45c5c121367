// Module hooks for ts-loader.mjs.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { compiled } from './ts-compile.mjs'

const isTypeScript = (url) => url.startsWith('file:') && url.endsWith('.ts') && !url.endsWith('.d.ts')

export async function resolve (specifier, context, nextResolve) {
  // NodeNext style: TypeScript imports './x.js' and means ./x.ts when no x.js exists
  if (context.parentURL !== undefined && isTypeScript(context.parentURL) && /^\.\.?\/.*\.js$/.test(specifier)) {
    const url = new URL(specifier, context.parentURL)
    const ts = new URL(url.href.replace(/\.js$/, '.ts'))
    if (!existsSync(fileURLToPath(url)) && existsSync(fileURLToPath(ts))) return { url: ts.href, format: 'module', shortCircuit: true }
  }
  return await nextResolve(specifier, context)
}

export async function load (url, context, nextLoad) {
  if (!isTypeScript(url)) return await nextLoad(url, context)
  return { format: 'module', source: compiled(fileURLToPath(url)).code, shortCircuit: true }
}
