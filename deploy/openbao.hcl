# OpenBao for clavis-mcp team mode (deploy/compose.yaml). Integrated storage (Raft) on a volume.
# TLS is off on the listener because it is reachable only on compose's internal `backend` network;
# when OpenBao is shared or on another host, give it tls_cert_file/tls_key_file and an https address.
storage "raft" {
  path    = "/openbao/data"
  node_id = "openbao-1"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = 1
}

# Auto-unseal (recommended): uncomment one seal stanza so a restart needs no person, e.g.
# seal "awskms" { region = "eu-west-1"  kms_key_id = "alias/clavis-openbao" }
# seal "transit" { address = "https://other-openbao:8200"  key_name = "clavis-unseal"  mount_path = "transit/" }

api_addr      = "http://openbao:8200"
cluster_addr  = "http://openbao:8201"
disable_mlock = false
ui            = false
