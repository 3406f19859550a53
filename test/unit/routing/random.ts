/**
 * Seeded generators for randomized cross-checks, and an independent reference matcher
 * written straight from the spec's recursive definition (split into levels).
 */

export { prng } from '../../helpers/prng.js'

/** Small alphabet so that matches are frequent; includes `$` levels and empty levels. */
export const LITERALS: readonly string[] = ['a', 'b', 'ab', '', '$', '$a', 'é']

function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)]!
}

export function randomTopic(rand: () => number, maxLevels = 4, literals = LITERALS): string {
  const n = 1 + Math.floor(rand() * maxLevels)
  const levels: string[] = []
  for (let i = 0; i < n; i++) levels.push(pick(rand, literals))
  const topic = levels.join('/')
  return topic === '' ? 'a' : topic // an empty topic is invalid; '' as one level only
}

export function randomFilter(rand: () => number, maxLevels = 4, literals = LITERALS): string {
  const n = 1 + Math.floor(rand() * maxLevels)
  const levels: string[] = []
  for (let i = 0; i < n; i++) {
    const r = rand()
    if (i === n - 1 && r < 0.2) levels.push('#')
    else if (r < 0.45) levels.push('+')
    else levels.push(pick(rand, literals))
  }
  const filter = levels.join('/')
  return filter === '' ? '+' : filter
}

/** The spec's definition, recursively, on level arrays. Deliberately unlike topicMatches. */
export function referenceMatch(filter: string, topic: string): boolean {
  const f = filter.split('/')
  const t = topic.split('/')
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false
  const rec = (i: number, j: number): boolean => {
    if (i === f.length) return j === t.length
    if (f[i] === '#') return true
    if (j === t.length) return false
    return (f[i] === '+' || f[i] === t[j]) && rec(i + 1, j + 1)
  }
  return rec(0, 0)
}

/** Every topic of 1..maxLevels levels over `literals`. */
export function allTopics(literals: readonly string[], maxLevels: number): string[] {
  let frontier = [...literals]
  const out = [...literals]
  for (let n = 2; n <= maxLevels; n++) {
    const next: string[] = []
    for (const prefix of frontier) for (const l of literals) next.push(`${prefix}/${l}`)
    out.push(...next)
    frontier = next
  }
  return out.filter((t) => t !== '')
}
