#!/usr/bin/env python3
# Writes the seed corpora of the vhost_ring and vhost_msg fuzz targets. vhost_ring: guest
# memory laid out as vhost_ring.cc reads it (a 16-byte header, then the descriptor table, the
# available ring, the used ring and the two data regions) holding the rings a Linux virtio-net
# driver builds, as seen from a vhost-user back-end with QEMU 7.2:
#   - transmit, virtio 1 with ANY_LAYOUT: one descriptor with the 12-byte header and the frame;
#   - transmit: the header in one descriptor, the frame in a second (NEXT);
#   - transmit with indirect descriptors: a 3-entry table (header, linear part, a page fragment),
#     a TSO frame whose header asks for GSO TCPv4;
#   - receive with mergeable buffers: 8 chains of one 1536-byte writable buffer each;
#   - receive without them ("big packets"): one chain of 4 writable pages;
#   - a buffer that crosses from region 0 into region 1;
# and the broken rings the back-end must survive: a chain that loops, a head beyond the queue
# size, a nested indirect table, a writable transmit buffer, an available index far ahead.
# vhost_msg: SET_MEM_TABLE, GET_FEATURES and SET_VRING_ADDR as QEMU 7.2 sends them, and bad
# memory tables (a region that wraps around, nine regions).
# Usage: python3 native/fuzz/vhost-seeds.py   (run from anywhere; overwrites the seeds it names)
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'corpus', 'vhost_ring')
R0_BYTES, R1_BYTES = 16384, 8192
R0_GPA = 0x100000
R1_GPA = R0_GPA + R0_BYTES
DESC_GPA, AVAIL_GPA, USED_GPA = 0x200000, 0x300000, 0x400000
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4

# a real ARP request and an ICMP echo as a guest sends them (52:54:00:12:34:56, 192.0.2.10)
ARP = bytes.fromhex('ffffffffffff525400123456080600010800060400015254001234'
                    '56c000020a000000000000c0000201')
ICMP = bytes.fromhex('0a1b2c3d4e5f52540012345608004500005436a2400040013f8dc000020ac0000201'
                     '08001fe1002a0001') + bytes(range(48))


def hdr12(flags=0, gso=0, hdr_len=0, gso_size=0, cstart=0, coff=0, nbuf=0):
    return struct.pack('<BBHHHHH', flags, gso, hdr_len, gso_size, cstart, coff, nbuf)


class Mem:
    def __init__(self, qlog2, flags=0, base=0, maxbytes=4095, ops=b'\x00' * 8):
        self.num = n = 1 << qlog2
        self.head = bytes([flags, qlog2, base & 0xff, base >> 8, maxbytes & 0xff, maxbytes >> 8]) + ops.ljust(8, b'\x00') + b'\x00\x00'
        # the regions in input order: (guest address, size)
        ev = 2 if flags & 8 else 0  # event indexes: one more word after each ring
        self.regions = [(DESC_GPA, 16 * n), (AVAIL_GPA, 4 + 2 * n + ev), (USED_GPA, 4 + 8 * n + ev), (R0_GPA, R0_BYTES), (R1_GPA, R1_BYTES)]
        self.img = bytearray(sum(sz for _, sz in self.regions))
        self.free = R0_GPA

    def put(self, gpa, data):
        base = 0
        for start, sz in self.regions:
            if start <= gpa < start + sz:
                off = base + gpa - start
                self.img[off:off + len(data)] = data
                return
            base += sz
        raise ValueError('address outside the regions: %#x' % gpa)

    def alloc(self, n, data=b''):
        gpa = self.free
        self.free += (n + 15) & ~15
        self.put(gpa, data)
        return gpa

    def desc(self, i, addr, length, flags=0, nxt=0, table=None):
        d = struct.pack('<QIHH', addr, length, flags, nxt)
        self.put((DESC_GPA if table is None else table) + 16 * i, d)

    def avail(self, heads, idx=None):
        self.put(AVAIL_GPA + 2, struct.pack('<H', len(heads) if idx is None else idx))
        for k, h in enumerate(heads):
            self.put(AVAIL_GPA + 4 + 2 * k, struct.pack('<H', h))

    def write(self, name):
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(self.head + bytes(self.img).rstrip(b'\x00'))


TAKE, PUT = 0, 1
take_ops = bytes([TAKE] * 8)


