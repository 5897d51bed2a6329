//! Thread-count control shared by every kernel.
//!
//! `n_threads = None` runs on rayon's global pool (one thread per core). An explicit count runs
//! the work inside a dedicated pool of that size; pools are built once per size and reused, so a
//! batch script that passes `n_threads=1` from many Python threads pays no pool start-up per call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::KernelError;

fn pools() -> &'static Mutex<HashMap<usize, Arc<ThreadPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Largest thread count accepted (a guard against typos such as `n_threads=10**6`).
pub const MAX_THREADS: usize = 1024;

/// Run `f` with `n_threads` worker threads (`None`: the global pool).
pub fn with_threads<R, F>(n_threads: Option<usize>, f: F) -> Result<R, KernelError>
where
    R: Send,
    F: FnOnce() -> R + Send,
{
    match n_threads {
        None => Ok(f()),
        Some(0) => Err(KernelError::value(
            "n_threads",
            "must be >= 1 (or None for all cores)",
        )),
        Some(n) if n > MAX_THREADS => Err(KernelError::value(
            "n_threads",
            format!("must be <= {MAX_THREADS}, got {n}"),
        )),
        Some(n) => {
            let pool = {
                let mut map = pools().lock().unwrap_or_else(|e| e.into_inner());
                match map.get(&n) {
                    Some(p) => Arc::clone(p),
                    None => {
                        let p = Arc::new(
                            ThreadPoolBuilder::new()
                                .num_threads(n)
                                .thread_name(|i| format!("emgeom-{i}"))
                                .build()
                                .map_err(|e| KernelError::value("n_threads", e.to_string()))?,
                        );
                        map.insert(n, Arc::clone(&p));
                        p
                    }
                }
            };
            Ok(pool.install(f))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_thread_count_is_honoured() {
        let n = with_threads(Some(3), rayon::current_num_threads).unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn zero_threads_is_an_error() {
        assert!(with_threads(Some(0), || ()).is_err());
        assert!(with_threads(Some(MAX_THREADS + 1), || ()).is_err());
    }
}
