"""Test harness helpers: throwaway servers and fixtures shared by tests and benchmarks."""
