// Unit tests of option handling: vde2 permission derivations, single-dash long options, strict
// integer parsing and the conversion of CLI arguments into switch options (--vhost-user too).
import { describe, expect, it } from 'vitest';
import { intOption, normalizeLongOnly } from '../../src/core/cli.js';
import { deriveModes, parseOctal } from '../../src/core/perms.js';
import { parseSwitchArgs, toOptions } from '../../src/switch/main.js';

describe('deriveModes', () => {
  it('uses 0600/02700 by default', () => expect(deriveModes()).toEqual({ mode: 0o600, dirmode: 0o2700 }));
  it('derives the directory mode from -m as vde2', () => {
    expect(deriveModes(0o660).dirmode).toBe(0o2770);
    expect(deriveModes(0o666).dirmode).toBe(0o2777);
    expect(deriveModes(0o640).dirmode).toBe(0o2750);
  });
  it('derives the socket mode from --dirmode', () => expect(deriveModes(undefined, 0o2775).mode).toBe(0o664));
});

describe('parsers', () => {
  it('parses octal modes strictly', () => {
    expect(parseOctal('0660')).toBe(0o660);
    expect(parseOctal('660')).toBe(0o660);
    for (const bad of ['', '999', '0x1f', 'abc', '066600']) expect(parseOctal(bad)).toBeUndefined();
  });
  it('rewrites single-dash long options only when they are known', () => {
    expect(normalizeLongOnly(['-sock', '/x', '-hub', '-s', '/y', '-xF', '-numports=4', '--', '-sock'], ['sock', 'hub', 'numports'])).toEqual([
      '--sock', '/x', '--hub', '-s', '/y', '-xF', '--numports=4', '--', '-sock',
    ]);
  });
  it('rejects non-integers and out-of-range values with the option name', () => {
    expect(intOption('numports', '12', 1, 100)).toBe(12);
    expect(() => intOption('numports', '1e3')).toThrow(/--numports: "1e3" is not a whole number/);
    expect(() => intOption('numports', '-1')).toThrow(/not a whole number/);
    expect(() => intOption('numports', '0', 1)).toThrow(/out of range 1\.\./);
  });
  it('turns arguments into switch options with vde2 defaults', () => {
    const o = toOptions({ sock: '/tmp/x', numports: '32', priority: '32768', hashsize: '128', 'foreign-tags': 'pass' });
    expect(o).toMatchObject({ dir: '/tmp/x', numPorts: 32, mode: 0o600, dirmode: 0o2700, mgmtMode: 0o600, hub: false, stdinConsole: true, foreignTags: 'pass' });
    expect(() => toOptions({ sock: '/tmp/x', numports: '32', priority: '70000', hashsize: '1' })).toThrow(/--priority: 70000 is out of range/);
  });
});

describe('--vhost-user', () => {
  it('repeats, keeps the paths, and reads single-dash and prefix forms', async () => {
    const { opts } = await parseSwitchArgs(['-s', '/tmp/x', '--vhost-user', '/tmp/a.sock', '-vhost-user', '/tmp/b.sock', '--vhost', '/tmp/c.sock']);
    expect(opts?.vhostUser).toEqual(['/tmp/a.sock', '/tmp/b.sock', '/tmp/c.sock']);
    expect((await parseSwitchArgs(['-s', '/tmp/x'])).opts?.vhostUser).toEqual([]);
  });
  it('refuses a relative, too long or missing path with the option name', async () => {
    await expect(parseSwitchArgs(['--vhost-user', 'a.sock'])).rejects.toThrow(/--vhost-user: "a\.sock" must be an absolute path/);
    await expect(parseSwitchArgs(['--vhost-user', `/tmp/${'x'.repeat(120)}`])).rejects.toThrow(/--vhost-user: .* is too long for a unix socket/);
    await expect(parseSwitchArgs(['--vhost-user'])).rejects.toThrow(/vhost-user/);
  });
});
