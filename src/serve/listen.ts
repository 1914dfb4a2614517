// Binding the server's socket: a failure (port taken, an address this machine does not have, a
// privileged port) becomes one line naming host:port, and a success reports the address actually
// bound, so `--host 0.0.0.0` is shown as what it is (every interface), not as 127.0.0.1.

import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { OpenELMError } from '../core/errors.js';

/** host:port as a URL writes it (IPv6 in brackets). */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Does this bound address only accept connections from this machine? */
export function isLoopback(address: string): boolean {
  const a = address.toLowerCase();
  return a === '::1' || a === 'localhost' || /^127\./.test(a) || /^::ffff:127\./.test(a);
}

function listenError(e: NodeJS.ErrnoException, host: string, port: number): OpenELMError {
  const where = hostPort(host, port);
  switch (e.code) {
    case 'EADDRINUSE':
      return new OpenELMError('serve', `${where} is already in use (another server is listening there); stop it or choose another port (port 0 picks a free one)`);
    case 'EADDRNOTAVAIL':
      return new OpenELMError('serve', `cannot listen on ${where}: ${host} is not an address of this machine (use 127.0.0.1 for this machine only, 0.0.0.0 for every interface)`);
    case 'EACCES':
    case 'EPERM':
      return new OpenELMError('serve', `cannot listen on ${where}: permission denied (ports below 1024 need extra privileges; choose a port such as 8080)`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new OpenELMError('serve', `cannot listen on ${where}: the host name ${host} does not resolve to an address`);
    default:
      return new OpenELMError('serve', `cannot listen on ${where}: ${e.message}`);
  }
}

export interface Bound {
  /** The address the socket is bound to, e.g. 127.0.0.1, 0.0.0.0 or ::. */
  address: string;
  port: number;
  /** http://host:port of the bound address. */
  url: string;
  /** False when other machines can connect (not a loopback address). */
  loopback: boolean;
}

/** Listen on host:port; rejects with one line naming host:port when the socket cannot be bound. */
export function listen(server: http.Server, host: string, port: number): Promise<Bound> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => reject(listenError(e, host, port));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const a = server.address() as AddressInfo;
      resolve({ address: a.address, port: a.port, url: `http://${hostPort(a.address, a.port)}`, loopback: isLoopback(a.address) });
    });
  });
}
