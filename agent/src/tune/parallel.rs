//! Running numbered jobs on a few worker threads, results in job order.

use crate::error::{Error, Result};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

/// Runs `work(state, j)` for every job `j` in `0..jobs` on `threads` workers, each with its own
/// `state` from `init`; returns the results in job order, or the first error (the other
/// workers then stop taking jobs).
pub(crate) fn run_jobs<S, T: Send>(
    jobs: usize,
    threads: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let done: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::with_capacity(jobs));
    thread::scope(|scope| {
        for _ in 0..threads.clamp(1, jobs.max(1)) {
            scope.spawn(|| {
                let mut state = init();
                while !failed.load(Ordering::Relaxed) {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    if j >= jobs {
                        break;
                    }
                    match work(&mut state, j) {
                        Ok(result) => done
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((j, result)),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_unstable_by_key(|&(j, _)| j);
    Ok(done.into_iter().map(|(_, result)| result).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_job_order() {
        let squares = run_jobs(
            50,
            3,
            || 0u32,
            |calls, j| {
                *calls += 1;
                Ok(j * j)
            },
        )
        .unwrap();
        assert_eq!(squares, (0..50).map(|j| j * j).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_error_is_returned() {
        let result = run_jobs(
            20,
            2,
            || (),
            |_, j| match j {
                7 => Err(Error::Usage("job 7".into())),
                _ => Ok(j),
            },
        );
        assert!(matches!(result, Err(Error::Usage(m)) if m == "job 7"));
    }

    #[test]
    fn no_jobs_no_results() {
        let none: Vec<u8> = run_jobs(0, 4, || (), |_, _| Ok(1)).unwrap();
        assert!(none.is_empty());
    }
}
