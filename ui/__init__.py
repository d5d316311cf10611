"""The local web page: audit review and approvals, on 127.0.0.1 with an access token."""
