//! Tests of the boot environment codecs: fixtures made by Debian's `mkenvimage`, `fw_setenv`
//! and `grub-editenv` (kept in the fuzz seed corpus), round trips, torn writes, flag
//! wrap-around and NOR boolean flags, grubenv escapes and overflow.

mod grub;
mod uboot;

use super::Env;
use alloc::vec::Vec;

/// An environment from `(name, value)` pairs.
fn env(pairs: &[(&str, &str)]) -> Env {
    let mut env = Env::new();
    for (name, value) in pairs {
        env.set(name, value).unwrap();
    }
    env
}

/// The variables of `env` as strings, for readable assertions.
fn pairs(env: &Env) -> Vec<(&str, &str)> {
    env.iter()
        .map(|(n, v)| {
            (
                core::str::from_utf8(n).unwrap(),
                core::str::from_utf8(v).unwrap(),
            )
        })
        .collect()
}

#[test]
fn env_validates_names_and_values() {
    use super::EnvError;
    let mut env = Env::new();
    for name in ["", "a=b", "a\0", "a\nb", "#x", " x", "\tx"] {
        assert_eq!(env.set(name, "v"), Err(EnvError::InvalidName), "{name:?}");
    }
    assert_eq!(env.set("x", "a\0b"), Err(EnvError::InvalidValue));
    assert!(env.is_empty());
    env.set("x#", "a\nb=c\\").unwrap();
    env.set("x#", "").unwrap();
    assert_eq!(env.get("x#"), Some(&b""[..]));
    assert!(env.contains("x#"));
    assert_eq!(env.remove("x#"), Some(Vec::new()));
    assert!(!env.contains("x#"));
}
