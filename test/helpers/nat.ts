/*
 * Shared pieces of the NAT tests (slirp://, passt://): a free loopback TCP port, a small HTTP GET,
 * and the busybox udhcpc script that applies a lease (address, MTU when the lease has one,
 * default route) to the interface in a namespace.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

/** Time limit of one httpGet. */
const HTTP_TIMEOUT_MS = 20_000;

/** A free TCP port on 127.0.0.1 (bound, then released). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

/** GETs url; resolves with the body of a 200 answer, rejects otherwise. */
export function httpGet(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: HTTP_TIMEOUT_MS }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(parts)) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Writes the udhcpc script into dir (address, the lease's MTU if any, default route); returns its path. */
export function writeUdhcpcScript(dir: string): string {
  const file = path.join(dir, 'dhcp.sh');
  fs.writeFileSync(file, [
    '#!/bin/sh',
    'case "$1" in',
    '  bound|renew)',
    '    ip addr flush dev "$interface"',
    '    ip addr add "$ip/${mask:-24}" dev "$interface"',
    '    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"',
    '    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done',
    '    ;;',
    'esac',
    'exit 0',
    '',
  ].join('\n'), { mode: 0o755 });
  return file;
}
