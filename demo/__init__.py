"""The end-to-end demo (`make demo`) and the loopback HTTPS upstream it shares with the tests."""
