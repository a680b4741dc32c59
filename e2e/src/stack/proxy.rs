//! The proxy as tests and the demo start it (filled in with the proxy).