def put_op(frame_bytes):  # put of (op >> 2) * 97 + header bytes
    return PUT | (min(frame_bytes // 97, 63) << 2)


# transmit, one descriptor: header + frame
m = Mem(8, flags=4, ops=take_ops)
for i, f in enumerate([ARP, ICMP]):
    b = hdr12() + f
    m.desc(i, m.alloc(len(b), b), len(b))
m.avail([0, 1])
m.write('tx-any-layout')

# transmit, header and frame in two descriptors
m = Mem(8, flags=4, ops=take_ops)
h = m.alloc(12, hdr12())
fr = m.alloc(len(ICMP), ICMP)
m.desc(0, h, 12, F_NEXT, 1)
m.desc(1, fr, len(ICMP))
m.avail([0])
m.write('tx-two-descriptors')

# transmit with an indirect table: header, linear part, a page fragment (GSO TCPv4)
m = Mem(8, flags=5, ops=take_ops)
payload = bytes(3000)
eth = bytes.fromhex('0a1b2c3d4e5f5254001234560800')
ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + 20 + len(payload), 0, 0x4000, 64, 6, 0,
                 bytes([192, 0, 2, 10]), bytes([192, 0, 2, 1]))
tcp = eth + ip + struct.pack('>HHIIBBHHH', 42420, 80, 1, 1, 0x50, 0x18, 512, 0, 0)
table = m.alloc(48)
h = m.alloc(12, hdr12(1, 1, 54, 1448, 34, 16))
lin = m.alloc(len(tcp), tcp)
frag = m.alloc(len(payload), payload)
m.desc(0, h, 12, F_NEXT, 1, table)
m.desc(1, lin, len(tcp), F_NEXT, 2, table)
m.desc(2, frag, len(payload), 0, 0, table)
m.desc(0, table, 48, F_INDIRECT)
m.avail([0])
m.write('tx-indirect-tso')

# receive with mergeable buffers: 8 heads of 1536 bytes
m = Mem(8, flags=6, ops=bytes([put_op(1500), put_op(6000), put_op(60), TAKE | 2, 3, put_op(1500), 2 | 4, put_op(3000)]))
for i in range(8):
    m.desc(i, R0_GPA + 1536 * i, 1536, F_WRITE)
m.avail(list(range(8)))
m.write('rx-mergeable')

# the same with event indexes (VIRTIO_RING_F_EVENT_IDX): used_event after the avail ring
m = Mem(3, flags=6 | 8, ops=bytes([put_op(1500), put_op(300), 2 | 4, put_op(3000), 3, put_op(100), TAKE, 2]))
for i in range(8):
    m.desc(i, R0_GPA + 1536 * i, 1536, F_WRITE)
m.avail(list(range(8)))
m.put(AVAIL_GPA + 4 + 2 * 8, struct.pack('<H', 1))  # used_event: interrupt once index 1 is used
m.write('rx-mergeable-event-idx')

# receive without mergeable buffers: one chain of 4 pages (big packets) and a small one
m = Mem(4, flags=4, ops=bytes([put_op(6000), put_op(100), put_op(1500)] + [0] * 5))
for i in range(4):
    m.desc(i, R0_GPA + 0x800 * i, 0x800, F_WRITE | (F_NEXT if i < 3 else 0), i + 1)
m.desc(4, R0_GPA + 0x2000, 256, F_WRITE)
m.avail([0, 4])
m.write('rx-big-packets')

# a transmit buffer that crosses from region 0 into region 1
m = Mem(8, flags=4, ops=take_ops)
b = hdr12() + ICMP
m.desc(0, R1_GPA - 40, len(b))
m.put(R1_GPA - 40, b)
m.avail([0])
m.write('tx-crosses-regions')

# broken rings
m = Mem(8, flags=4, ops=take_ops)
m.desc(0, m.alloc(64), 64, F_NEXT, 1)
m.desc(1, m.alloc(64), 64, F_NEXT, 0)
m.avail([0])
m.write('bad-loop')

m = Mem(4, flags=4, ops=take_ops)
m.avail([17])
m.write('bad-head-index')

m = Mem(8, flags=5, ops=take_ops)
t1, t2 = m.alloc(16), m.alloc(16)
m.desc(0, t1, 16, F_INDIRECT)
m.desc(0, t2, 16, F_INDIRECT, 0, t1)
m.avail([0])
m.write('bad-nested-indirect')

m = Mem(8, flags=4, ops=take_ops)
m.desc(0, m.alloc(64), 64, F_WRITE)
m.avail([0])
m.write('bad-writable-tx')

m = Mem(2, flags=4, ops=take_ops)
m.avail([0], idx=900)
m.write('bad-avail-jump')

# --- vhost_msg: control messages as QEMU 7.2 sends them (fd count, header, payload)
MSG_OUT = os.path.join(HERE, 'corpus', 'vhost_msg')


def msg(name, nfds, req, flags, payload):
    os.makedirs(MSG_OUT, exist_ok=True)
    with open(os.path.join(MSG_OUT, name), 'wb') as f:
        f.write(bytes([nfds]) + struct.pack('<III', req, flags, len(payload)) + payload)


# SET_MEM_TABLE of a 256 MiB memfd guest (one region; flags with REPLY_ACK's need-reply bit)
msg('set-mem-table-256m', 1, 5, 0x9, struct.pack('<II', 1, 0) + struct.pack('<QQQQ', 0, 256 << 20, 0x7f5a40000000, 0))
# two regions, as for a pc guest with more than 3.5 GiB (below and above 4 GiB)
msg('set-mem-table-2-regions', 2, 5, 0x1, struct.pack('<II', 2, 0) + struct.pack('<QQQQ', 0, 0xc0000000, 0x7f0000000000, 0) +
    struct.pack('<QQQQ', 0x100000000, 0x40000000, 0x7f00c0000000, 0xc0000000))
msg('get-features', 0, 1, 0x1, b'')
msg('set-vring-addr', 0, 9, 0x1, struct.pack('<IIQQQQ', 1, 0, 0x7f5a4fe00000, 0x7f5a4fe01000, 0x7f5a4fe00800, 0))
msg('mem-table-wraps', 1, 5, 0x1, struct.pack('<II', 1, 0) + struct.pack('<QQQQ', 0xffffffffffff0000, 0x20000, 0, 0))
msg('mem-table-9-regions', 9, 5, 0x1, struct.pack('<II', 9, 0) + bytes(32 * 9))
