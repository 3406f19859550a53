/**
 * The subscription set sent to an MQTT 3.1.1 broker: no two filters overlap.
 *
 * Without MQTT 5 subscription identifiers the bridge cannot tell a second copy of one
 * publish (one per matching subscription, which MQTT 3.1.1 §3.3.5 allows: RabbitMQ 3.10
 * sends one per QoS queue, measured: `a/#` at QoS 0 and `a/b` at QoS 1 → two copies of
 * `a/b`) from a second publish of the same message. So under 3.1.1 the desired filters are
 * merged until every topic matches at most one of them: a filter covered by another is
 * dropped (`a/b` under `a/#`), two that only partly overlap are replaced by one that
 * covers both (`a/+/c` and `a/b/#` → `a/+/#`). Each merged filter takes the highest QoS of
 * its parts. The adapter then delivers only messages that match a desired filter, at
 * min(their QoS, the best desired filter's): the wider filter costs bandwidth, not
 * correctness.
 */

/** Would some topic match both filters? (A wildcard first level never matches a `$` topic.) */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split('/')
  const y = b.split('/')
  for (let i = 0; ; i++) {
    const p = x[i]
    const q = y[i]
    if (p === undefined && q === undefined) return true
    if (p === '#' || q === '#') return i > 0 || !dollarVsWildcard(p, q)
    if (p === undefined || q === undefined) return false
    if (i === 0 && dollarVsWildcard(p, q)) return false
    if (p !== q && p !== '+' && q !== '+') return false
  }
}

/** Does every topic that matches `inner` match `outer`? */
export function filterCovers(outer: string, inner: string): boolean {
  const x = outer.split('/')
  const y = inner.split('/')
  for (let i = 0; ; i++) {
    const p = x[i]
    const q = y[i]
    if (p === '#') return !(i === 0 && q !== undefined && q.startsWith('$'))
    if (p === undefined) return q === undefined
    if (q === undefined || q === '#') return false
    if (p === '+') {
      if (i === 0 && q.startsWith('$')) return false
      continue
    }
    if (p !== q) return false
  }
}

/** The narrowest filter of this shape that covers both (equal levels kept, others `+`, `#` past the shorter). */
export function coveringFilter(a: string, b: string): string {
  const x = a.split('/')
  const y = b.split('/')
  const out: string[] = []
  for (let i = 0; ; i++) {
    const p = x[i]
    const q = y[i]
    if (p === undefined && q === undefined) return out.join('/')
    if (p === '#' || q === '#' || p === undefined || q === undefined) {
      out.push('#')
      return out.join('/')
    }
    out.push(p === q ? p : '+')
  }
}

/** Merges `filters` (filter → QoS) until no two overlap; see the module comment. */
export function disjointFilters(filters: ReadonlyMap<string, 0 | 1>): Map<string, 0 | 1> {
  const list: Array<[string, 0 | 1]> = [...filters]
  for (;;) {
    let merged = false
    outer: for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const [a, qa] = list[i] as [string, 0 | 1]
        const [b, qb] = list[j] as [string, 0 | 1]
        if (!filtersOverlap(a, b)) continue
        const f = filterCovers(a, b) ? a : filterCovers(b, a) ? b : coveringFilter(a, b)
        list.splice(j, 1)
        list[i] = [f, qa === 1 || qb === 1 ? 1 : 0]
        merged = true
        break outer
      }
    }
    if (!merged) return new Map(list)
  }
}

function dollarVsWildcard(p: string | undefined, q: string | undefined): boolean {
  const wild = (s: string | undefined) => s === '+' || s === '#'
  return (wild(p) && q?.startsWith('$') === true) || (wild(q) && p?.startsWith('$') === true)
}
