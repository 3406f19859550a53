// Minimal types for what src/link/sealed-channel.ts uses of sodium-native 5 (libsodium
// bindings; the package ships none). Every function throws on failure (an authentication
// failure included) and writes into the buffers it is given.
declare module 'sodium-native' {
  /** RFC 8439 ChaCha20-Poly1305: `c` (m.length + 16 bytes) = ciphertext ‖ tag. Returns c's length. */
  export function crypto_aead_chacha20poly1305_ietf_encrypt(
    c: Uint8Array,
    m: Uint8Array,
    ad: Uint8Array | null,
    nsec: null,
    npub: Uint8Array,
    k: Uint8Array,
  ): number
  /** The inverse: `m` gets c.length - 16 bytes; throws if the tag does not match. Returns m's length. */
  export function crypto_aead_chacha20poly1305_ietf_decrypt(
    m: Uint8Array,
    nsec: null,
    c: Uint8Array,
    ad: Uint8Array | null,
    npub: Uint8Array,
    k: Uint8Array,
  ): number
  /** Guarded, non-swappable memory (libsodium's sodium_malloc), for keys. */
  export function sodium_malloc(size: number): Buffer
  /** Zeroes `buf` (libsodium's sodium_memzero). */
  export function sodium_memzero(buf: Uint8Array): void
}
