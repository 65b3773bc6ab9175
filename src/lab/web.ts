/**
 * The live web view of a running lab (`vde_lab web NAME`, or `--web` on up/run): one page that
 * draws the topology as SVG, colours each node by its state, labels each link with its rates
 * and drops in both directions (the page polls /api/status every second; rates are computed
 * here from the counters between two polls), and offers on each link a capture that downloads
 * as pcapng (/api/capture?link=NAME&seconds=S runs vde_capture on the link's switch port or
 * plug and streams its output). It serves on loopback by default and reads the run directory
 * only: it can be started and stopped at any time while the lab runs.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ownCommand } from './proc.js';
import { readState } from './state.js';
import { labStatus, type LabStatus } from './status.js';

/** Longest capture the page may ask for, seconds. */
export const MAX_WEB_CAPTURE_SECONDS = 300;

/** A running web view. */
export interface WebView { address: string; close(): void }

interface Sample { t: number; links: Map<string, { ab: number; ba: number; abB: number; baB: number; abD: number; baD: number }> }

/** Starts the web view of lab NAME on HOST:PORT. */
export async function serveWeb(name: string, listen: string): Promise<WebView> {
  const m = /^(?:(.*):)?(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) throw new Error(`--listen: "${listen}" is not HOST:PORT`);
  const host = (m[1] ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1');
  let last: Sample | null = null;
  const status = async (): Promise<(LabStatus & { rates: Record<string, unknown> }) | null> => {
    const st = readState(name);
    if (!st) return null;
    const s = await labStatus(st);
    const now: Sample = { t: Date.now(), links: new Map() };
    const rates: Record<string, unknown> = {};
    for (const l of s.links) {
      if (!l.counters) continue;
      const c = { ab: l.counters.ab.frames, ba: l.counters.ba.frames, abB: l.counters.ab.bytes, baB: l.counters.ba.bytes, abD: l.counters.ab.drops, baD: l.counters.ba.drops };
      now.links.set(l.name, c);
      const p = last?.links.get(l.name);
      const dt = last ? (now.t - last.t) / 1000 : 0;
      if (p && dt > 0) {
        rates[l.name] = {
          abFps: Math.max(0, (c.ab - p.ab) / dt), baFps: Math.max(0, (c.ba - p.ba) / dt),
          abBps: Math.max(0, ((c.abB - p.abB) * 8) / dt), baBps: Math.max(0, ((c.baB - p.baB) * 8) / dt),
          abDps: Math.max(0, (c.abD - p.abD) / dt), baDps: Math.max(0, (c.baD - p.baD) / dt),
        };
      }
    }
    last = now;
    return { ...s, rates };
  };
  const server = http.createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('bad request\n');
      return;
    }
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE.replace('__LAB__', name.replace(/[^A-Za-z0-9_-]/g, '')));
      return;
    }
    if (url.pathname === '/api/status') {
      status().then((s) => {
        res.writeHead(s ? 200 : 404, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify(s ?? { error: `lab ${name} is not up` }));
      }, (e: Error) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: e.message }));
      });
      return;
    }
    if (url.pathname === '/api/capture') {
      const st = readState(name);
      const link = url.searchParams.get('link') ?? '';
      const seconds = Number(url.searchParams.get('seconds') ?? '5');
      const l = st?.config?.links[link];
      const r = st?.links[link];
      if (!st || !l || !r || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_WEB_CAPTURE_SECONDS) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end(`no link "${link}" or seconds not in (0, ${MAX_WEB_CAPTURE_SECONDS}]\n`);
        return;
      }
      const where = l.type === 'host-switch' ? [st.switches[l.b.node].mgmt, String(r.port)] : l.type === 'vm-switch' ? [st.switches[l.b.node].mgmt, String(st.vms[l.a.node].port)] : [r.mgmts[0]];
      const argv = ownCommand('vde_capture', ['-q', '-w', '-', '--duration', String(seconds), ...where]);
      const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
      child.on('error', () => res.destroy());
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-disposition': `attachment; filename="${name}-${link}.pcapng"` });
      child.stdout.pipe(res);
      res.on('close', () => child.kill('SIGINT'));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`--listen ${listen}: ${e.message}`)));
    server.listen(Number(m[2]), host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return { address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`, close: () => { server.closeAllConnections(); server.close(); } };
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>vde_lab __LAB__</title>
<style>
body{font-family:sans-serif;margin:0;display:flex;height:100vh}
#map{flex:1}#side{width:420px;overflow:auto;padding:8px;border-left:1px solid #ccc;font-size:13px}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:2px 4px;text-align:left}
.running{fill:#9be39b}.exited{fill:#f08080}.off{fill:#ccc}.down{stroke:#d33;stroke-dasharray:6 4}
text{font-size:12px}.rate{font-size:10px;fill:#333}
</style></head>
<body><svg id="map"></svg><div id="side"><h3>lab <span id="lab">__LAB__</span></h3>
<div id="err"></div><h4>nodes</h4><table id="nodes"></table><h4>links</h4><table id="links"></table></div>
<script>
const fmt=(b)=>b>=1e9?(b/1e9).toFixed(2)+' Gbit/s':b>=1e6?(b/1e6).toFixed(2)+' Mbit/s':b>=1e3?(b/1e3).toFixed(1)+' kbit/s':Math.round(b)+' bit/s';
const esc=(s)=>String(s).replace(/[&<>"]/g,(c)=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
let pos={};
function layout(s){
  const W=document.getElementById('map').clientWidth||800,H=document.getElementById('map').clientHeight||600;
  const sw=s.nodes.filter(n=>n.kind==='switch'),other=s.nodes.filter(n=>n.kind!=='switch');
  const cx=W/2,cy=H/2,r1=Math.min(W,H)*0.2,r2=Math.min(W,H)*0.42;
  sw.forEach((n,i)=>{pos[n.name]=[cx+r1*Math.cos(2*Math.PI*i/Math.max(1,sw.length)),cy+r1*Math.sin(2*Math.PI*i/Math.max(1,sw.length))]});
  other.forEach((n,i)=>{pos[n.name]=[cx+r2*Math.cos(2*Math.PI*i/Math.max(1,other.length)+0.3),cy+r2*Math.sin(2*Math.PI*i/Math.max(1,other.length)+0.3)]});
}
function draw(s){
  layout(s);
  let g='';
  for(const l of s.links){
    const a=pos[l.a.split(':')[0]],b=pos[l.b.split(':')[0]];if(!a||!b)continue;
    const r=s.rates[l.name];
    g+='<line data-link="'+esc(l.name)+'" x1="'+a[0]+'" y1="'+a[1]+'" x2="'+b[0]+'" y2="'+b[1]+'" stroke="#555" stroke-width="2" class="'+(l.up?'':'down')+'"/>';
    g+='<text class="rate" x="'+(a[0]+b[0])/2+'" y="'+(a[1]+b[1])/2+'">'+esc(l.name)+(r?' → '+fmt(r.abBps)+' ← '+fmt(r.baBps):'')+'</text>';
  }
  for(const n of s.nodes){
    const p=pos[n.name];if(!p)continue;
    g+=(n.kind==='switch'?'<rect x="'+(p[0]-22)+'" y="'+(p[1]-12)+'" width="44" height="24"':'<circle cx="'+p[0]+'" cy="'+p[1]+'" r="16"')+' class="'+n.state+'" stroke="#333" data-node="'+esc(n.name)+'"/>';
    g+='<text x="'+(p[0]+20)+'" y="'+(p[1]-14)+'">'+esc(n.name)+'</text>';
  }
  document.getElementById('map').innerHTML=g;
  document.getElementById('nodes').innerHTML='<tr><th>node</th><th>kind</th><th>state</th></tr>'+s.nodes.map(n=>'<tr data-node="'+esc(n.name)+'"><td>'+esc(n.name)+'</td><td>'+n.kind+'</td><td class="state">'+n.state+'</td></tr>').join('');
  document.getElementById('links').innerHTML='<tr><th>link</th><th>a→b</th><th>b→a</th><th>drops/s</th><th></th></tr>'+s.links.map(l=>{const r=s.rates[l.name];const c=l.counters;
    return '<tr data-link="'+esc(l.name)+'"><td>'+esc(l.name)+(l.up?'':' (down)')+'</td><td class="ab">'+(r?fmt(r.abBps):'-')+(c?' ('+c.ab.frames+')':'')+'</td><td class="ba">'+(r?fmt(r.baBps):'-')+(c?' ('+c.ba.frames+')':'')+'</td><td class="drops">'+(r?(r.abDps+r.baDps).toFixed(1):'-')+'</td><td><a class="capture" href="/api/capture?link='+encodeURIComponent(l.name)+'&seconds=3" download>capture 3 s</a></td></tr>'}).join('');
}
async function poll(){
  try{const r=await fetch('/api/status');const s=await r.json();if(s.error)throw new Error(s.error);document.getElementById('err').textContent='';draw(s);document.body.dataset.polls=String(Number(document.body.dataset.polls||0)+1);}
  catch(e){document.getElementById('err').textContent=String(e.message||e);}
  setTimeout(poll,1000);
}
poll();
</script></body></html>
`;
