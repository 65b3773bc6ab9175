#!/usr/bin/env python3
"""Captures the seed corpus of the fuzz targets from a real Linux kernel (run once, as root).

Two network namespaces each get a tap opened with a virtio-net header and TSO/checksum offloads
(as the switch opens them); this script bridges the two taps itself and saves what the kernel
hands over: TCP over IPv4 and IPv6 (64 KiB GSO frames),
UDP with a partial checksum, ARP and ICMP (plain frames), and the VXLAN datagrams of a kernel
VXLAN device. 802.1Q-tagged copies of the GSO frames are made the way the engine tags a frame
for a trunk port (tag after the MAC addresses, csum_start and hdr_len moved by 4), as the
kernels we test on have no VLAN devices. It writes, under native/fuzz/corpus/:
  offload_vnet/  10-byte virtio_net_hdr + frame, a few per kind and the largest, plus truncated
                 and 802.1Q-tagged copies, and full-size GSO frames with the MSS lowered to the
                 most segments allowed (2048) and to one segment more;
  vxlan_decap/   3-byte VNI (big-endian) + the UDP payload of a kernel VXLAN datagram, plus
                 a leave message, a foreign VNI, bad flags and truncations;
  stream_decoder/, classify/  captured frames in the input layout of those targets (see their
                 .cc files): VDE and QEMU stream records, cut and over-long ones; untagged,
                 tagged, foreign-tagged and VID 4095 frames on access and trunk-only ports.
The seeds are committed; this script documents where they came from and can refresh them.
Needs: iproute2, socat, ping. Usage: python3 native/fuzz/capture-seeds.py
"""
import fcntl
import os
import select
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, 'corpus')
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
VNET_HDR_BYTES = 10
READ_BYTES = 65536 + 128
SEEDS_PER_KIND = 2
TRAFFIC_SECONDS = 4
VXLAN_PORT = 4789
VXLAN_VNI = 42
TAG = str(os.getpid())


