//! Local time for `stat`'s `Time:` line, as casync prints it (`localtime_r` + strftime).

#![allow(unsafe_code)]

/// `(year, month, day, hour, minute, second)` of `secs` since the epoch in the local time zone
/// (`TZ` and `/etc/localtime` honoured, as by the C library).
pub(crate) fn local(secs: i64) -> Option<(i64, u32, u32, u32, u32, u32)> {
    // time_t is 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    let t: libc::time_t = secs.try_into().ok()?;
    // SAFETY: an all-zero `tm` is a valid value (integers and a nullable pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; `localtime_r` is thread-safe and writes
    // only to `tm`.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return None;
    }
    Some((
        i64::from(tm.tm_year) + 1900,
        (tm.tm_mon + 1) as u32,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
        tm.tm_sec as u32,
    ))
}
