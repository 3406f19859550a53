/** The seeded PRNG of the testnet (scripts/testnet/prng.ts), for randomized tests. */
export { prng } from '../../scripts/testnet/prng.js'
