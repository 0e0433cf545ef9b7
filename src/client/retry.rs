//! When and how long to retry: the [`RetryPolicy`], which statuses are
//! transient, and `Retry-After` (seconds or an HTTP date).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

/// When and how long to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt. Default 5.
    pub max_retries: u32,
    /// First backoff; doubles each retry (with jitter). Default 200 ms.
    pub base_delay: Duration,
    /// Largest backoff. Default 10 s.
    pub max_delay: Duration,
    /// Largest `Retry-After` honoured; longer waits are cut to this. Default 30 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): `Retry-After` when given
    /// (capped), else exponential backoff with jitter (between half and all of it).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_delay);
        let mut b = [0u8; 4];
        let r = match getrandom::getrandom(&mut b) {
            Ok(()) => f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX),
            Err(_) => 0.5,
        };
        exp.mul_f64(0.5 + 0.5 * r)
    }
}

/// Statuses worth another try: 408, 429, 500, 502, 503, 504.
pub(crate) fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` as a wait: delta-seconds, or an HTTP date (a date in the past is no wait).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers.get(RETRY_AFTER)?.to_str().ok()?, SystemTime::now())
}

fn retry_after_at(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_wins_up_to_the_cap_and_backoff_grows_with_jitter() {
        let p = RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_retry_after: Duration::from_secs(2),
        };
        assert_eq!(p.delay(0, Some(Duration::from_secs(1))), Duration::from_secs(1));
        assert_eq!(p.delay(0, Some(Duration::from_secs(90))), Duration::from_secs(2));
        let d0 = p.delay(0, None);
        assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
        let d5 = p.delay(5, None);
        assert!(d5 >= Duration::from_millis(175) && d5 <= Duration::from_millis(350));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        assert_eq!(retry_after_at(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after_at("Wed, 21 Oct 2026 07:28:12 GMT", now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            retry_after_at("Wed, 21 Oct 2026 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after_at("soon", now), None);
    }
}
