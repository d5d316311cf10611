"""Redaction: the forms a secret takes, the scanners that find them, and the decoded views they scan."""
