//! A local Ory (Kratos public API) emulator for the integration tests, the demo and the
//! benchmarks. Not used by the proxy itself.
