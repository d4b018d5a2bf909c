// A store mutation as the control plane builds it (Control.write): an edit of
// the current configuration, then the parser's parseEdit, so stores are
// tested with exactly the mutations they get in the balancer.

import { parseEdit } from '../../src/model/parse.ts'
import type { Config, ValidConfig } from '../../src/model/types.ts'
import type { Mutation } from '../../src/store/store.ts'

export function edit(f: (cfg: ValidConfig) => Config): Mutation {
  return (current) => parseEdit(current, f(current))
}
