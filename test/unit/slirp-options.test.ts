/*
 * slirp option parsing: vdeplug_slirp's `slirp:///key=value/flag` names through the VNL parser
 * into a SlirpConfig (defaults, derived addresses, forwards, v4/v6 selection), slirpvde's command
 * line (DHCP off unless -D, -D[=START], -L/-U), and precise errors naming the option for bad,
 * garbage and oversize values.
 */
import { describe, expect, test } from 'vitest';
import { parseLocator, type SlirpLocator } from '../../src/ports/vnl.js';
import { MAX_OPTION_VALUE_CHARS, buildSlirpConfig, parseForward, parseSlirpOptions, SlirpOptionError } from '../../src/ports/kinds/slirp-options.js';
import { rewriteDhcp, slirpvdeConfig } from '../../src/slirp/main.js';

function fromVnl(s: string) {
  return parseSlirpOptions((parseLocator(s) as SlirpLocator).options);
}

describe('slirp:// defaults', () => {
  // a "/" inside a VNL value must be quoted (the VNL splits options on "/")
  test('libslirp defaults: 10.0.2.2/24, DNS .3, DHCP from .15, fd00::2/64, both families, DHCP on', () => {
    const c = fromVnl('slirp://');
    expect(c).toMatchObject({
      v4: true, v6: true, host: '10.0.2.2', prefixLen: 24, network: '10.0.2.0', netmask: '255.255.255.0',
      nameserver: '10.0.2.3', dhcp: true, dhcpStart: '10.0.2.15', host6: 'fd00::2', prefix6: 'fd00::', prefixLen6: 64,
      nameserver6: 'fd00::3', restricted: false, disableHostLoopback: false, mtu: 0, mru: 0, forwards: [], dnsSearch: [],
    });
  });

  test('addr derives network, DNS and DHCP start; a host part of 0 puts the gateway at .2', () => {
    expect(fromVnl("slirp:///addr='192.168.50.1/16'")).toMatchObject({ host: '192.168.50.1', network: '192.168.0.0', netmask: '255.255.0.0', nameserver: '192.168.0.3', dhcpStart: '192.168.0.15' });
    expect(fromVnl("slirp:///host='172.20.0.0/24'")).toMatchObject({ host: '172.20.0.2', nameserver: '172.20.0.3' });
    expect(fromVnl('slirp:///host=10.9.8.7')).toMatchObject({ prefixLen: 24, network: '10.9.8.0' });
  });

  test('v4 / v6 alone select one family', () => {
    expect(fromVnl('slirp:///v4')).toMatchObject({ v4: true, v6: false });
    expect(fromVnl('slirp:///v6')).toMatchObject({ v4: false, v6: true });
    expect(fromVnl('slirp:///v4/v6')).toMatchObject({ v4: true, v6: true });
  });

  test('every option name is understood', () => {
    const c = fromVnl("slirp:///restricted/addr6='fd12:3456::1/48'/hostname=guest/tftp_server_name=tftp.local/tftp_path='/srv/tftp'/bootfile=pxelinux.0/dhcp=10.0.2.50/vnameserver=10.0.2.4/vnameserver6=fd12:3456::53/vdnssearch=a.example,b.example/vdomainname=lan.example/mtu=9000/mru=9000/disable_host_loopback/tcpfwd=8080:10.0.2.15:80,127.0.0.1:2222:10.0.2.15:22/udpfwd=[::1]:5353:[fd12:3456::15]:53/verbose");
    expect(c).toMatchObject({
      restricted: true, host6: 'fd12:3456::1', prefix6: 'fd12:3456::', prefixLen6: 48, hostname: 'guest', tftpServerName: 'tftp.local',
      tftpPath: '/srv/tftp', bootfile: 'pxelinux.0', dhcpStart: '10.0.2.50', nameserver: '10.0.2.4', nameserver6: 'fd12:3456::53',
      dnsSearch: ['a.example', 'b.example'], domainName: 'lan.example', mtu: 9000, mru: 9000, disableHostLoopback: true, verbose: true,
    });
    expect(c.forwards).toEqual([
      { udp: false, hostAddr: '0.0.0.0', hostPort: 8080, guestAddr: '10.0.2.15', guestPort: 80 },
      { udp: false, hostAddr: '127.0.0.1', hostPort: 2222, guestAddr: '10.0.2.15', guestPort: 22 },
      { udp: true, hostAddr: '::1', hostPort: 5353, guestAddr: 'fd12:3456::15', guestPort: 53, ipv6: true },
    ]);
  });

  test('prefix matching of the VNL parser reaches the full names', () => {
    expect(fromVnl('slirp:///vdomain=x.example/disable/restr')).toMatchObject({ domainName: 'x.example', disableHostLoopback: true, restricted: true });
  });
});

