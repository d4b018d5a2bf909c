import { describe, expect, it } from 'vitest'
import { parseOptions } from '../../src/cli/options.ts'
import { parseRegistryUrl, parseRegistryUrls, splitRegistryList } from '../../src/kv/registry-url.ts'

describe('--registry', () => {
  it('repeats; on the command line it replaces BALANCER_REGISTRY, which is comma separated', () => {
    const env = { BALANCER_REGISTRY: 'consul://127.0.0.1:8500,etcd://10.0.0.1:2379,10.0.0.2:2379/services' }
    const fromEnv = parseOptions([], env)
    expect('errors' in fromEnv ? fromEnv.errors : fromEnv.registries).toEqual(['consul://127.0.0.1:8500', 'etcd://10.0.0.1:2379,10.0.0.2:2379/services'])
    const flags = parseOptions(['--registry', 'zk://127.0.0.1:2181/services', '--registry=dc2=consul://10.0.0.9:8500'], env)
    expect('errors' in flags ? flags.errors : flags.registries).toEqual(['zk://127.0.0.1:2181/services', 'dc2=consul://10.0.0.9:8500'])
  })

  it('refuses a bad URL with its reason', () => {
    const o = parseOptions(['--registry', 'etcd://127.0.0.1:2379', '--registry', 'redis://x'], {})
    expect('errors' in o && o.errors).toEqual([
      '--registry: etcd://127.0.0.1:2379: a prefix is required: etcd://127.0.0.1:2379/services',
      '--registry: redis://x: "redis://x" is not a consul://, etcd:// or zk:// URL',
    ])
  })
})

describe('registry URLs', () => {
  it('names default to the kind; NAME=URL names one; names are unique and not docker/swarm', () => {
    expect(parseRegistryUrl('consul://TOKEN@127.0.0.1')).toEqual({
      name: 'consul',
      kind: 'consul',
      hosts: [{ host: '127.0.0.1', port: 8500 }],
      prefix: '',
      user: 'TOKEN',
      password: null,
      location: 'consul://127.0.0.1:8500',
    })
    expect(parseRegistryUrl('apps=zk://a:2181,b/base/path')).toMatchObject({
      name: 'apps',
      kind: 'zookeeper',
      hosts: [
        { host: 'a', port: 2181 },
        { host: 'b', port: 2181 },
      ],
      prefix: '/base/path',
    })
    expect(parseRegistryUrl('consul://h:8500/x')).toEqual({ error: 'consul:// takes no path: services come from the catalog' })
    expect(parseRegistryUrls(['consul://a', 'consul://b'])).toEqual({ errors: ['consul://b: a registry named "consul" is already configured; name one of them: NAME=consul://b:8500'] })
    expect(parseRegistryUrls(['docker=consul://a'])).toMatchObject({ errors: [expect.stringContaining('"docker" is the origin of another discovery source')] })
  })

  it('a comma inside an etcd host list does not split the environment list', () => {
    expect(splitRegistryList('etcd://a:1,b:2/p, x=zk://c/q')).toEqual(['etcd://a:1,b:2/p', 'x=zk://c/q'])
  })
})
