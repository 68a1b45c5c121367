/**
 * What users hand the plugin after registration (route `config.realtime`,
 * `app.realtime.resource()` options, `app.realtime.publish()` arguments) is
 * checked against a TypeBox schema, as the plugin options are (options.ts). A
 * failure names the one field at fault, what it must be (the fix), and what was
 * given; each caller wraps that in its own error code.
 */
import { Type, type TProperties, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'

/**
 * A field: its schema, and what it must be, written as the fix ("must be a
 * non-empty string"); a function when the fix depends on what the object is for
 * (a resource's prefix: "like '/questions'" for the stream 'questions').
 */
export interface FieldRule {
  schema: TSchema
  must: string | ((subject: string) => string)
}

/** The first field at fault, and what is wrong with it: "must be …, got …", or "is not a … (known: …)". */
export interface FieldProblem {
  field: string
  detail: string
}

/** A value as a message shows it: strings quoted, numbers as they are, anything else by kind. */
export function describe (value: unknown): string {
  if (value === undefined) return 'nothing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number') return String(value)
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

/** The fields of one object, compiled once; unknown keys are refused. */
export class FieldsCheck {
  readonly #rules: Record<string, FieldRule>
  readonly #check: TypeCheck<TSchema>
  readonly #unknown: string

  /** `noun` names a key in messages about an unknown one: "'querySet' is not a config.realtime key". */
  constructor (noun: string, rules: Record<string, FieldRule>) {
    this.#rules = rules
    this.#unknown = `is not a ${noun} (known: ${Object.keys(rules).join(', ')})`
    const properties: TProperties = Object.fromEntries(Object.entries(rules).map(([key, rule]) => [key, rule.schema]))
    this.#check = TypeCompiler.Compile(Type.Object(properties, { additionalProperties: false }))
  }

  /** The first problem of `value`, an object, or undefined when it is valid; `subject` is handed to fixes that name it. */
  problem (value: object, subject: string): FieldProblem | undefined {
    // the compiled check first: valid values (every publish) skip the slower error walk
    const error = this.#check.Check(value) ? undefined : this.#check.Errors(value).First()
    if (error === undefined) return undefined
    // the failing path's first segment is the field, as a JSON pointer (RFC 6901: ~1 is '/', ~0 is '~')
    const field = (error.path.slice(1).split('/')[0] as string).replace(/~1/g, '/').replace(/~0/g, '~')
    const rule = Object.hasOwn(this.#rules, field) ? this.#rules[field] : undefined
    if (rule === undefined) return { field, detail: this.#unknown }
    const must = typeof rule.must === 'string' ? rule.must : rule.must(subject)
    return { field, detail: `${must}, got ${describe((value as Record<string, unknown>)[field])}` }
  }
}
