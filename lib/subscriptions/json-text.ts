/**
 * Pieces of JSON text taken as they are, not re-encoded: a route's answer is
 * spliced into frames byte for byte, because JSON.parse + JSON.stringify is not
 * the identity (it drops whitespace, moves integer-like keys first, rounds
 * numbers beyond 2^53). Callers pass text that has parsed as JSON (json.ts).
 */
import { jsonValue } from '../json.js'

function isSpace (ch: string | undefined): boolean {
  return ch === ' ' || ch === '\n' || ch === '\r' || ch === '\t'
}

function skipSpace (text: string, at: number): number {
  let i = at
  while (isSpace(text[i])) i++
  return i
}

/** Index just past the string starting at `at` (an opening quote). */
function stringEnd (text: string, at: number): number {
  let i = at + 1
  while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1
  return i + 1
}

/** Index just past the value starting at `at`. */
export function valueEnd (text: string, at: number): number {
  let depth = 0
  let i = at
  while (i < text.length) {
    const ch = text[i]
    if (ch === '"') {
      i = stringEnd(text, i)
      if (depth === 0) return i
      continue
    }
    if (ch === '{' || ch === '[') {
      depth++
    } else if (ch === '}' || ch === ']') {
      if (depth === 0) return i // the end of the container holding a scalar
      depth--
      if (depth === 0) return i + 1
    } else if (depth === 0 && (ch === ',' || isSpace(ch))) {
      return i
    }
    i++
  }
  return i
}

/** The text of each element of a JSON array. */
export function arrayItemTexts (text: string): string[] {
  const items: string[] = []
  let i = skipSpace(text, skipSpace(text, 0) + 1) // past '['
  if (text[i] === ']') return items
  for (;;) {
    const end = valueEnd(text, i)
    items.push(text.slice(i, end))
    i = skipSpace(text, end)
    if (text[i] !== ',') return items
    i = skipSpace(text, i + 1)
  }
}

/** The text of a JSON object's member `name` (the last one, as JSON.parse keeps), or undefined. */
export function memberText (text: string, name: string): string | undefined {
  let i = skipSpace(text, 0)
  if (text[i] !== '{') return undefined
  let found: string | undefined
  i = skipSpace(text, i + 1)
  while (text[i] === '"') {
    const keyEnd = stringEnd(text, i)
    const key = jsonValue(text.slice(i, keyEnd)) as string // a string literal (the text is JSON)
    const start = skipSpace(text, skipSpace(text, keyEnd) + 1) // past ':'
    const end = valueEnd(text, start)
    if (key === name) found = text.slice(start, end)
    i = skipSpace(text, end)
    if (text[i] !== ',') break
    i = skipSpace(text, i + 1)
  }
  return found
}
