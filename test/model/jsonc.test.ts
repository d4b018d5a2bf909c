import { describe, expect, it } from 'vitest'
import { BalancerError, ErrorCode } from '../../src/model/errors.ts'
import { parseJsonLoose } from '../../src/model/parse.ts'

function badJson(text: string): BalancerError {
  try {
    parseJsonLoose(text)
  } catch (err) {
    expect(err).toBeInstanceOf(BalancerError)
    return err as BalancerError
  }
  throw new Error(`expected ${JSON.stringify(text)} to be refused`)
}

describe('parseJsonLoose', () => {
  it('reads strict JSON exactly as JSON.parse does', () => {
    const text = '{"a":[1,-2.5e3,0,true,false,null],"b":{"c":"d\\n\\t\\"\\\\\\/\\u00e9\\ud83d\\ude00"},"e":""}'
    expect(parseJsonLoose(text)).toEqual(JSON.parse(text))
  })

  it('skips // and /* */ comments, but not inside strings', () => {
    const text = `// head
    { /* block
       over lines */ "url": "http://x//y", // tail
      "c": "/* kept */" }`
    expect(parseJsonLoose(text)).toEqual({ url: 'http://x//y', c: '/* kept */' })
  })

  it('accepts trailing commas in objects and arrays', () => {
    expect(parseJsonLoose('{"a":[1,2,],"b":{"c":1,},}')).toEqual({ a: [1, 2], b: { c: 1 } })
  })

  it("reads the seed's `{ [ ... ] }` as the array itself", () => {
    expect(parseJsonLoose('{"upstreams":{ [ {"Port":1}, {"Port":2} ] }}')).toEqual({ upstreams: [{ Port: 1 }, { Port: 2 }] })
    expect(parseJsonLoose('{ [1], }')).toEqual([1])
  })

  it('keeps escapes that look like delimiters inside strings', () => {
    expect(parseJsonLoose('["a\\"]//", "\\\\"]')).toEqual(['a"]//', '\\'])
  })

  it('treats __proto__ as an ordinary key', () => {
    const v = parseJsonLoose('{"__proto__": {"polluted": true}}') as Record<string, unknown>
    expect(Object.keys(v)).toEqual(['__proto__'])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('skips a leading byte order mark', () => {
    expect(parseJsonLoose('\ufeff[1]')).toEqual([1])
  })

  it.each([
    ['{"a":1 "b":2}', '1:8', "expected ',' or '}'"],
    ['{\n  "a": tru\n}', '2:8', 'expected a value'],
    ['[1,,2]', '1:4', 'expected a value'],
    ['{"a":1,\n"a":2}', '2:1', 'duplicate key "a"'],
    ['"abc', '1:1', 'unterminated string'],
    ['"a\\x"', '1:3', 'invalid escape \\x'],
    ['"\\u12g4"', '1:2', 'invalid \\u escape'],
    ['"a\nb"', '1:3', 'control character in string'],
    ['[01]', '1:3', 'invalid number'],
    ['[1.]', '1:3', 'invalid number'],
    ["{'a':1}", '1:2', 'expected a quoted key'],
    ['{a:1}', '1:2', 'expected a quoted key'],
    ['[1] [2]', '1:5', 'after the document'],
    ['/* open', '1:1', 'unterminated /* comment'],
    ['{"a":{ [1] 2 }}', '1:12', "expected '}' after the array"],
    ['', '1:1', 'empty document'],
    ['  // only a comment\n', '2:1', 'empty document'],
  ])('refuses %j with E_BAD_JSON at %s', (text, where, message) => {
    const err = badJson(text)
    expect(err.code).toBe(ErrorCode.BadJson)
    expect(err.status).toBe(400)
    expect(err.message).toContain(`at ${where}:`)
    expect(err.message).toContain(message)
    expect(err.problems[0]?.path).toBe(where)
  })

  it('refuses nesting deep enough to overflow the stack', () => {
    expect(badJson('['.repeat(100_000)).message).toContain('nesting deeper than')
  })
})
