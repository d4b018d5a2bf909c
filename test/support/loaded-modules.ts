// Loaded into every process of a balancer a test starts, through
// NODE_OPTIONS="--import <this file>" with LOADED_MODULES_DIR set: records
// the modules the process loads (ES modules by URL, through a load hook) and,
// on SIGUSR2, writes them with Node's own list of its builtins and bindings
// (process.moduleLoadList) to LOADED_MODULES_DIR/<pid>.json. Nothing of it
// is in the balancer: a test asks a running process what it has loaded.
import { renameSync, writeFileSync } from 'node:fs'
import module from 'node:module'

const dir = process.env.LOADED_MODULES_DIR
if (dir !== undefined) {
  const urls: string[] = []
  module.registerHooks({
    load(url, context, next) {
      urls.push(url)
      return next(url, context)
    },
  })
  process.on('SIGUSR2', () => {
    const file = `${dir}/${process.pid}.json`
    // Written whole, then renamed: a reader never sees half of it.
    writeFileSync(`${file}.tmp`, JSON.stringify({ urls, builtins: (process as unknown as { moduleLoadList: string[] }).moduleLoadList }))
    renameSync(`${file}.tmp`, file)
  })
}
