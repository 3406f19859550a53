// Minimal types for what the bridge uses of ed25519-supercop (the package ships none).
// NOTE (NOTES-deps): verify() throws on non-Buffer input; always go through src/identity/sign.ts.
declare module 'ed25519-supercop' {
  export function createSeed(): Buffer
  export function createKeyPair(seed: Buffer): { publicKey: Buffer; secretKey: Buffer }
  export function sign(message: Buffer | string, publicKey: Buffer, secretKey: Buffer): Buffer
  export function verify(signature: Buffer | string, message: Buffer | string, publicKey: Buffer): boolean
}
