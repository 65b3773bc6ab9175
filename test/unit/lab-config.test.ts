// vde_lab's lab file: schema errors and semantic errors name the line and the field; the task
// graph is checked for cycles, unknown names and tasks that cannot run; garbage, truncated and
// oversize input is refused with a message, never a crash; plan() applies only the difference.
import { describe, expect, it } from 'vitest';
import { LabFileError, parseLab } from '../../src/lab/config.js';
import { plan } from '../../src/lab/plan.js';

const BASE = `name: t
switches:
  s1: {}
  s2: {}
hosts:
  h1:
    interfaces:
      eth0: {addresses: [10.0.0.1/24]}
  h2:
    interfaces:
      eth0: {addresses: [10.0.0.2/24]}
links:
  l1: {a: 'h1:eth0', b: s1}
  l2: {a: s2, b: 'h2:eth0'}
  c: {a: s1, b: s2, impair: {ab: delay 10ms}}
`;

/** The problems parseLab reports for text (empty when it parses). */
function problems(text: string): string[] {
  try {
    parseLab(text, 'lab.yaml');
    return [];
  } catch (e) {
    if (!(e instanceof LabFileError)) throw e;
    return e.problems;
  }
}

describe('lab file', () => {
  it('a valid file normalizes: link ends ordered, impairment directions follow', () => {
    const c = parseLab(BASE);
    expect(c.links.l2.a).toEqual({ node: 'h2', kind: 'host', ifname: 'eth0' });
    expect(c.links.l2.type).toBe('host-switch');
    expect(c.links.c).toMatchObject({ type: 'switch-switch', ab: 'delay 10ms', ba: '', via: 'local' });
    expect(c.switches.s1.ports).toBe(32);
  });

  it('schema errors name the line and the field', () => {
    const p = problems(`${BASE}  l3: {a: 'h1:eth1', b: s1, colour: red}\n`);
    expect(p).toEqual([`lab.yaml:16:37: links.l3: unknown field "colour"`]);
    expect(problems(BASE.replace('s2: {}', 's2: {ports: many}'))[0]).toMatch(/^lab\.yaml:4:15: switches\.s2\.ports: must be integer/);
    expect(problems(BASE.replace('name: t', 'name: 7up'))[0]).toMatch(/^lab\.yaml:1:7: name: must match pattern/);
  });

  it('unknown nodes, bad addresses and unused interfaces are named with their line', () => {
    expect(problems(BASE.replace("b: s1}", "b: s9}"))).toEqual(['lab.yaml:13:25: links.l1.b: unknown node "s9"']);
    expect(problems(BASE.replace('10.0.0.1/24', '10.0.0.300/24'))[0]).toMatch(/^lab\.yaml:8:26: hosts\.h1\.interfaces\.eth0\.addresses\[0\]: "10\.0\.0\.300\/24" is not an address/);
    expect(problems(BASE.replace("eth0: {addresses: [10.0.0.2/24]}", "eth0: {addresses: [10.0.0.2/24]}\n      eth1: {}"))).toEqual(['lab.yaml:12:13: hosts.h2.interfaces.eth1: interface eth1 is not the end of any link']);
    expect(problems(`${BASE}  l4: {a: 'h1:eth0', b: s2}\n`)[0]).toMatch(/links\.l4\.a: h1:eth0 is already the end of link "l1"/);
  });

  it('YAML syntax errors give the line', () => {
    expect(problems('name: t\nswitches: {s1: [\n')[0]).toMatch(/^lab\.yaml:\d+:\d+: /);
    expect(problems('name: t\nname: u\n')[0]).toMatch(/^lab\.yaml:2:1: Map keys must be unique/);
  });

  it('garbage, truncation and oversize input are refused with a message', () => {
    for (const text of ['', '\0\0\0', '- a\n- b\n', '{{{{', 'name', BASE.slice(0, 57), `name: ${'x'.repeat(100000)}`, '\u{1F600}: [', `${'['.repeat(5000)}`]) {
      const p = problems(text);
      expect(p.length, JSON.stringify(text.slice(0, 40))).toBeGreaterThan(0);
      for (const line of p) expect(line).toMatch(/^lab\.yaml:\d+:\d+: /);
    }
    // many nodes are fine
    const big = `name: big\nswitches:\n${Array.from({ length: 500 }, (_, i) => `  s${i}: {}\n`).join('')}`;
    expect(Object.keys(parseLab(big).switches)).toHaveLength(500);
  });

  it('tasks: cycles, unknown names, missing fields', () => {
    const t = (tasks: string): string[] => problems(`${BASE}tasks:\n${tasks}`);
    expect(t('  a: {on: h1, run: "true", after: [b]}\n  b: {on: h1, run: "true", after: [a]}\n')).toEqual(['lab.yaml:17:35: tasks.a.after: the tasks form a cycle: a -> b -> a']);
    expect(t('  a: {on: h7, run: "true"}\n')).toEqual(['lab.yaml:17:11: tasks.a.on: unknown host, VM or group "h7"']);
    expect(t('  a: {on: s1, run: "true"}\n')[0]).toMatch(/"s1" is a switch/);
    expect(t('  a: {action: link-down, link: nope}\n')).toEqual(['lab.yaml:17:32: tasks.a.link: unknown link "nope"']);
    expect(t('  a: {on: h1, run: "true", after: [zz]}\n')).toEqual(['lab.yaml:17:36: tasks.a.after[0]: unknown task "zz"']);
    expect(t('  a: {on: h1}\n')[0]).toMatch(/tasks\.a: a task needs either "on" and "run"/);
    expect(t('  a: {action: wait}\n')[0]).toMatch(/tasks\.a\.seconds: wait needs "seconds"/);
    expect(t('  a: {on: h1, run: x, expect: {output: "(("}}\n')[0]).toMatch(/tasks\.a\.expect\.output: not a regular expression/);
  });

  it('a command on a VM that an earlier task powered off cannot run', () => {
    const vm = `${BASE}vms:\n  v1: {kernel: /k}\ntasks:\n`;
    const off = '  off: {action: vm-off, vm: v1}\n';
    expect(problems(`${vm}${off}  cmd: {on: v1, run: "true", after: [off]}\n`)).toEqual([
      'lab.yaml:20:8: tasks.cmd: runs on VM "v1", which task "off" powers off before it (add a vm-on task between them)',
    ]);
    // powered on again in between: fine; in a group: caught too
    expect(problems(`${vm}${off}  on: {action: vm-on, vm: v1, after: [off]}\n  cmd: {on: v1, run: "true", after: [on]}\n`)).toEqual([]);
    expect(problems(`${vm.replace('tasks:\n', 'groups:\n  g: [h1, v1]\ntasks:\n')}${off}  cmd: {on: g, run: "true", after: [off]}\n`)[0]).toMatch(/runs on VM "v1"/);
    expect(problems(`${vm}  stop: {action: capture-stop, link: l1}\n`)[0]).toMatch(/stops a capture of link "l1" that no earlier task starts/);
  });
});

