// Rule groups from `balancer.*` labels: nested label keys become the same
// groups the configuration has, checked by the same rules.

import { describe, expect, it } from 'vitest'
import { readLabels } from '../../src/model/labels.ts'

function settings(extra: Record<string, string>) {
  const r = readLabels({ 'balancer.enable': 'true', ...extra })
  if (!r.enabled) throw new Error('not enabled')
  return r
}

describe('rule labels', () => {
  it('rewrite and headers labels nest into whole groups', () => {
    const r = settings({
      'balancer.pathprefix': '/shop',
      'balancer.rewrite.stripprefix': 'true',
      'balancer.rewrite.replacepathregex.regex': '^/v1/(.*)$',
      'balancer.rewrite.replacepathregex.replacement': '/v2/$1',
      'balancer.headers.request.set.X-Env': 'prod',
      'balancer.headers.response.remove': 'x-powered-by, server',
      'balancer.headers.contenttypenosniff': 'true',
    })
    expect(r.problems).toEqual([])
    expect(r.settings?.policy.rewrite).toEqual({ StripPrefix: true, AddPrefix: '', ReplacePathRegex: { Regex: '^/v1/(.*)$', Replacement: '/v2/$1' }, Host: 'client' })
    expect(r.settings?.policy.headers).toEqual({
      Request: { Set: { 'x-env': 'prod' }, Add: {}, Remove: [] },
      Response: { Set: {}, Add: {}, Remove: ['x-powered-by', 'server'] },
      FrameDeny: false,
      ContentTypeNosniff: true,
    })
  })

  it('access and body labels: comma-separated lists, byte counts', () => {
    const r = settings({
      'balancer.access.allow': '10.0.0.0/8, 2001:db8::/32',
      'balancer.access.forwardauth.address': 'http://auth:9000/check',
      'balancer.access.forwardauth.responseheaders': 'X-User,X-Groups',
      'balancer.body.maxrequestbytes': '1048576',
      'balancer.body.maxresponsebytes': '10485760',
    })
    expect(r.problems).toEqual([])
    expect(r.settings?.policy.access).toMatchObject({
      Allow: ['10.0.0.0/8', '2001:db8::/32'],
      Deny: [],
      BasicAuth: [],
      ForwardAuth: { Address: 'http://auth:9000/check', ResponseHeaders: ['x-user', 'x-groups'] },
    })
    expect(r.settings?.policy.body).toEqual({ MaxRequestBytes: 1048576, MaxResponseBytes: 10485760 })
    const bad = settings({ 'balancer.body.maxrequestbytes': '1mb', 'balancer.body.maxresponsebytes': '-1', 'balancer.access.deny': '10.0.0.0/33' })
    expect(bad.problems.map((p) => p.path).sort()).toEqual(['balancer.access.deny', 'balancer.body.maxrequestbytes', 'balancer.body.maxresponsebytes'])
  })

  it('a bad rule label keeps the container out, naming the label', () => {
    const r = settings({ 'balancer.rewrite.stripprefx': 'true', 'balancer.headers.request.set.connection': 'close', 'balancer.rewrite.replacepathregex.regex': '(a)\\1' })
    expect(r.settings).toBeNull()
    expect(r.problems.map((p) => p.path).sort()).toEqual(['balancer.headers.request.set.connection', 'balancer.rewrite.replacepathregex.regex', 'balancer.rewrite.stripprefx'])
  })
})
