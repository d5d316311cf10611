"""Keys: the data key, how it is wrapped (passphrase, key file, OS keychain) and the AES-GCM sealing."""
