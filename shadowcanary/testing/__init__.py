"""Public test helpers: real throwaway servers and event factories for tests and benchmarks."""
