// netbench.js is the client side of the bench's network group (see
// network.go), run by node in the VM and on the host. It times each
// operation with process.hrtime and prints one JSON object on stdout:
// {"arms": [{"label", "ns": [per-operation nanoseconds], "codes": {outcome: count}}]}.
//
//   node netbench.js conns K WARM ARM...
//       K fresh TCP connections per arm (agent: false, Connection: close),
//       each a GET whose body is read to the end and whose socket is closed.
//       ARM is LABEL=URL, LABEL=URL,HOST (connect to URL's address, send
//       Host: HOST) or LABEL=local (a `serve` child on 127.0.0.1). The arms
//       take turns connection by connection, the first rotating; WARM
//       untimed rounds come first.
//   node netbench.js dns SERVER R WARM NAME...
//       R resolve4(NAME) per name through a dns.promises.Resolver whose only
//       server is SERVER (ip or ip:port), names taking turns as above.
//       A NAME written gai:NAME is looked up with dns.promises.lookup
//       instead, as node's http does before it connects (getaddrinfo with
//       the system's resolver: SERVER does not apply). Failures are
//       outcomes (their codes), not errors.
//   node netbench.js serve
//       A tiny HTTP server on 127.0.0.1; prints its port.
'use strict';
const http = require('http');
const { spawn } = require('child_process');
const dns = require('dns');
const { Resolver } = dns.promises;

const now = () => process.hrtime.bigint();
const body = 'ok\n';

function serve() {
  const srv = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length, Connection: 'close' });
    res.end(body);
  });
  srv.listen(0, '127.0.0.1', () => process.stdout.write(srv.address().port + '\n'));
}

// startLocal runs `serve` in a child process and resolves to its port.
function startLocal() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename, 'serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.on('error', reject);
    child.on('exit', code => reject(new Error('local server exited ' + code)));
    child.stdout.on('data', d => {
      out += d;
      if (out.includes('\n')) resolve({ child, port: Number(out.trim()) });
    });
  });
}

// get does one request on a fresh connection and resolves once the body has
// ended and the socket is closed.
function get(t) {
  return new Promise((resolve, reject) => {
    let ended = false;
    const headers = { Connection: 'close' };
    if (t.hostHeader) headers.Host = t.hostHeader;
    const req = http.get({ host: t.host, port: t.port, path: t.path, agent: false, headers }, res => {
      let n = 0;
      res.on('data', c => { n += c.length; });
      res.on('end', () => {
        if (res.statusCode !== 200 || n !== body.length) {
          req.destroy(new Error(`${t.label}: HTTP ${res.statusCode}, ${n} bytes`));
          return;
        }
        ended = true;
      });
    });
    req.setTimeout(30000, () => req.destroy(new Error(`${t.label}: no answer within 30 s`)));
    req.on('error', reject);
    req.on('close', () => (ended ? resolve() : reject(new Error(`${t.label}: closed before the body ended`))));
  });
}

async function conns(k, warm, specs) {
  const arms = [];
  const children = [];
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const label = spec.slice(0, eq);
    let rest = spec.slice(eq + 1);
    const t = { label, path: '/' };
    if (rest === 'local') {
      const { child, port } = await startLocal();
      children.push(child);
      Object.assign(t, { host: '127.0.0.1', port });
    } else {
      const comma = rest.indexOf(',');
      if (comma >= 0) {
        t.hostHeader = rest.slice(comma + 1);
        rest = rest.slice(0, comma);
      }
      const u = new URL(rest);
      Object.assign(t, { host: u.hostname, port: Number(u.port) || 80, path: u.pathname });
    }
    arms.push({ label, t, ns: [], codes: {} });
  }
  try {
    for (let i = 0; i < warm + k; i++) {
      for (let j = 0; j < arms.length; j++) {
        const a = arms[(i + j) % arms.length];
        const t0 = now();
        await get(a.t);
        const d = Number(now() - t0);
        if (i >= warm) {
          a.ns.push(d);
          a.codes.ok = (a.codes.ok || 0) + 1;
        }
      }
    }
  } finally {
    for (const c of children) {
      c.removeAllListeners('exit');
      c.kill();
    }
  }
  return arms.map(({ label, ns, codes }) => ({ label, ns, codes }));
}

async function lookups(server, r, warm, names) {
  const res = new Resolver({ timeout: 5000, tries: 1 });
  res.setServers([server]);
  const arms = names.map(label => ({ label, ns: [], codes: {} }));
  // net.connect's lookup (lib/net.js): getaddrinfo, any family, ADDRCONFIG.
  const gaiOpts = { all: true, hints: dns.ADDRCONFIG };
  for (let i = 0; i < warm + r; i++) {
    for (let j = 0; j < arms.length; j++) {
      const a = arms[(i + j) % arms.length];
      let code = 'ok';
      const t0 = now();
      try {
        const addrs = a.label.startsWith('gai:')
          ? await dns.promises.lookup(a.label.slice(4), gaiOpts)
          : await res.resolve4(a.label);
        if (addrs.length === 0) code = 'empty';
      } catch (e) {
        code = e.code || String(e);
      }
      const d = Number(now() - t0);
      if (i >= warm) {
        a.ns.push(d);
        a.codes[code] = (a.codes[code] || 0) + 1;
      }
    }
  }
  return arms;
}

async function main() {
  const [mode, ...args] = process.argv.slice(2);
  let arms;
  switch (mode) {
    case 'serve':
      return serve();
    case 'conns':
      arms = await conns(Number(args[0]), Number(args[1]), args.slice(2));
      break;
    case 'dns':
      arms = await lookups(args[0], Number(args[1]), Number(args[2]), args.slice(3));
      break;
    default:
      throw new Error('usage: netbench.js conns|dns|serve ...');
  }
  process.stdout.write(JSON.stringify({ arms }) + '\n');
}

main().catch(e => {
  console.error('netbench.js:', e && e.stack ? e.stack : e);
  process.exit(1);
});
