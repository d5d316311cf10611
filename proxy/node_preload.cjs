'use strict';
// clavis-mcp: send Node's built-in fetch through HTTPS_PROXY.
//
// `clavis-mcp env` and `clavis-mcp run` load this with NODE_OPTIONS=--require. Node before 24.5
// (22.21 on the 22 line) ignores HTTPS_PROXY in its built-in fetch, and the undici inside Node is
// not importable, so this file reaches it through the global dispatcher slot that fetch shares
// with every copy of undici: calling fetch() with no argument loads Node's undici and creates its
// default Agent synchronously; a new Agent of the same class, whose `connect` opens a CONNECT
// tunnel through the proxy (Proxy-Authorization from the URL's user:token), takes its place.
// Trust is Node's own, plus NODE_EXTRA_CA_CERTS (the bundle `env` points to). NO_PROXY is honoured.
// Newer Node does this itself when NODE_USE_ENV_PROXY=1 (which `env` also sets): then nothing here runs.
// No dependency: it must work for any project, without undici from npm.

const net = require('node:net');
const tls = require('node:tls');

const SLOT = Symbol.for('undici.globalDispatcher.1');
const HANDSHAKE_TIMEOUT_MS = 30000;
const MAX_HEAD = 16384;

function nativeEnvProxy() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  const supported = major > 24 || (major === 24 && minor >= 5) || (major === 22 && minor >= 21);
  return supported && /^(1|true)$/i.test(process.env.NODE_USE_ENV_PROXY || '');
}

// As undici's EnvHttpProxyAgent reads them: https URLs use HTTPS_PROXY (else HTTP_PROXY), http URLs HTTP_PROXY.
function proxyUrl(secure) {
  const env = process.env;
  const http = env.HTTP_PROXY || env.http_proxy;
  const raw = secure ? env.HTTPS_PROXY || env.https_proxy || http : http;
  if (!raw) return null;
  try {
    const url = new URL(raw);
    return url.protocol === 'http:' ? url : null;
  } catch {
    return null;
  }
}

function bare(host) {
  return host.replace(/^\[/, '').replace(/\]$/, '').toLowerCase();
}

// curl's reading of NO_PROXY: `*`, a name (which also covers its subdomains), `.domain`, an
// address, each optionally with :port.
function bypassed(host, port) {
  const list = process.env.NO_PROXY ?? process.env.no_proxy ?? '';
  for (let entry of list.split(/[\s,]+/)) {
    entry = entry.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    let entryPort = null;
    const v6 = entry.match(/^\[(.*)\](?::(\d+))?$/);
    if (v6) {
      entry = v6[1];
      entryPort = v6[2] ? Number(v6[2]) : null;
    } else if (/^[^:]*:\d+$/.test(entry)) {
      const at = entry.lastIndexOf(':');
      entryPort = Number(entry.slice(at + 1));
      entry = entry.slice(0, at);
    }
    if (entryPort !== null && entryPort !== port) continue;
    entry = entry.replace(/^\*?\./, '');
    if (host === entry || host.endsWith('.' + entry)) return true;
  }
  return false;
}

function basicAuth(proxy) {
  const user = decodeURIComponent(proxy.username);
  return user ? Buffer.from(`${user}:${decodeURIComponent(proxy.password)}`).toString('base64') : null;
}

function tunnel() {
  return function connect(opts, callback) {
    const secure = opts.protocol === 'https:';
    const host = bare(opts.hostname);
    const port = Number(opts.port) || (secure ? 443 : 80);
    const proxy = proxyUrl(secure);
    let done = false;
    const finish = (error, socket) => {
      if (done) return;
      done = true;
      if (error) {
        raw.destroy();
        callback(error, null);
      } else {
        raw.setTimeout(0);
        callback(null, socket);
      }
    };
    const upgrade = () => {
      if (!secure) return finish(null, raw);
      const servername = opts.servername || (net.isIP(host) ? undefined : host);
      const socket = tls.connect({ socket: raw, host, servername, ALPNProtocols: ['http/1.1'] });
      socket.once('secureConnect', () => finish(null, socket));
      socket.once('error', (error) => finish(error));
    };
    const direct = !proxy || bypassed(host, port);
    const raw = net.connect(direct ? { host, port } : { host: bare(proxy.hostname), port: Number(proxy.port) || 80 });
    raw.setTimeout(HANDSHAKE_TIMEOUT_MS, () => finish(new Error(`clavis-mcp proxy: no answer for ${host}:${port}`)));
    raw.once('error', (error) => finish(error));
    if (direct) {
      raw.once('connect', upgrade);
      return;
    }
    raw.once('connect', () => {
      const target = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
      const headers = [`CONNECT ${target} HTTP/1.1`, `Host: ${target}`];
      const auth = basicAuth(proxy);
      if (auth) headers.push(`Proxy-Authorization: Basic ${auth}`);
      raw.write(headers.join('\r\n') + '\r\n\r\n');
    });
    let head = Buffer.alloc(0);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_HEAD) finish(new Error('clavis-mcp proxy: answer to CONNECT too long'));
        return;
      }
      raw.removeListener('data', onData);
      raw.pause();
      const text = head.subarray(0, end).toString('latin1');
      const rest = head.subarray(end + 4);
      if (rest.length) raw.unshift(rest);
      const status = Number(text.split(' ')[1]);
      if (status === 200) return upgrade();
      const reason = (text.match(/^x-clavis-refused:\s*(.*)$/im) || [])[1];
      const line = text.split('\r\n')[0];
      finish(new Error(`proxy answered CONNECT ${target()} with ${line}${reason ? `: ${reason}` : ''}`));
    };
    const target = () => `${host}:${port}`;
    raw.on('data', onData);
  };
}

function install() {
  if (nativeEnvProxy() || typeof globalThis.fetch !== 'function') return;
  if (!proxyUrl(true) && !proxyUrl(false)) return;
  if (globalThis[SLOT] === undefined) {
    try {
      globalThis.fetch().catch(() => {}); // loads Node's undici and its default Agent, sends nothing
    } catch {
      return;
    }
  }
  const current = globalThis[SLOT];
  if (!current || typeof current.constructor !== 'function') return;
  const Agent = current.constructor;
  globalThis[SLOT] = new Agent({ connect: tunnel() });
}

install();