describe('slirp:// errors name the option', () => {
  const bad: Array<[string, RegExp]> = [
    ['slirp:///host=10.0.2.300', /^host: "10\.0\.2\.300" is not an IPv4 address/],
    ["slirp:///host='10.0.2.2/31'", /^host: prefix length 31 is out of range 1\.\.30/],
    ["slirp:///host='10.0.2.255/24'", /^host: 10\.0\.2\.255 is the broadcast address/],
    ["slirp:///host='10.0.2.2/x'", /^host: prefix length "x" is not a decimal number/],
    ['slirp:///host6=10.0.2.2', /^host6: "10\.0\.2\.2" is not an IPv6 address/],
    ["slirp:///host6='fd00::2/127'", /^host6: prefix length 127 is out of range 1\.\.126/],
    ['slirp:///vnameserver=10.0.3.3', /^vnameserver: 10\.0\.3\.3 is not a host address in 10\.0\.2\.0\/24/],
    ['slirp:///vnameserver=10.0.2.2', /^vnameserver: 10\.0\.2\.2 is the gateway's own address/],
    ['slirp:///vnameserver6=fd01::3', /^vnameserver6: fd01::3 is outside fd00::\/64/],
    ['slirp:///dhcp=10.0.2.3', /^dhcp: 10\.0\.2\.3 collides/],
    ['slirp:///dhcp=nope', /^dhcp: "nope" is not an IPv4 address/],
    ['slirp:///mtu=67', /^mtu: value 67 is out of range 68\.\.65521/],
    ['slirp:///mru=70000', /^mru: value 70000 is out of range/],
    ['slirp:///mtu=1e3', /^mtu: value "1e3" is not a decimal number/],
    ['slirp:///mtu', /^mtu: needs a value/],
    ['slirp:///restricted=maybe', /^restricted: is a flag/],
    ['slirp:///v4=no/v6=no', /at least one of IPv4 and IPv6/],
    ['slirp:///hostname=bad_name!', /^hostname: "bad_name!" is not a valid domain name/],
    ['slirp:///vdnssearch=a..b', /^vdnssearch: "a\.\.b" is not a valid domain name/],
    ['slirp:///bootfile=' + 'b'.repeat(128), /^bootfile: .* is 128 bytes long \(max 127\)/],
    ['slirp:///tftp_server_name=' + 's'.repeat(64), /^tftp_server_name: .* is 64 bytes long \(max 63\)/],
    ['slirp:///tcpfwd=8080', /^tcpfwd: "8080" is not \[hostIP:\]hport:guestIP:gport/],
    ['slirp:///tcpfwd=0:10.0.2.15:80', /^tcpfwd: "0:10\.0\.2\.15:80": host port 0 is out of range 1\.\.65535/],
    ['slirp:///tcpfwd=80:10.0.2.15:65536', /guest port 65536 is out of range/],
    ['slirp:///tcpfwd=80:guest:22', /guest address "guest" is not an IPv4 address/],
    ['slirp:///tcpfwd=80:192.168.1.5:22', /^tcpfwd: guest address 192\.168\.1\.5 is not a host address in 10\.0\.2\.0\/24/],
    ['slirp:///tcpfwd=1.2.3.4.5:80:10.0.2.15:22', /host address "1\.2\.3\.4\.5" is not an IP address/],
    ['slirp:///tcpfwd=80:10.0.2.15:22,80:10.0.2.16:23', /^tcpfwd: host port 80 on 0\.0\.0\.0 is forwarded twice/],
    ['slirp:///udpfwd=[::1:53:10.0.2.15:53', /^udpfwd: .*unclosed "\["/],
    ['slirp:///tcpfwd=[::1]:8080:10.0.2.15:80', /^tcpfwd: .*host and guest addresses must be of the same family/],
    ['slirp:///tcpfwd=127.0.0.1:8080:[fd00::15]:80', /^tcpfwd: .*host and guest addresses must be of the same family/],
    ["slirp:///unixfwd='5000:/tmp/x'", /^unixfwd: is not supported by this build/],
    ['slirp:///cmdfwd=5000:cat', /^cmdfwd: is not supported by this build/],
  ];
  test.each(bad)('%s', (vnl, re) => {
    let err: unknown;
    try {
      fromVnl(vnl);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SlirpOptionError);
    expect((err as Error).message).toMatch(re);
  });

  test('garbage and oversize values given directly are refused with the option name', () => {
    expect(() => parseSlirpOptions({ hostname: 'x'.repeat(MAX_OPTION_VALUE_CHARS + 1) })).toThrow(/^hostname: value is 4097 characters long/);
    expect(() => parseSlirpOptions({ vdomainname: 'a\u0001b' })).toThrow(/^vdomainname: value "a\\u0001b" contains control characters/);
    expect(() => parseSlirpOptions({ bogus: '1' })).toThrow(/^bogus: unknown option/);
    expect(() => parseSlirpOptions({ tcpfwd: Array(257).fill('1:10.0.2.15:1').map((x, i) => x.replace(/^1/, String(i + 1))).join(',') })).toThrow(/^tcpfwd: 257 forwards \(max 256\)/);
    expect(() => parseSlirpOptions({ vdnssearch: Array(17).fill('a.example').join(',') })).toThrow(/^vdnssearch: 17 domains/);
    expect(() => parseSlirpOptions({ hostname: 'a'.repeat(64) })).toThrow(/^hostname: .* not a valid domain name/);
    expect(() => parseForward('-L', '::::', false)).toThrow(/^-L: "::::" is not/);
  });
});

describe('slirpvde command line', () => {
  test('-D forms are rewritten; other arguments are kept', () => {
    expect(rewriteDhcp(['-D', '/tmp/sw'])).toEqual(['--dhcp-on', '/tmp/sw']);
    expect(rewriteDhcp(['--dhcp=10.0.2.40', '-s', 'x'])).toEqual(['--dhcp-on', '--dhcp-start=10.0.2.40', '-s', 'x']);
    expect(rewriteDhcp(['-D10.0.2.40'])).toEqual(['--dhcp-on', '--dhcp-start=10.0.2.40']);
    expect(rewriteDhcp(['--', '-D'])).toEqual(['--', '-D']);
  });

  test('DHCP is off unless -D; IPv4 only; forwards from -L/-U; errors name the short option', () => {
    expect(slirpvdeConfig({})).toMatchObject({ dhcp: false, v4: true, v6: false, host: '10.0.2.2', nameserver: '10.0.2.3' });
    expect(slirpvdeConfig({ 'dhcp-on': true, 'dhcp-start': '10.0.2.100', host: '10.0.2.0', L: ['2222:10.0.2.15:22'], U: ['5353:10.0.2.15:53'] })).toMatchObject({
      dhcp: true, dhcpStart: '10.0.2.100', host: '10.0.2.2',
      forwards: [
        { udp: false, hostAddr: '0.0.0.0', hostPort: 2222, guestAddr: '10.0.2.15', guestPort: 22 },
        { udp: true, hostAddr: '0.0.0.0', hostPort: 5353, guestAddr: '10.0.2.15', guestPort: 53 },
      ],
    });
    expect(() => slirpvdeConfig({ host: '10.0.2.2/40' })).toThrow(/^-H: prefix length 40/);
    expect(() => slirpvdeConfig({ dns: '1.2.3.4' })).toThrow(/^-N: 1\.2\.3\.4 is not a host address in 10\.0\.2\.0\/24/);
    expect(() => slirpvdeConfig({ 'dhcp-on': true, 'dhcp-start': '10.0.2.2' })).toThrow(/^-D: 10\.0\.2\.2 collides/);
    expect(() => slirpvdeConfig({ L: ['x'] })).toThrow(/^-L: "x" is not/);
  });

  test('buildSlirpConfig keeps explicit values', () => {
    expect(buildSlirpConfig({ host: '192.168.7.1/24', dhcp: false, verbose: true })).toMatchObject({ host: '192.168.7.1', dhcp: false, verbose: true, dhcpStart: '192.168.7.15' });
  });
});
