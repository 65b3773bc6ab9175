/**
 * The JSON Schema of a vde_lab file (draft 2020-12, checked with ajv). It fixes the shape of
 * every section: switches, hosts, vms, links, nat, groups and tasks. What a schema cannot say
 * (names that must exist, cycles, tasks that cannot run) is checked afterwards in config.ts.
 * `vde_lab schema` prints it, so editors can validate lab files too.
 */

const NAME = '^[A-Za-z][A-Za-z0-9_-]{0,30}$';
const IFNAME = '^[A-Za-z][A-Za-z0-9_.-]{0,14}$';

const impairment = {
  description: 'link emulation per direction, in the syntax of port/impair (README: Link emulation); ab = from a to b',
  type: 'object',
  additionalProperties: false,
  properties: {
    ab: { type: 'string' },
    ba: { type: 'string' },
    both: { type: 'string' },
  },
};

const expect = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'integer', minimum: 0, maximum: 255, description: 'expected exit status (default 0)' },
    output: { type: 'string', description: 'a regular expression the output must match' },
    notOutput: { type: 'string', description: 'a regular expression the output must not match' },
    value: {
      type: 'object',
      description: 'a number taken from the output by the first group of regex, within [min, max]',
      additionalProperties: false,
      required: ['regex'],
      properties: { regex: { type: 'string' }, min: { type: 'number' }, max: { type: 'number' } },
    },
  },
};

/** A section: a mapping from names to items (empty: null). */
function named(item: object): object {
  return { type: ['object', 'null'], propertyNames: { pattern: NAME }, additionalProperties: item };
}

/** The lab file's schema. */
export const LAB_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://vde-ts.invalid/vde_lab.schema.json',
  title: 'vde_lab lab file',
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: NAME, description: 'the lab name: its run directory and `vde_lab down NAME`' },
    switches: named({
      type: ['object', 'null'],
      additionalProperties: false,
      properties: {
        ports: { type: 'integer', minimum: 1, maximum: 65535 },
        hub: { type: 'boolean' },
        stp: { type: 'boolean' },
        vlans: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 4094 } },
        rc: { type: 'array', items: { type: 'string' }, description: 'console commands run at start' },
      },
    }),
    hosts: named({
      type: ['object', 'null'],
      additionalProperties: false,
      properties: {
        interfaces: {
          type: 'object',
          propertyNames: { pattern: IFNAME },
          additionalProperties: {
            type: ['object', 'null'],
            additionalProperties: false,
            properties: {
              addresses: { type: 'array', items: { type: 'string' } },
              mac: { type: 'string', pattern: '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$' },
              mtu: { type: 'integer', minimum: 68, maximum: 9216 },
            },
          },
        },
        routes: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['to'],
            properties: { to: { type: 'string' }, via: { type: 'string' }, dev: { type: 'string' } },
          },
        },
        sysctls: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
        startup: { type: 'string', description: 'a shell command started in the host after its links are up' },
      },
    }),
    vms: named({
      type: 'object',
      additionalProperties: false,
      properties: {
        kernel: { type: 'string' },
        initrd: { type: 'string' },
        append: { type: 'string' },
        disk: { type: 'string' },
        snapshot: { type: 'boolean' },
        memory: { type: 'integer', minimum: 16, maximum: 65536, description: 'MiB' },
        nic: { type: 'string', description: 'QEMU NIC model (default virtio-net-pci)' },
        attach: { enum: ['vde', 'stream'], description: '-netdev vde (default) or -netdev stream' },
        mac: { type: 'string', pattern: '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$' },
        qemu: { type: 'string', description: 'the QEMU binary (default qemu-system-x86_64)' },
        args: { type: 'array', items: { type: 'string' } },
      },
      oneOf: [{ required: ['kernel'] }, { required: ['disk'] }],
    }),
    links: named({
      type: 'object',
      additionalProperties: false,
      required: ['a', 'b'],
      properties: {
        a: { type: 'string', description: 'NODE or HOST:IF' },
        b: { type: 'string', description: 'NODE or HOST:IF' },
        vlan: { type: 'integer', minimum: 1, maximum: 4094 },
        via: { enum: ['local', 'ssh', 'udp', 'vxlan'], description: 'switch to switch only (default local)' },
        ssh: { type: 'string', description: 'via ssh: the destination (default localhost)' },
        port: { type: 'integer', minimum: 1, maximum: 65535, description: 'via udp/vxlan: the first UDP port (b uses port+1)' },
        impair: impairment,
        capture: { type: 'boolean' },
      },
    }),
    nat: named({
      type: 'object',
      additionalProperties: false,
      required: ['switch'],
      properties: {
        switch: { type: 'string' },
        forwards: {
          type: 'array',
          items: { type: 'string', pattern: '^(tcp|udp):.+$', description: 'tcp:[HOSTIP:]HPORT:GUESTIP:GPORT' },
        },
        options: { type: 'string', description: 'more slirp:// options (vdeplug_slirp syntax, / separated)' },
      },
    }),
    groups: named({ type: 'array', items: { type: 'string' }, minItems: 1 }),
    tasks: named({
      type: 'object',
      additionalProperties: false,
      properties: {
        on: { type: 'string', description: 'a host, VM or group (command tasks)' },
        run: { type: 'string', description: 'a shell command' },
        action: { enum: ['link-down', 'link-up', 'impair', 'vm-off', 'vm-on', 'vm-reset', 'capture-start', 'capture-stop', 'wait'] },
        link: { type: 'string' },
        vm: { type: 'string' },
        impair: impairment,
        seconds: { type: 'number', minimum: 0, maximum: 86400 },
        after: { type: 'array', items: { type: 'string' } },
        timeout: { type: 'number', exclusiveMinimum: 0, maximum: 86400, description: 'seconds (default 60)' },
        expect,
      },
      oneOf: [{ required: ['run', 'on'] }, { required: ['action'] }],
    }),
  },
} as const;
