//! Test support lives in the integration tests; this crate has no library code.