describe('plan', () => {
  it('from nothing: everything is created in order', () => {
    const ops = plan(null, parseLab(BASE)).map((a) => `${a.op} ${a.name}`);
    expect(ops).toEqual(['create-switch s1', 'create-switch s2', 'create-host h1', 'create-host h2', 'create-link c', 'create-link l1', 'create-link l2', 'host-routes h1', 'host-routes h2']);
  });

  it('the same file again: nothing to do', () => {
    expect(plan(parseLab(BASE), parseLab(BASE))).toEqual([]);
  });

  it('a changed impairment is changed in place, a new host is added alone', () => {
    const next = parseLab(`${BASE.replace('delay 10ms', 'delay 30ms')}`.replace('hosts:\n', 'hosts:\n  h3:\n    interfaces:\n      eth0: {addresses: [10.0.0.3/24]}\n') + "  l3: {a: 'h3:eth0', b: s2}\n");
    expect(plan(parseLab(BASE), next)).toEqual([
      { op: 'create-host', name: 'h3' },
      { op: 'create-link', name: 'l3' },
      { op: 'impair-link', name: 'c', ab: 'delay 30ms', ba: '' },
      { op: 'host-routes', name: 'h3' },
    ]);
  });

  it('a changed switch takes its links with it; a removed host goes with its link', () => {
    const next = parseLab(BASE.replace('s1: {}', 's1: {ports: 64}'));
    expect(plan(parseLab(BASE), next).map((a) => `${a.op} ${a.name}`)).toEqual([
      'destroy-link c', 'destroy-link l1', 'destroy-switch s1', 'create-switch s1', 'create-link c', 'create-link l1', 'host-routes h1',
    ]);
    const fewer = parseLab(BASE.replace(/ {2}h2:\n.*\n.*\n/, '').replace(/ {2}l2:.*\n/, ''));
    expect(plan(parseLab(BASE), fewer).map((a) => `${a.op} ${a.name}`)).toEqual(['destroy-link l2', 'destroy-host h2']);
  });
});

describe('task expectations', () => {
  const task = (expect: object, timeoutSeconds = 5) => parseLab(`${BASE}tasks:\n  t: {on: h1, run: x, timeout: ${timeoutSeconds}, expect: ${JSON.stringify(expect)}}\n`).tasks.t;
  it('status, output, notOutput and value are checked', async () => {
    const { checkExpect } = await import('../../src/lab/tasks.js');
    const ok = { status: 0, timedOut: false, output: 'rtt min/avg/max/mdev = 40.1/41/42/1 ms\n3 received\n' };
    expect(checkExpect(task({}), ok).problem).toBeNull();
    expect(checkExpect(task({ status: 1 }), ok).problem).toBe('exit status 0, expected 1');
    expect(checkExpect(task({}), { ...ok, status: null, timedOut: true }).problem).toBe('timed out after 5 s');
    expect(checkExpect(task({ output: '^3 received$' }), ok).problem).toBeNull();
    expect(checkExpect(task({ notOutput: 'received' }), ok).problem).toBe('output matches /received/');
    const v = { regex: 'mdev = ([\\d.]+)', min: 30, max: 40 };
    expect(checkExpect(task({ value: v }), ok)).toEqual({ problem: 'value 40.1 is above 40', value: 40.1 });
    expect(checkExpect(task({ value: { ...v, max: 50 } }), ok)).toEqual({ problem: null, value: 40.1 });
    expect(checkExpect(task({ value: { regex: 'nothing (\\d+)' } }), ok).problem).toMatch(/no number/);
  });
});
