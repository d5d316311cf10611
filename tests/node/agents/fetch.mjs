// A Node agent as docs/agents.md tells users to write one: Node's built-in fetch ignores
// HTTPS_PROXY, so undici's EnvHttpProxyAgent (which reads HTTPS_PROXY / NO_PROXY) becomes the
// global dispatcher. Trust comes from NODE_EXTRA_CA_CERTS. Prints "STATUS\nBODY".
import { EnvHttpProxyAgent, fetch, setGlobalDispatcher } from 'undici';

setGlobalDispatcher(new EnvHttpProxyAgent());
try {
  const response = await fetch(process.argv[2]);
  console.log(response.status);
  console.log(await response.text());
} catch (error) {
  console.log('ERROR');
  for (let e = error; e; e = e.cause) console.log(String(e)); // the proxy's status is in the causes
}
