//! Calls that must not give up early: once deckhand has decided to put a service back, each
//! read and UpdateService is tried again (jittered, backing off under throttling) until the
//! rollback's deadline, so one throttled answer never leaves a service on an unverified revision.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::report::Reporter;

/// The first wait after a transient failure; the SDK has already retried with its own backoff.
const FIRST_WAIT: Duration = Duration::from_millis(500);

/// The longest wait between two tries: a throttled account gets air, and the rollback still
/// starts within seconds of the throttling ending.
const LONGEST_WAIT: Duration = Duration::from_secs(8);

/// Runs `op` until it succeeds, fails for good (not transient), or `deadline` leaves no time
/// for another try; each retry is announced as a warning naming `what`.
pub async fn until<T, F, Fut>(r: &Reporter, deadline: Instant, what: &str, op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let backoff = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(FIRST_WAIT)
        .with_max_delay(LONGEST_WAIT)
        .without_max_times();
    op.retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e: &Error| e.is_transient())
        .adjust(|_, wait| next_wait(wait, deadline.saturating_duration_since(Instant::now())))
        .notify(|e: &Error, wait: Duration| {
            r.warn(format!(
                "{what}: {e}; trying again in {:.1}s (until the deadline)",
                wait.as_secs_f64()
            ))
        })
        .await
}

/// The wait before the next try (pure): the backoff's, cut to the time `left` before the
/// deadline; none (give up) when nothing is left.
pub fn next_wait(backoff: Option<Duration>, left: Duration) -> Option<Duration> {
    let wait = backoff?;
    if left.is_zero() {
        None
    } else {
        Some(wait.min(left))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn waits_stop_at_the_deadline() {
        let s = Duration::from_secs;
        assert_eq!(next_wait(Some(s(2)), s(10)), Some(s(2)));
        assert_eq!(
            next_wait(Some(s(8)), s(3)),
            Some(s(3)),
            "cut to what is left"
        );
        assert_eq!(next_wait(Some(s(1)), Duration::ZERO), None, "time is up");
        assert_eq!(next_wait(None, s(10)), None, "the backoff gave up");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_and_lasting_ones_are_not() {
        let r = Reporter::plain();
        let deadline = Instant::now() + Duration::from_secs(60);
        let tries = AtomicU32::new(0);
        let got = until(&r, deadline, "read", || async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0..=3 => Err(Error::transient("ThrottlingException")),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(got.unwrap(), 4);

        let tries = AtomicU32::new(0);
        let got: Result<()> = until(&r, deadline, "read", || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(Error::failed("ServiceNotFoundException"))
        })
        .await;
        assert!(got.is_err());
        assert_eq!(tries.load(Ordering::SeqCst), 1, "not retried");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_end_at_the_deadline_with_the_last_error() {
        let r = Reporter::plain();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(30);
        let got: Result<()> = until(&r, deadline, "read", || async {
            Err(Error::transient("ThrottlingException"))
        })
        .await;
        assert!(got.unwrap_err().message.contains("Throttling"));
        let took = Instant::now() - start;
        assert!(
            took >= Duration::from_secs(30) && took < Duration::from_secs(31),
            "{took:?}"
        );
    }
}
