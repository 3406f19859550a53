/**
 * Endpoint text vectors (src/endpoints.ts), shared by every caller's tests: the parser, the
 * config schema (`listen.advertise`, `dht.bootstrap`), profile records and the dialler.
 */

/** [text, host, port]: valid everywhere (IPv6 ones not as DHT bootstrap nodes). */
export const VALID_ENDPOINTS: readonly (readonly [string, string, number])[] = [
  ['127.0.0.1:4000', '127.0.0.1', 4000],
  ['192.168.1.20:7000', '192.168.1.20', 7000],
  ['255.255.255.255:65535', '255.255.255.255', 65535],
  ['example.org:1', 'example.org', 1],
  ['localhost:7000', 'localhost', 7000],
  ['router.bittorrent.com:6881', 'router.bittorrent.com', 6881],
  ['bridge-alice:7000', 'bridge-alice', 7000],
  ['a-b.c-d.lan:8883', 'a-b.c-d.lan', 8883],
  ['1password.com:443', '1password.com', 443],
  ['xn--bcher-kva.example:80', 'xn--bcher-kva.example', 80],
  ['example.org.:80', 'example.org.', 80],
  [`${'a'.repeat(63)}.com:1`, `${'a'.repeat(63)}.com`, 1],
  [
    `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}:1`,
    `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`,
    1,
  ],
  ['[::1]:7000', '::1', 7000],
  ['[2001:db8::1]:65535', '2001:db8::1', 65535],
  ['[::ffff:127.0.0.1]:80', '::ffff:127.0.0.1', 80],
  ['[FE80::1]:80', 'FE80::1', 80],
]

export const IPV6_ENDPOINTS: ReadonlySet<string> = new Set(
  VALID_ENDPOINTS.filter(([, host]) => host.includes(':')).map(([text]) => text),
)

/** [text, what the problem says]: refused everywhere, with a message that explains. */
export const INVALID_ENDPOINTS: readonly (readonly [string, RegExp])[] = [
  ['', /must be "host:port"/],
  ['nope', /must be "host:port"/],
  ['127.0.0.1', /must be "host:port"/],
  [':80', /host is empty/],
  ['1.2.3.4:0', /port 0 is not in 1\.\.65535/],
  ['1.2.3.4:65536', /port 65536 is not in 1\.\.65535/],
  ['1.2.3.4:123456', /port "123456" is not a number/],
  ['1.2.3.4:1x', /port "1x" is not a number/],
  ['1.2.3.4:', /port "" is not a number/],
  ['1.2.3.4:-1', /is not a number/],
  ['host:80\n', /is not a number/],
  ['::1:80', /IPv6 needs the brackets/],
  ['[::1:80', /IPv6 needs the brackets/],
  ['[::1]', /is not a number/],
  ['[1.2.3.4]:80', /is not an IPv6 address/],
  ['[::g]:80', /is not an IPv6 address/],
  ['[fe80::1%eth0]:80', /zone ids are not allowed/],
  ['my_host.lan:80', /not a host name \(RFC 1123/],
  ['a b:1', /not a host name/],
  ['host :1', /not a host name/],
  ['-a.lan:1', /not a host name/],
  ['a-.lan:1', /not a host name/],
  ['a..b:1', /not a host name/],
  ['.a:1', /not a host name/],
  ['a.lan..:1', /not a host name/],
  [`${'a'.repeat(64)}.com:1`, /not a host name/],
  [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}:1`, /over 253 chars/],
  ['héllo.lan:80', /not a host name/],
  ['1.2.3:80', /not an IPv4 address/],
  ['256.1.1.1:80', /not an IPv4 address/],
  ['010.0.0.1:80', /not an IPv4 address/],
  ['127.1:80', /not an IPv4 address/],
  ['a.123:80', /last label is a number/],
  ['0x7f000001:80', /last label is a number/],
  ['10.0.0.0x1:80', /last label is a number/],
  [`${'a'.repeat(300)}:1`, /at most 270 chars/],
]
