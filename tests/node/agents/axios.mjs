// A Node agent using axios, as docs/agents.md describes: axios reads HTTPS_PROXY / NO_PROXY
// itself (proxy-from-env) and trusts NODE_EXTRA_CA_CERTS through Node's https. Prints "STATUS\nBODY".
import axios from 'axios';

try {
  const response = await axios.get(process.argv[2], { responseType: 'text', transformResponse: (body) => body });
  console.log(response.status);
  console.log(response.data);
} catch (error) {
  console.log('ERROR');
  console.log(String(error));
  if (error.response) console.log(error.response.status, error.response.data);
}
