"""OAuth2: configuration, grants and PKCE, the refresh lease, and the token endpoint client."""
