// The micro benchmarks' one timing loop: warm up, then time n calls and
// print ns per call. `sink` keeps V8 from dropping the work as dead code.

let sink = 0

export function bench(name: string, fn: () => unknown, n = 1_000_000): void {
  for (let i = 0; i < n / 10; i++) fn()
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) if (fn() === sink) sink++
  const ns = Number(process.hrtime.bigint() - t0) / n
  console.log(`${name.padEnd(40)} ${ns.toFixed(1).padStart(8)} ns/op`)
}