def sh(*args, check=True):
    """Runs a command, failing loudly."""
    return subprocess.run(list(args), check=check, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ns(name, *args, check=True):
    """Runs a command inside a namespace."""
    return sh('ip', 'netns', 'exec', name, *args, check=check)


def open_tap(name):
    """Opens (creates) a tap with a 10-byte virtio-net header and TSO/checksum offloads."""
    fd = os.open('/dev/net/tun', os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack('i', VNET_HDR_BYTES))
    fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    return fd


def kind_of(pkt):
    """A short name for what a captured header + frame is (used to keep a few of each kind)."""
    flags, gso = pkt[0], pkt[1]
    f = pkt[VNET_HDR_BYTES:]
    et = struct.unpack('!H', f[12:14])[0] if len(f) >= 14 else 0
    vlan = et == 0x8100
    if vlan and len(f) >= 18:
        et = struct.unpack('!H', f[16:18])[0]
    return f'gso{gso:02x}-flags{flags:02x}-et{et:04x}' + ('-vlan' if vlan else '')


def vxlan_payload(frame):
    """The UDP payload of an IPv4 VXLAN datagram in an Ethernet frame, or None."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b'\x08\x00' or frame[14 + 9] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    udp = 14 + ihl
    if struct.unpack('!H', frame[udp + 2:udp + 4])[0] != VXLAN_PORT:
        return None
    return frame[udp + 8:]


def tag_frame(pkt, vid):
    """Inserts an 802.1Q tag after the MAC addresses and moves csum_start/hdr_len by its 4 bytes."""
    flags, gso, hdr_len, gso_size, csum_start, csum_off = struct.unpack('<BBHHHH', pkt[:VNET_HDR_BYTES])
    if flags & 1:
        csum_start += 4
    if hdr_len:
        hdr_len += 4
    f = pkt[VNET_HDR_BYTES:]
    return struct.pack('<BBHHHH', flags, gso, hdr_len, gso_size, csum_start, csum_off) + f[:12] + struct.pack('!HH', 0x8100, vid) + f[12:]


def with_gso_size(pkt, gso_size):
    """The same header + frame with another gso_size (MSS)."""
    flags, gso, hdr_len, _, csum_start, csum_off = struct.unpack('<BBHHHH', pkt[:VNET_HDR_BYTES])
    return struct.pack('<BBHHHH', flags, gso, hdr_len, gso_size, csum_start, csum_off) + pkt[VNET_HDR_BYTES:]


def max_segment_seeds(k, pkt):
    """A GSO frame cut into the most segments allowed (2048), and into one more (refused)."""
    csum_start = struct.unpack('<H', pkt[6:8])[0]
    f = pkt[VNET_HDR_BYTES:]
    payload = len(f) - csum_start - (f[csum_start + 12] >> 4) * 4
    mss = -(-payload // 2048)
    save('offload_vnet', f'kernel-{k}-mss{mss}-2048-segments', with_gso_size(pkt, mss))
    save('offload_vnet', f'kernel-{k}-mss{mss - 1}-too-many-segments', with_gso_size(pkt, mss - 1))


def stream_seed(four, limit, chunks, records):
    """A stream_decoder input: framing, limit, chunk sizes, then the records (bytes) as given."""
    return bytes([1 if four else 0]) + struct.pack('!H', limit) + bytes([len(chunks)]) + bytes(chunks) + b''.join(records)


def record(four, frame, length=None):
    """One length-prefixed record (length defaults to the frame's)."""
    n = len(frame) if length is None else length
    return (struct.pack('!I', n) if four else struct.pack('!H', n)) + frame


def classify_seed(drop, untagged, out_untagged, trunks, frame):
    """A classify input: foreign-tag mode, the port's and an output port's untagged VLAN, trunks, frame."""
    return (bytes([1 if drop else 0]) + struct.pack('!HH', untagged, out_untagged) + bytes([len(trunks)])
            + b''.join(struct.pack('!H', t) for t in trunks) + frame)


def write_derived(plain, big):
    """Seeds of the stream_decoder and classify targets, made of two captured frames."""
    save('stream_decoder', 'vde-two-frames-and-noop', stream_seed(False, 9234, [], [record(False, plain), record(False, b''), record(False, big)]))
    save('stream_decoder', 'qemu-split-reads', stream_seed(True, 0, [1, 7, 200], [record(True, big), record(True, plain)]))
    save('stream_decoder', 'vde-cut-frame', stream_seed(False, 9234, [], [record(False, plain), record(False, big)[:40]]))
    save('stream_decoder', 'vde-too-long', stream_seed(False, 9234, [], [record(False, plain), record(False, b'', 9235)]))
    save('stream_decoder', 'qemu-runt', stream_seed(True, 0, [3], [record(True, plain[:10]), record(True, plain)]))
    tagged = lambda f, vid: f[:12] + struct.pack('!HH', 0x8100, vid) + f[12:]
    save('classify', 'access-untagged', classify_seed(False, 1, 1, [], plain))
    save('classify', 'trunk-member-tagged', classify_seed(True, 4095, 20, [10, 20], tagged(plain, 10)))
    save('classify', 'access-foreign-passed', classify_seed(False, 1, 20, [20], tagged(big, 30)))
    save('classify', 'access-foreign-dropped', classify_seed(True, 1, 1, [], tagged(plain, 30)))
    save('classify', 'trunk-only-vid4095', classify_seed(False, 4095, 4095, [10], tagged(plain, 4095)))
    save('classify', 'tagged-own-untagged', classify_seed(False, 5, 5, [7], tagged(plain, 5)))


def save(dirname, name, data):
    """Writes one seed file."""
    os.makedirs(os.path.join(CORPUS, dirname), exist_ok=True)
    with open(os.path.join(CORPUS, dirname, name), 'wb') as f:
        f.write(data)


def main():
    if os.geteuid() != 0:
        sys.exit('capture-seeds: run as root (namespaces, taps)')
    nsa, nsb = f'fzA{TAG}', f'fzB{TAG}'
    ta, tb = f'fzta{TAG}', f'fztb{TAG}'
    fds = {}
    try:
        for n in (nsa, nsb):
            sh('ip', 'netns', 'add', n)
            ns(n, 'ip', 'link', 'set', 'lo', 'up')
        for t, n, a4, a6 in ((ta, nsa, '10.99.0.1', 'fd99::1'), (tb, nsb, '10.99.0.2', 'fd99::2')):
            fds[t] = open_tap(t)
            sh('ip', 'link', 'set', t, 'netns', n)
            ns(n, 'ip', 'link', 'set', t, 'up')
            ns(n, 'ip', 'addr', 'add', f'{a4}/24', 'dev', t)
            ns(n, 'ip', '-6', 'addr', 'add', f'{a6}/64', 'dev', t, 'nodad')
            ns(n, 'ip', 'link', 'add', 'vx0', 'type', 'vxlan', 'id', str(VXLAN_VNI), 'group', '239.1.1.1',
               'dev', t, 'dstport', str(VXLAN_PORT))
            ns(n, 'ip', 'link', 'set', 'vx0', 'up')
            ns(n, 'ip', 'addr', 'add', a4.replace('10.99.0', '10.97.0') + '/24', 'dev', 'vx0')
        for addr in ('10.99.0.2', 'fd99::2'):
            fam = 'TCP6' if ':' in addr else 'TCP4'
            port = 5000 + len(addr)
            subprocess.Popen(['ip', 'netns', 'exec', nsb, 'timeout', str(TRAFFIC_SECONDS + 2), 'socat', '-u',
                              f'{fam}-LISTEN:{port},reuseaddr', 'OPEN:/dev/null'])
            subprocess.Popen(['ip', 'netns', 'exec', nsa, 'sh', '-c',
                              f'sleep 1; head -c 3000000 /dev/urandom | timeout {TRAFFIC_SECONDS} socat -u - '
                              f'{fam}:{"[" + addr + "]" if ":" in addr else addr}:{port}'])
        subprocess.Popen(['ip', 'netns', 'exec', nsa, 'sh', '-c',
                          f'sleep 1; ping -c 3 -i 0.3 10.97.0.2; ping -c 2 -s 1400 10.97.0.2; '
                          f'echo hello | socat -u - UDP4:10.99.0.2:9999'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kinds, largest, vx = {}, {}, []
        end = time.time() + TRAFFIC_SECONDS + 1
        peer = {fds[ta]: fds[tb], fds[tb]: fds[ta]}
        while time.time() < end:
            ready, _, _ = select.select(list(peer), [], [], 0.2)
            for fd in ready:
                try:
                    pkt = os.read(fd, READ_BYTES)
                except BlockingIOError:
                    continue
                try:
                    os.write(peer[fd], pkt)
                except OSError:
                    pass
                k = kind_of(pkt)
                kinds.setdefault(k, [])
                if len(kinds[k]) < SEEDS_PER_KIND and pkt not in kinds[k]:
                    kinds[k].append(pkt)
                if len(pkt) > len(largest.get(k, b'')):
                    largest[k] = pkt
                p = vxlan_payload(pkt[VNET_HDR_BYTES:])
                if p is not None and len(vx) < 4:
                    vx.append(p)
        n = 0
        for k, pkts in sorted(kinds.items()):
            for i, pkt in enumerate(pkts):
                save('offload_vnet', f'kernel-{k}-{i}', pkt)
                n += 1
                if len(pkt) > 80 and i == 0:  # cut inside the headers and inside the payload
                    save('offload_vnet', f'kernel-{k}-cut-headers', pkt[:VNET_HDR_BYTES + 60])
                    save('offload_vnet', f'kernel-{k}-cut-payload', pkt[:len(pkt) - 7])
        for k, pkt in sorted(largest.items()):
            if pkt not in kinds[k]:
                save('offload_vnet', f'kernel-{k}-largest', pkt)
                n += 1
        for k, pkt in sorted(largest.items()):
            if pkt[1] != 0 and len(pkt) > 40000:  # a full-size GSO frame
                max_segment_seeds(k, pkt)
        for k, pkts in sorted(kinds.items()):
            if pkts[0][1] != 0 and '-vlan' not in k:  # GSO: a tagged copy
                save('offload_vnet', f'tagged-{k}', tag_frame(pkts[0], 7))
                n += 1
        arp = next((p for k, ps in kinds.items() if k.endswith('et0806') for p in ps), None)
        tcp = largest.get('gso00-flags01-et0800')
        if arp and tcp:
            write_derived(arp[VNET_HDR_BYTES:], tcp[VNET_HDR_BYTES:])
        vni = struct.pack('!I', VXLAN_VNI)[1:]
        for i, p in enumerate(vx):
            save('vxlan_decap', f'kernel-vni42-{i}', vni + p)
        if vx:
            p = vx[0]
            save('vxlan_decap', 'leave-vni42', vni + p[:8])
            save('vxlan_decap', 'foreign-vni43', struct.pack('!I', 43)[1:] + p)
            save('vxlan_decap', 'bad-flags', vni + b'\x0c' + p[1:])
            save('vxlan_decap', 'reserved-set', vni + p[:7] + b'\x01' + p[8:])
            save('vxlan_decap', 'runt-header-plus-14', vni + p[:22])
            save('vxlan_decap', 'runt-7', vni + p[:7])
        print(f'capture-seeds: {n} offload seeds ({len(kinds)} kinds: {", ".join(sorted(kinds))}), {len(vx)} VXLAN datagrams')
    finally:
        for fd in fds.values():
            os.close(fd)
        for n in (nsa, nsb):
            sh('ip', 'netns', 'del', n, check=False)


if __name__ == '__main__':
    main()
