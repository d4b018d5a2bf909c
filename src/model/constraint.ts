// The discovery constraint language (--docker-constraint, --swarm-constraint,
// and a stored server's or route's `discovery: {"Constraint": ...}`): which
// discovered containers or services are admitted.
//
//   expr  := or
//   or    := and ("||" and)*
//   and   := unary ("&&" unary)*
//   unary := "!" unary | "(" expr ")" | term
//   term  := "label:" KEY ["=" VALUE]   the label is present / has this value
//          | "network:" NAME             attached to this network (by name)
//          | "project:" NAME             Compose project (com.docker.compose.project)
//          | "stack:" NAME               Swarm stack (com.docker.stack.namespace)
//          | "name:" GLOB                container or service name; * and ? wildcards
//
// KEY, VALUE, NAME and GLOB are bare words (no space, parenthesis, "!", "&",
// "|", quote; KEY no "=") or "double-quoted" with \" and \\ escapes. Values
// compare exactly (case-sensitive), as Docker stores them. Kept small on
// purpose: it is read by people deciding who may receive traffic.
// Hand-written rather than a parser library: the grammar is five rules, and
// errors must name the column in the operator's own flag.

/** What a constraint is evaluated against. */
export interface Subject {
  /** Container name (without `/`) or service name. */
  name: string
  labels: Readonly<Record<string, string>>
  /** Network names it is attached to. */
  networks: readonly string[]
}

export interface Constraint {
  /** As written (trimmed): shown in reasons and stored back. */
  text: string
  test(s: Subject): boolean
}

export type ConstraintError = { error: string; column: number }

const COMPOSE_PROJECT = 'com.docker.compose.project'
const STACK_NAMESPACE = 'com.docker.stack.namespace'

type Node = (s: Subject) => boolean

export function parseConstraint(source: string): Constraint | ConstraintError {
  const text = source.trim()
  const p = new Parser(source)
  try {
    p.skip()
    if (p.done()) return { error: 'is empty; write e.g. label:team=web', column: 1 }
    const node = p.or()
    p.skip()
    if (!p.done()) p.fail('expected "&&", "||" or the end')
    return { text, test: node }
  } catch (err) {
    if (err instanceof SyntaxFault) return { error: err.message, column: err.column }
    throw err
  }
}

/** `column 7: expected ...` for messages. */
export function constraintErrorText(e: ConstraintError): string {
  return `column ${e.column}: ${e.error}`
}

class SyntaxFault extends Error {
  readonly column: number
  constructor(message: string, column: number) {
    super(message)
    this.column = column
  }
}

const BARE = /[^\s()!&|"=]/
const BARE_VALUE = /[^\s()!&|"]/

class Parser {
  readonly #s: string
  #i = 0
  constructor(s: string) {
    this.#s = s
  }

  done(): boolean {
    return this.#i >= this.#s.length
  }

  skip(): void {
    while (this.#i < this.#s.length && /\s/.test(this.#s[this.#i] ?? '')) this.#i++
  }

  fail(message: string): never {
    throw new SyntaxFault(message, this.#i + 1)
  }

  #eat(tok: string): boolean {
    this.skip()
    if (this.#s.startsWith(tok, this.#i)) {
      this.#i += tok.length
      return true
    }
    return false
  }

  or(): Node {
    const parts = [this.and()]
    while (this.#eat('||')) parts.push(this.and())
    return parts.length === 1 ? (parts[0] as Node) : (s) => parts.some((n) => n(s))
  }

  and(): Node {
    const parts = [this.unary()]
    while (this.#eat('&&')) parts.push(this.unary())
    return parts.length === 1 ? (parts[0] as Node) : (s) => parts.every((n) => n(s))
  }

  unary(): Node {
    if (this.#eat('!')) {
      const inner = this.unary()
      return (s) => !inner(s)
    }
    if (this.#eat('(')) {
      const inner = this.or()
      if (!this.#eat(')')) this.fail('expected ")"')
      return inner
    }
    return this.term()
  }

  term(): Node {
    this.skip()
    const m = /^([a-z]+):/i.exec(this.#s.slice(this.#i))
    if (m === null) this.fail('expected a term: label:KEY[=VALUE], network:NAME, project:NAME, stack:NAME or name:GLOB')
    const kind = (m[1] ?? '').toLowerCase()
    const at = this.#i
    this.#i += m[0].length
    switch (kind) {
      case 'label': {
        const key = this.#word(BARE, 'a label key')
        if (this.#s[this.#i] !== '=') return (s) => Object.hasOwn(s.labels, key)
        this.#i++
        const value = this.#word(BARE_VALUE, 'a label value', true)
        return (s) => s.labels[key] === value
      }
      case 'network': {
        const name = this.#word(BARE_VALUE, 'a network name')
        return (s) => s.networks.includes(name)
      }
      case 'project': {
        const name = this.#word(BARE_VALUE, 'a Compose project name')
        return (s) => s.labels[COMPOSE_PROJECT] === name
      }
      case 'stack': {
        const name = this.#word(BARE_VALUE, 'a stack name')
        return (s) => s.labels[STACK_NAMESPACE] === name
      }
      case 'name': {
        const re = globToRegExp(this.#word(BARE_VALUE, 'a name or glob'))
        return (s) => re.test(s.name)
      }
      default:
        this.#i = at
        return this.fail(`unknown term "${kind}:"; use label:, network:, project:, stack: or name:`)
    }
  }

  /** A bare word of `chars`, or a "quoted" one. */
  #word(chars: RegExp, what: string, emptyOk = false): string {
    if (this.#s[this.#i] === '"') return this.#quoted()
    const start = this.#i
    while (this.#i < this.#s.length && chars.test(this.#s[this.#i] ?? '')) this.#i++
    if (this.#i === start && !emptyOk) this.fail(`expected ${what}`)
    return this.#s.slice(start, this.#i)
  }

  #quoted(): string {
    const start = this.#i
    this.#i++
    let out = ''
    while (this.#i < this.#s.length) {
      const c = this.#s[this.#i++] ?? ''
      if (c === '"') return out
      if (c === '\\') {
        const n = this.#s[this.#i++]
        if (n !== '"' && n !== '\\') {
          this.#i -= 2
          this.fail('only \\" and \\\\ are escapes in a quoted word')
        }
        out += n
      } else out += c
    }
    this.#i = start
    return this.fail('unterminated quoted word')
  }
}

function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.')
  return new RegExp(`^${body}$`)
}
