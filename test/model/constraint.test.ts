import { describe, expect, it } from 'vitest'
import { constraintErrorText, parseConstraint } from '../../src/model/constraint.ts'
import type { Constraint, Subject } from '../../src/model/constraint.ts'

const web: Subject = { name: 'shop-web-1', labels: { team: 'web', 'com.docker.compose.project': 'shop', 'a b': 'c d' }, networks: ['shop_front', 'bridge'] }
const db: Subject = { name: 'bank_api.1', labels: { team: 'db', 'com.docker.stack.namespace': 'bank' }, networks: ['bank_net'] }

function c(text: string): Constraint {
  const r = parseConstraint(text)
  if ('error' in r) throw new Error(constraintErrorText(r))
  return r
}

describe('discovery constraints', () => {
  it.each([
    ['label:team=web', true, false],
    ['label:team', true, true],
    ['label:team=', false, false],
    ['label:"a b"="c d"', true, false],
    ['network:shop_front', true, false],
    ['project:shop', true, false],
    ['stack:bank', false, true],
    ['name:shop-*', true, false],
    ['name:bank_api.?', false, true],
    ['!project:shop', false, true],
    ['project:shop || stack:bank', true, true],
    ['label:team && !(network:bank_net || name:x)', true, false],
    ['  (label:team=web)&&network:bridge  ', true, false],
    ['!!label:team=db', false, true],
  ])('%s', (text, onWeb, onDb) => {
    const k = c(text)
    expect([k.test(web), k.test(db)]).toEqual([onWeb, onDb])
    expect(k.text).toBe(text.trim())
  })

  it.each([
    ['', 1, 'is empty'],
    ['team=web', 1, 'expected a term'],
    ['label:', 7, 'expected a label key'],
    ['label:a &&', 11, 'expected a term'],
    ['(label:a', 9, 'expected ")"'],
    ['label:a label:b', 9, 'expected "&&", "||" or the end'],
    ['host:x', 1, 'unknown term "host:"'],
    ['label:"abc', 7, 'unterminated'],
    ['label:a & label:b', 9, 'expected "&&", "||" or the end'],
  ])('refuses %j at column %i', (text, column, message) => {
    const r = parseConstraint(text)
    expect('error' in r && r.column).toBe(column)
    expect('error' in r && r.error).toContain(message)
  })
})
