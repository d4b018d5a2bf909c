// A registering application in its own process, so a test can kill it
// (SIGKILL) and leave its ZooKeeper session to expire as a crashed Java
// application's would: ZooKeeper then deletes its ephemeral (DYNAMIC)
// instance nodes. Run by test/support/curator.ts (CuratorProcess):
//   node curator-child.ts <endpoint> <base> <session-timeout-ms> <instance JSON>
// Prints `REGISTERED <id>` once the instance node exists.

import { CuratorClient } from '../curator.ts'
import type { CuratorInstance } from '../curator.ts'

const [endpoint = '', base = '', timeout = '1000', json = '{}'] = process.argv.slice(2)
const client = await CuratorClient.connect(endpoint, base, Number(timeout))
const id = await client.register(JSON.parse(json) as CuratorInstance)
process.stdout.write(`REGISTERED ${id}\n`)
// Stays until killed: the session lives as long as the process does.
setInterval(() => {}, 60_000)
