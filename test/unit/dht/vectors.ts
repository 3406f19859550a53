/**
 * Spec vectors as data (STYLE habit 3).
 * - BEP44_VECTORS: the BEP's own test vectors (also libtorrent's signing_test1/2). The private
 *   key is the 64-byte expanded (ref10/supercop) form the BEP prints.
 * - PROFILE_VECTOR: this bridge's profile record, as documented in docs/PROTOCOL.md.
 */
export interface Bep44Vector {
  name: string
  publicKeyHex: string
  expandedSecretKeyHex: string
  salt: string
  seq: number
  /** The bencoded value, as text. */
  v: string
  signable: string
  targetHex: string
  signatureHex: string
}

const BEP44_PUBLIC = '77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548'
const BEP44_SECRET =
  'e06d3183d14159228433ed599221b80bd0a5ce8352e4bdf0262f76786ef1c74d' +
  'b7e7a9fea2c0eb269d61e3b38e450a22e754941ac78479d6c54e1faf6037881d'

export const BEP44_VECTORS: Bep44Vector[] = [
  {
    name: 'test 1 (mutable)',
    publicKeyHex: BEP44_PUBLIC,
    expandedSecretKeyHex: BEP44_SECRET,
    salt: '',
    seq: 1,
    v: '12:Hello World!',
    signable: '3:seqi1e1:v12:Hello World!',
    targetHex: '4a533d47ec9c7d95b1ad75f576cffc641853b750',
    signatureHex:
      '305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff' +
      '1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01',
  },
  {
    name: 'test 2 (mutable with salt)',
    publicKeyHex: BEP44_PUBLIC,
    expandedSecretKeyHex: BEP44_SECRET,
    salt: 'foobar',
    seq: 1,
    v: '12:Hello World!',
    signable: '4:salt6:foobar3:seqi1e1:v12:Hello World!',
    targetHex: '411eba73b6f087ca51a3795d9c8c938d365e32c1',
    signatureHex:
      '6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d' +
      'df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08',
  },
]

export const PROFILE_VECTOR = {
  seedHex: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
  publicKeyHex: '03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8',
  boxPublicKeyHex: 'c8985e207ef7f0814161bc4cfa91fcf357fd23eb7472f4e83137cf6ccf122528',
  profile: {
    name: 'alice',
    endpoints: ['127.0.0.1:7001'],
    subscriptions: [
      { filter: 'home/+/temperature', qos: 1 as const },
      { filter: 'alerts/#', qos: 0 as const },
    ],
  },
  seq: 1700000000000,
  salt: 'mqtt-dht-bridge/profile/v1',
  targetHex: '5dee61108f65ba8b02994096a0176a683169b682',
  vHex:
    '64333a626f7833323ac8985e207ef7f0814161bc4cfa91fcf357fd23eb7472f4' +
    'e83137cf6ccf122528323a65706c31343a3132372e302e302e313a3730303165' +
    '343a6e616d65353a616c696365333a716f73323a3130343a737562736c31383a' +
    '686f6d652f2b2f74656d7065726174757265383a616c657274732f2365333a76' +
    '657269316565',
  signatureHex:
    '43e1232b8e7d7f89495946fc2d2b2cd46e7eb7bea89ae16a77696e75a581b454' +
    '75b73ff67c24788394ea669117175a590afb5fe50f45dbdffdadb8721e3a8203',
}
